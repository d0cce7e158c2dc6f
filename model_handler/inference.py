"""SageMaker PyTorch endpoint handler for the CIFAR-100 ResNet artifact.

The serving toolkit calls ``model_fn`` once per worker, then ``input_fn`` -> ``predict_fn`` ->
``output_fn`` per request. The same module is imported in-process by the local stack as
``model_handler.inference``, so it is one self-contained file with no sibling imports.

Split of work: ``input_fn`` parses the envelope and opens each image (format, size and pixel
caps, no pixel decode yet); ``predict_fn`` decodes at the model's input size (JPEG DCT scaling),
preprocesses with the transform read from ``metadata.json``, runs the network and takes top-k;
``output_fn`` serialises. Every client mistake raises ``InferenceError``, which carries its HTTP
status the way the sagemaker-inference toolkit expects (anything else becomes a 500 there).
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import logging
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

logger = logging.getLogger(__name__)

# --------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------
# sagemaker_inference.transformer answers an exception's own status only when it is an
# instance of BaseInferenceToolkitError (anything else is a 500). The toolkit exists only inside
# the endpoint container (and the dev environment), so subclass it there and use a
# signature-compatible stand-in elsewhere.
try:
    from sagemaker_inference.errors import BaseInferenceToolkitError as _ToolkitErrorBase
except ImportError:

    class _ToolkitErrorBase(Exception):  # type: ignore[no-redef]
        """Same constructor and attributes as sagemaker_inference.errors.BaseInferenceToolkitError."""

        def __init__(self, status_code: int, message: str, phrase: str) -> None:
            self.status_code = status_code
            self.message = message
            self.phrase = phrase
            super().__init__(status_code, message, phrase)


class InferenceError(_ToolkitErrorBase):
    """A request the endpoint refuses, with its HTTP status.

    ``message`` is a JSON document ``{"error": code, "message": detail, "status": status}``; the
    toolkit writes it as the first line of the response body (followed by a traceback), which
    ``invoke_endpoint`` surfaces as ``ModelError`` with ``OriginalStatusCode``.
    """

    def __init__(self, status: int, code: str, detail: str) -> None:
        self.code = code
        self.detail = detail
        body = json.dumps({"error": code, "message": detail, "status": status})
        super().__init__(status, body, HTTPStatus(status).phrase)
        # Set again so the attributes hold whichever base class is in use.
        self.status_code = status
        self.message = body

    def __str__(self) -> str:
        return f"{self.status_code} {self.code}: {self.detail}"


def _bad_request(code: str, detail: str) -> InferenceError:
    return InferenceError(HTTPStatus.BAD_REQUEST, code, detail)


def _too_large(code: str, detail: str) -> InferenceError:
    return InferenceError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, code, detail)


# --------------------------------------------------------------------------------------------
# Limits (environment variables of the endpoint's model; read once per worker)
# --------------------------------------------------------------------------------------------
def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    return int(raw) if raw else default


# InvokeEndpoint caps the body at 6 MB and base64 adds a third, so ~4 MB of image is the most
# a JSON request can carry anyway.
MAX_IMAGE_BYTES = _env_int("INFERENCE_MAX_IMAGE_BYTES", 4 * 1024 * 1024)
# Decoded pixels are what cost memory: a 100 KB PNG can claim 30000x30000 pixels.
MAX_IMAGE_PIXELS = _env_int("INFERENCE_MAX_IMAGE_PIXELS", 40_000_000)
MAX_BATCH = _env_int("INFERENCE_MAX_BATCH", 64)
DEFAULT_TOP_K = _env_int("INFERENCE_DEFAULT_TOP_K", 5)

JSON_TYPE = "application/json"
RAW_IMAGE_TYPES = frozenset({"image/png", "image/jpeg", "application/x-image"})
# Decoders Pillow may use; anything else (EPS, PSD, ...) is refused before parsing.
ALLOWED_FORMATS = ("PNG", "JPEG", "GIF", "BMP", "WEBP", "TIFF")

_INTERPOLATIONS = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "box": Image.Resampling.BOX,
    "hamming": Image.Resampling.HAMMING,
    "lanczos": Image.Resampling.LANCZOS,
}


# --------------------------------------------------------------------------------------------
# Data passed between the handler functions
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ParsedRequest:
    """input_fn's result: opened (not yet decoded) images and the requested top-k."""

    images: list[Image.Image]
    top_k: int | None  # None: the default, capped at the number of classes
    batch: bool  # the "instances" form: answer with "results"


