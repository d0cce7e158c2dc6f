"""SageMaker PyTorch endpoint handler for the CIFAR-100 ResNet artifact.

The serving toolkit calls ``model_fn`` once per worker, then ``input_fn`` -> ``predict_fn`` ->
``output_fn`` per request. The container puts the model's ``code/`` directory (every file of
this folder) on ``sys.path``, so the helpers beside this file import as top-level modules:

- ``serving_errors``: ``InferenceError``, a refusal with the HTTP status the toolkit answers
- ``serving_config``: the limits from the model's environment variables
- ``serving_images``: open (format, byte and pixel caps), decode upright in RGB
- ``serving_preprocess``: metadata.json's evaluation transform, built once per worker
- ``serving_model``: the artifact's files checked, and ``LoadedModel``
- ``serving_backends``: device, threads, model.pt with ONNX Runtime (exported at load) or torch
- ``serving_precision``: INFERENCE_PRECISION and the CPU's int8 instructions: int8 or fp32
- ``serving_graphs_loader``: the ONNX graphs the artifact ships, opened from their files
- ``serving_payloads``: JSON / batch / raw bodies, top_k, the response document

Split of work: ``input_fn`` parses the envelope and opens each image (caps checked, no pixel
decode yet); ``predict_fn`` decodes at the model's input size (JPEG DCT scaling), preprocesses,
runs the network and takes top-k; ``output_fn`` serialises. Every client mistake raises
``InferenceError`` (anything else becomes a 500 in the toolkit).
"""

from __future__ import annotations

import logging
import sys
from http import HTTPStatus
from pathlib import Path
from typing import Any

import numpy as np
import torch

# Imported as ``model_handler.inference`` (tests, bench) rather than by the container: put this
# folder on sys.path as the container does with code/, so the imports below resolve alike.
if __package__ and str(Path(__file__).resolve().parent) not in sys.path:
    sys.path.insert(0, str(Path(__file__).resolve().parent))

from serving_backends import (
    inference_threads,
    load_torchscript,
    optimise_for_cpu,
    requested_backend,
    select_backend,
    select_device,
)
from serving_config import Limits, env_int
from serving_errors import InferenceError
from serving_graphs_loader import open_shipped_graph
from serving_model import LoadedModel, read_artifact
from serving_payloads import (
    JSON_TYPE,
    RAW_IMAGE_TYPES,
    ParsedRequest,
    Prediction,
    media_type,
    negotiate_accept,
    parse_json_request,
    parse_raw_request,
    render_prediction,
    resolve_top_k,
)
from serving_precision import requested_precision
from serving_preprocess import Preprocess

logger = logging.getLogger(__name__)

# Decoders Pillow may use; anything else (EPS, PSD, ...) is refused before parsing. The API
# checks uploads against the same list (functions/api/images.py; a test compares the two).
ALLOWED_FORMATS = ("PNG", "JPEG", "GIF", "BMP", "WEBP", "TIFF")
LIMITS = Limits.from_environment(ALLOWED_FORMATS)
DEFAULT_TOP_K = env_int("INFERENCE_DEFAULT_TOP_K", 5)


def model_fn(model_dir: str, context: Any = None) -> LoadedModel:
    """Load the artifact once per worker: on CPU the ONNX graph it ships (model.pt untouched),
    else model.pt (TorchScript), exported to ONNX at load on CPU or run with torch."""
    root = Path(model_dir)
    metadata, classes = read_artifact(root)
    preprocess = Preprocess.from_metadata(metadata["preprocess"])
    backend, precision = requested_backend(), requested_precision()
    device = select_device()
    model = None
    if device.type == "cpu":
        torch.set_num_threads(inference_threads())
        if backend != "torch":
            model = _shipped_graph_model(root, metadata, classes, preprocess, precision)
    if model is None:
        if precision == "int8" and (device.type != "cpu" or backend == "torch"):
            logger.warning("INFERENCE_PRECISION=int8 is for ONNX Runtime on CPU; serving fp32")
        model = _torchscript_model(root, metadata, classes, preprocess, device, backend)
    # Warm-up: TorchScript specialises and ONNX Runtime sizes its buffers on the first calls,
    # not on a user request.
    height, width = preprocess.size
    for _ in range(2):
        model.logits(np.zeros((1, 3, height, width), dtype=np.float32))
    logger.info(
        "loaded %s (%d classes) on %s (%s, %s, %s) with %d threads",
        metadata.get("model_version"),
        len(classes),
        device,
        model.backend,
        model.precision,
        model.source,
        torch.get_num_threads(),
    )
    return model


def _shipped_graph_model(
    root: Path,
    metadata: dict[str, Any],
    classes: list[str],
    preprocess: Preprocess,
    precision: str,
) -> LoadedModel | None:
    """The artifact's own ONNX graph on CPU, or None when it ships none that opens."""
    threads = torch.get_num_threads()
    shipped = open_shipped_graph(root, metadata, precision, threads, preprocess.size, len(classes))
    if shipped is None:
        return None
    return LoadedModel(
        None,
        torch.device("cpu"),
        classes,
        metadata,
        preprocess,
        onnx_session=shipped.session,
        precision=shipped.precision,
        source=shipped.file,
    )


def _torchscript_model(
    root: Path,
    metadata: dict[str, Any],
    classes: list[str],
    preprocess: Preprocess,
    device: torch.device,
    backend: str,
) -> LoadedModel:
    """model.pt: on CPU exported to ONNX at load when it agrees, else frozen for torch."""
    weights = metadata.get("weights_file", "model.pt")
    module = load_torchscript(root / weights, device)
    session = None
    if device.type == "cpu":
        session = select_backend(module, preprocess.size, backend)
        if session is None:
            module = optimise_for_cpu(module)
    source = f"{weights} exported at load" if session is not None else weights
    return LoadedModel(module, device, classes, metadata, preprocess, session, "fp32", source)


def input_fn(
    request_body: str | bytes | bytearray, content_type: str | None, context: Any = None
) -> ParsedRequest:
    """Parse a JSON (single or "instances") or raw image request."""
    kind = media_type(content_type)
    if kind == JSON_TYPE:
        return parse_json_request(request_body, LIMITS)
    if kind in RAW_IMAGE_TYPES:
        return parse_raw_request(request_body, kind, LIMITS)
    supported = ", ".join(sorted({JSON_TYPE, *RAW_IMAGE_TYPES}))
    raise InferenceError(
        HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
        "unsupported_content_type",
        f"content type {content_type!r} is not supported; use one of {supported}",
    )


def predict_fn(data: ParsedRequest, model: LoadedModel, context: Any = None) -> Prediction:
    """Preprocess, run the network, keep the top-k classes of each image."""
    top_k = resolve_top_k(data.top_k, len(model.classes), DEFAULT_TOP_K)
    logits = model.logits(model.preprocess.batch(data.images))
    probabilities, indices = torch.softmax(logits, dim=1).topk(top_k, dim=1)
    top = [
        list(zip(row_i, row_p, strict=True))
        for row_i, row_p in zip(indices.tolist(), probabilities.tolist(), strict=True)
    ]
    return Prediction(top, model.classes, model.identity, data.batch)


def output_fn(prediction: Prediction, accept: str | None, context: Any = None) -> str:
    """Serialise the top-k predictions as the JSON document of the endpoint contract."""
    negotiate_accept(accept)
    return render_prediction(prediction)
