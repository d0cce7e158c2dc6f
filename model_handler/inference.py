"""SageMaker PyTorch endpoint handler for the CIFAR-100 ResNet artifact.

The serving toolkit calls ``model_fn`` once per worker, then ``input_fn`` -> ``predict_fn`` ->
``output_fn`` per request. The container puts the model's ``code/`` directory (every file of
this folder) on ``sys.path``, so the helpers beside this file import as top-level modules:

- ``serving_errors``: ``InferenceError``, a refusal with the HTTP status the toolkit answers
- ``serving_config``: the limits from the model's environment variables
- ``serving_images``: open (format, byte and pixel caps), decode upright in RGB
- ``serving_preprocess``: metadata.json's evaluation transform, built once per worker
- ``serving_model``: the artifact's files checked, and ``LoadedModel``
- ``serving_backends``: device, threads, ONNX Runtime or TorchScript
- ``serving_payloads``: JSON / batch / raw bodies, top_k, the response document

Split of work: ``input_fn`` parses the envelope and opens each image (caps checked, no pixel
decode yet); ``predict_fn`` decodes at the model's input size (JPEG DCT scaling), preprocesses,
runs the network and takes top-k; ``output_fn`` serialises. Every client mistake raises
``InferenceError`` (anything else becomes a 500 in the toolkit).
"""

from __future__ import annotations

import logging
import sys
import warnings
from http import HTTPStatus
from pathlib import Path
from typing import Any

import numpy as np
import torch

# Imported as ``model_handler.inference`` (tests, bench) rather than by the container: put this
# folder on sys.path as the container does with code/, so the imports below resolve alike.
if __package__ and str(Path(__file__).resolve().parent) not in sys.path:
    sys.path.insert(0, str(Path(__file__).resolve().parent))

from serving_backends import inference_threads, optimise_for_cpu, select_backend, select_device
from serving_config import Limits, env_int
from serving_errors import InferenceError
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
from serving_preprocess import Preprocess

logger = logging.getLogger(__name__)

# Decoders Pillow may use; anything else (EPS, PSD, ...) is refused before parsing. The API
# checks uploads against the same list (functions/api/images.py; a test compares the two).
ALLOWED_FORMATS = ("PNG", "JPEG", "GIF", "BMP", "WEBP", "TIFF")
LIMITS = Limits.from_environment(ALLOWED_FORMATS)
DEFAULT_TOP_K = env_int("INFERENCE_DEFAULT_TOP_K", 5)


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
        weights = str(root / metadata.get("weights_file", "model.pt"))
        module = torch.jit.load(weights, map_location=device)  # type: ignore[no-untyped-call]
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