@dataclass(frozen=True)
class Preprocess:
    """The evaluation transform from metadata.json["preprocess"], precomputed once."""

    size: tuple[int, int]  # (height, width), torchvision's Resize order
    # The training images' native (height, width), e.g. (32, 32) for CIFAR: a photo is brought
    # down to it first, so it reaches the model as the upsampled training images did.
    source: tuple[int, int] | None
    resample: Image.Resampling
    scale: np.ndarray  # per channel 1 / (255 * std): ToTensor and Normalize in one multiply-add
    bias: np.ndarray  # per channel -mean / std

    @classmethod
    def from_metadata(cls, spec: dict[str, Any]) -> Preprocess:
        resize = spec.get("resize")
        if not _is_size(resize):
            raise ValueError(f"preprocess.resize must be [height, width], got {resize!r}")
        source = spec.get("source_size")  # absent in older artifacts, null for mixed sizes
        if source is not None and not _is_size(source):
            raise ValueError(f"preprocess.source_size must be [height, width], got {source!r}")
        interpolation = spec.get("interpolation", "bilinear")
        if interpolation not in _INTERPOLATIONS:
            raise ValueError(f"unsupported preprocess.interpolation {interpolation!r}")
        mean = np.asarray(spec["mean"], dtype=np.float32)
        std = np.asarray(spec["std"], dtype=np.float32)
        if mean.shape != (3,) or std.shape != (3,) or np.any(std <= 0):
            raise ValueError("preprocess.mean and preprocess.std need three values, std > 0")
        return cls(
            size=(resize[0], resize[1]),
            source=(source[0], source[1]) if source else None,
            resample=_INTERPOLATIONS[interpolation],
            scale=(1.0 / (255.0 * std)).astype(np.float32),
            bias=(-mean / std).astype(np.float32),
        )

    def batch(self, images: Sequence[Image.Image]) -> np.ndarray:
        """Decode, convert to RGB, resize and normalise images into one float32 NCHW array."""
        height, width = self.size
        out = np.empty((len(images), height, width, 3), dtype=np.float32)
        for i, image in enumerate(images):
            rgb = decode_rgb(image, self.source or self.size)
            if self.source is not None and rgb.size != self.source[::-1]:
                rgb = rgb.resize(self.source[::-1], self.resample)
            rgb = rgb.resize((width, height), self.resample)
            np.multiply(np.asarray(rgb, dtype=np.float32), self.scale, out=out[i])
        out += self.bias
        return np.ascontiguousarray(out.transpose(0, 3, 1, 2))


@dataclass
class LoadedModel:
    """model_fn's result: everything predict_fn needs, built once per worker."""

    module: torch.nn.Module | torch.jit.ScriptModule
    device: torch.device
    classes: list[str]
    metadata: dict[str, Any]
    preprocess: Preprocess
    onnx_session: Any = None  # an onnxruntime.InferenceSession when that backend serves

    @property
    def backend(self) -> str:
        return "onnxruntime" if self.onnx_session is not None else "torch"

    @property
    def identity(self) -> dict[str, Any]:
        return {
            "version": self.metadata.get("model_version"),
            "training_job_name": self.metadata.get("training_job_name"),
            "architecture": self.metadata.get("architecture"),
        }

    def logits(self, batch: np.ndarray) -> torch.Tensor:
        if self.onnx_session is not None:
            return torch.from_numpy(self.onnx_session.run(None, {"input": batch})[0])
        with torch.inference_mode():
            inputs = torch.from_numpy(batch).to(self.device, non_blocking=True)
            return self.module(inputs).float()


@dataclass(frozen=True)
class Prediction:
    """predict_fn's result: per image, the top-k (index, probability) pairs."""

    top: list[list[tuple[int, float]]]
    classes: list[str]
    identity: dict[str, Any]
    batch: bool


# --------------------------------------------------------------------------------------------
# Images
# --------------------------------------------------------------------------------------------
def open_image(data: bytes) -> Image.Image:
    """Open an image and check its caps; pixels are decoded later, at the model's size."""
    if not data:
        raise _bad_request("empty_image", "the image is empty")
    if len(data) > MAX_IMAGE_BYTES:
        raise _too_large(
            "image_too_large", f"the image is {len(data)} bytes; the limit is {MAX_IMAGE_BYTES}"
        )
    try:
        image = Image.open(io.BytesIO(data), formats=ALLOWED_FORMATS)
    except Image.DecompressionBombError as exc:
        raise _too_large("too_many_pixels", str(exc)) from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise _bad_request(
            "not_an_image", f"the data is not a {'/'.join(ALLOWED_FORMATS)} image"
        ) from exc
    width, height = image.size
    if width * height > MAX_IMAGE_PIXELS:
        raise _too_large(
            "too_many_pixels",
            f"the image has {width}x{height} pixels; the limit is {MAX_IMAGE_PIXELS} pixels",
        )
    return image


def _is_size(value: Any) -> bool:
    return (
        isinstance(value, Sequence)
        and len(value) == 2
        and all(isinstance(v, int) and v > 0 for v in value)
    )


def decode_rgb(image: Image.Image, target: tuple[int, int] | None = None) -> Image.Image:
    """Decode an opened image upright (EXIF orientation) in RGB.

    With ``target`` (height, width), a JPEG is decoded straight at a reduced scale that is still
    at least twice the target on each side, so the later antialiased resize sees enough pixels.
    """
    try:
        if target is not None and image.format == "JPEG":
            side = 2 * max(target)
            image.draft(None, (side, side))
        image.load()
        ImageOps.exif_transpose(image, in_place=True)
        return to_rgb(image)
    except Image.DecompressionBombError as exc:
        raise _too_large("too_many_pixels", str(exc)) from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise _bad_request("corrupt_image", f"the image cannot be decoded: {exc}") from exc


def to_rgb(image: Image.Image) -> Image.Image:
    """RGB from any mode: transparency over white, 16/32-bit grayscale scaled to 8 bits."""
    if image.mode == "RGB":
        return image
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        pixels = np.asarray(image, dtype=np.float64)
        peak = 65535.0 if image.mode.startswith("I;16") else max(float(pixels.max()), 1.0)
        gray = np.clip(pixels * (255.0 / peak), 0, 255).astype(np.uint8)
        return Image.fromarray(gray, mode="L").convert("RGB")
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA", "La", "RGBa"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def decode_base64(value: Any, where: str) -> bytes:
    if not isinstance(value, str) or not value:
        raise _bad_request("invalid_image_field", f"{where} must be a non-empty base64 string")
    if value.startswith("data:"):  # a data URL: keep what follows "base64,"
        value = value.partition(",")[2]
    if any(c.isspace() for c in value[:100]) or any(c.isspace() for c in value[-100:]):
        value = "".join(value.split())  # line-wrapped base64 (e.g. base64.encodebytes)
    if len(value) * 3 // 4 > MAX_IMAGE_BYTES + 2:
        raise _too_large(
            "image_too_large",
            f"{where} decodes to more than the {MAX_IMAGE_BYTES}-byte image limit",
        )
    altchars = b"-_" if ("-" in value or "_" in value) else None
    try:
        return base64.b64decode(value, altchars=altchars, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise _bad_request("invalid_base64", f"{where} is not valid base64: {exc}") from exc


# --------------------------------------------------------------------------------------------
# Request parsing
# --------------------------------------------------------------------------------------------
def media_type(header: str | None) -> str:
    """'Application/JSON; charset=utf-8' -> 'application/json'."""
    return (header or "").split(";", 1)[0].strip().lower()


def parse_top_k(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise _bad_request("invalid_top_k", f"top_k must be a positive integer, got {value!r}")
    return value


def parse_json_request(body: str | bytes) -> ParsedRequest:
    try:
        document = json.loads(body)
    except (UnicodeDecodeError, ValueError) as exc:
        raise _bad_request("invalid_json", f"the body is not valid JSON: {exc}") from exc
    if not isinstance(document, dict):
        raise _bad_request("invalid_json", "the body must be a JSON object")
    top_k = parse_top_k(document.get("top_k"))
    has_image, has_instances = "image" in document, "instances" in document
    if has_image == has_instances:
        raise _bad_request("missing_image", 'the body needs exactly one of "image" or "instances"')
    if has_image:
        return ParsedRequest(
            [open_image(decode_base64(document["image"], '"image"'))], top_k, False
        )
    instances = document["instances"]
    if not isinstance(instances, list) or not instances:
        raise _bad_request("invalid_instances", '"instances" must be a non-empty list')
    if len(instances) > MAX_BATCH:
        raise _too_large("batch_too_large", f"{len(instances)} instances; the limit is {MAX_BATCH}")
    images = []
    for i, instance in enumerate(instances):
        if not isinstance(instance, dict) or "image" not in instance:
            raise _bad_request("missing_image", f'instances[{i}] must be an object with "image"')
        images.append(open_image(decode_base64(instance["image"], f"instances[{i}].image")))
    return ParsedRequest(images, top_k, True)


# --------------------------------------------------------------------------------------------
# Model loading
# --------------------------------------------------------------------------------------------
def select_device() -> torch.device:
    """INFERENCE_DEVICE if set (cpu, cuda, cuda:1), else the GPU when the instance has one."""
    wanted = os.environ.get("INFERENCE_DEVICE", "").strip()
    if wanted:
        return torch.device(wanted)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def available_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def inference_threads() -> int:
    """Intra-op threads per worker: INFERENCE_NUM_THREADS, else the CPUs shared among the
    model server's workers (SAGEMAKER_MODEL_SERVER_WORKERS), so workers do not oversubscribe."""
    explicit = _env_int("INFERENCE_NUM_THREADS", 0)
    if explicit > 0:
        return explicit
    workers = max(1, _env_int("SAGEMAKER_MODEL_SERVER_WORKERS", 1))
    return max(1, available_cpus() // workers)


def read_artifact(model_dir: Path) -> tuple[dict[str, Any], list[str]]:
    metadata = json.loads((model_dir / "metadata.json").read_text())
    classes = json.loads((model_dir / "classes.json").read_text())
    if metadata.get("format_version") != 1:
        raise ValueError(f"unsupported artifact format_version {metadata.get('format_version')!r}")
    if metadata.get("weights_format", "torchscript") != "torchscript":
        raise ValueError(f"unsupported weights_format {metadata.get('weights_format')!r}")
    if not isinstance(classes, list) or not all(isinstance(c, str) for c in classes):
        raise ValueError("classes.json must be a list of label names")
    if metadata.get("num_classes", len(classes)) != len(classes):
        raise ValueError(
            f"metadata.json says {metadata['num_classes']} classes, classes.json has {len(classes)}"
        )
    return metadata, classes


def optimise_for_cpu(module: torch.jit.ScriptModule) -> torch.jit.ScriptModule:
    """Freeze (weights become constants, conv+BN folded) for ~10-15% lower CPU latency."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # torch.jit is deprecated, not gone
            return torch.jit.optimize_for_inference(torch.jit.freeze(module))
    except Exception:  # an exotic graph that cannot be frozen still serves unfrozen
        logger.warning("could not freeze the TorchScript module; serving it as loaded")
        return module


def onnx_session(module: torch.jit.ScriptModule, size: tuple[int, int], threads: int) -> Any | None:
    """Export the TorchScript graph to ONNX in memory and open an ONNX Runtime CPU session.

    ONNX Runtime runs this network ~4x faster than torch eager at batch 1 on CPU. It is
    optional: None when onnxruntime/onnx are not installed.
    """
    try:
        import onnxruntime
    except ImportError:
        return None
    example = torch.zeros(1, 3, *size)
    exported = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module,
            (example,),
            exported,
            dynamo=False,  # the TorchScript exporter: the artifact is a TorchScript graph
            input_names=["input"],
            output_names=["logits"],
            dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
        )
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    # Idle threads sleep instead of spinning: several model-server workers share the CPUs.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return onnxruntime.InferenceSession(
        exported.getvalue(), options, providers=["CPUExecutionProvider"]
    )


def agrees_with_torch(session: Any, module: torch.jit.ScriptModule, size: tuple[int, int]) -> bool:
    """The exported graph must give the TorchScript module's logits before it may serve."""
    sample = torch.randn(2, 3, *size, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        expected = module(sample).float()
    got = torch.from_numpy(session.run(None, {"input": sample.numpy()})[0])
    return bool(torch.allclose(got, expected, rtol=1e-3, atol=1e-3 * float(expected.abs().max())))


def select_backend(module: torch.jit.ScriptModule, size: tuple[int, int]) -> Any | None:
    """INFERENCE_BACKEND: auto (ONNX Runtime when installed and faithful), torch, onnxruntime."""
    wanted = os.environ.get("INFERENCE_BACKEND", "auto").strip().lower() or "auto"
    if wanted not in ("auto", "torch", "onnxruntime"):
        raise ValueError(f"INFERENCE_BACKEND must be auto, torch or onnxruntime, not {wanted!r}")
    if wanted == "torch":
        return None
    try:
        session = onnx_session(module, size, torch.get_num_threads())
    except Exception as exc:
        if wanted == "onnxruntime":
            raise
        logger.warning("ONNX export failed (%s); serving with torch", exc)
        return None
    if session is None or not agrees_with_torch(session, module, size):
        if wanted == "onnxruntime":
            raise RuntimeError("INFERENCE_BACKEND=onnxruntime, but it is missing or disagrees")
        return None
    return session


def model_fn(model_dir: str, context: Any = None) -> LoadedModel:
    """Load the artifact (model.pt, classes.json, metadata.json) once per worker."""
    root = Path(model_dir)
    metadata, classes = read_artifact(root)
    preprocess = Preprocess.from_metadata(metadata["preprocess"])
    device = select_device()
    if device.type == "cpu":
        torch.set_num_threads(inference_threads())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        module = torch.jit.load(
            str(root / metadata.get("weights_file", "model.pt")), map_location=device
        )
    module.eval()
    session = None
    if device.type == "cpu":
        session = select_backend(module, preprocess.size)
        if session is None:
            module = optimise_for_cpu(module)
    model = LoadedModel(module, device, classes, metadata, preprocess, session)
    # Warm-up: the TorchScript executor specialises on its first calls, not on a user request.
    height, width = preprocess.size
    for _ in range(2):
        model.logits(np.zeros((1, 3, height, width), dtype=np.float32))
    logger.info(
        "loaded %s (%d classes) on %s (%s) with %d threads",
        metadata.get("model_version"),
        len(classes),
        device,
        model.backend,
        torch.get_num_threads(),
    )
    return model


# --------------------------------------------------------------------------------------------
# The toolkit's request functions
# --------------------------------------------------------------------------------------------
def input_fn(
    request_body: str | bytes | bytearray, content_type: str | None, context: Any = None
) -> ParsedRequest:
    """Parse a JSON (single or "instances") or raw image request."""
    kind = media_type(content_type)
    if kind == JSON_TYPE:
        return parse_json_request(request_body)
    if kind in RAW_IMAGE_TYPES:
        if isinstance(request_body, str):  # only when a caller decoded binary as text
            raise _bad_request("invalid_body", f"{kind} bodies must be raw bytes")
        return ParsedRequest([open_image(bytes(request_body))], None, False)
    supported = ", ".join(sorted({JSON_TYPE, *RAW_IMAGE_TYPES}))
    raise InferenceError(
        HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
        "unsupported_content_type",
        f"content type {content_type!r} is not supported; use one of {supported}",
    )


def predict_fn(data: ParsedRequest, model: LoadedModel, context: Any = None) -> Prediction:
    """Preprocess, run the network, keep the top-k classes of each image."""
    num_classes = len(model.classes)
    top_k = min(DEFAULT_TOP_K, num_classes) if data.top_k is None else data.top_k
    if top_k > num_classes:
        raise _bad_request(
            "invalid_top_k", f"top_k must be between 1 and {num_classes}, got {top_k}"
        )
    logits = model.logits(model.preprocess.batch(data.images))
    probabilities, indices = torch.softmax(logits, dim=1).topk(top_k, dim=1)
    top = [
        list(zip(row_i, row_p, strict=True))
        for row_i, row_p in zip(indices.tolist(), probabilities.tolist(), strict=True)
    ]
    return Prediction(top, model.classes, model.identity, data.batch)


def negotiate_accept(accept: str | None) -> str:
    """application/json is the only representation; absent or wildcard Accept headers take it."""
    if not accept:
        return JSON_TYPE
    for part in accept.split(","):
        if media_type(part) in (JSON_TYPE, "*/*", "application/*"):
            return JSON_TYPE
    raise InferenceError(
        HTTPStatus.NOT_ACCEPTABLE,
        "unsupported_accept",
        f"accept type {accept!r} is not supported; use {JSON_TYPE}",
    )


def output_fn(prediction: Prediction, accept: str | None, context: Any = None) -> str:
    """Serialise the top-k predictions as the JSON document of the endpoint contract."""
    negotiate_accept(accept)
    results = [
        {
            "predictions": [
                {"label": prediction.classes[index], "index": index, "probability": probability}
                for index, probability in row
            ]
        }
        for row in prediction.top
    ]
    if prediction.batch:
        return json.dumps({"results": results, "model": prediction.identity})
    return json.dumps({**results[0], "model": prediction.identity})
