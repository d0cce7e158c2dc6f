"""The handler behind the real serving stack of the SageMaker PyTorch container, no fakes.

Inside the endpoint, TorchServe's worker turns each request into a ``ts.context.Context`` and
calls ``sagemaker_pytorch_serving_container.handler_service.HandlerService.handle``, whose
``sagemaker_inference.transformer.Transformer`` imports ``code/inference.py`` from the model
directory and runs model_fn -> input_fn -> predict_fn -> output_fn. The transformer writes an
exception's own status only for ``BaseInferenceToolkitError`` subclasses; anything else is a 500.
These tests drive exactly those installed classes (only the Java front end and its socket are
left out) and read the status back from the worker's context.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sagemaker_inference.errors import BaseInferenceToolkitError

from tests.support.serving_toolkit import Endpoint, container_model_dir, served
from tests.unit.handler.artifacts import (
    HANDLER_MODULES,
    PHOTOS,
    b64,
    encode,
    invoke,
    load,
)


@pytest.fixture(scope="module")
def endpoint(tmp_path_factory: pytest.TempPathFactory, tiny_dir: Path) -> Iterator[Endpoint]:
    model_dir = container_model_dir(tiny_dir, tmp_path_factory.mktemp("endpoint") / "model")
    with served(model_dir) as running:
        yield running


def _error(text: str) -> dict:
    # The toolkit answers "<message>\n<traceback>"; the handler's message is one JSON line.
    first_line, _, trace = text.partition("\n")
    assert "Traceback" in trace
    return json.loads(first_line)


def test_the_toolkit_imports_the_handler_from_the_code_directory(endpoint) -> None:
    served = sys.modules["inference"]
    assert Path(served.__file__).parent.name == "code"
    assert issubclass(served.InferenceError, BaseInferenceToolkitError)


def test_the_helpers_are_imported_from_the_code_directory_too(endpoint) -> None:
    served = sys.modules["inference"]
    code_dir = Path(served.__file__).parent
    for name in HANDLER_MODULES:
        assert Path(sys.modules[name].__file__).parent == code_dir, name
    assert served.InferenceError is sys.modules["serving_errors"].InferenceError


def test_a_good_image_is_a_200_with_the_prediction(endpoint, photos) -> None:
    status, content_type, text = endpoint.invoke(encode(photos["chelsea"], "PNG"), "image/png")
    assert (status, content_type) == (200, "application/json")
    body = json.loads(text)
    assert body["model"]["version"] == "cifar100-test-tiny0"
    assert len(body["predictions"]) == 5
    assert all(p["label"].startswith("class_") for p in body["predictions"])


def test_the_original_json_payload_with_any_accept(endpoint, photos) -> None:
    # The transformer decodes JSON bodies to str and turns */* into its default accept.
    payload = json.dumps({"image": b64(encode(photos["coffee"], "JPEG")), "top_k": 2})
    status, content_type, text = endpoint.invoke(payload.encode(), "application/json", "*/*")
    assert (status, content_type) == (200, "application/json")
    assert len(json.loads(text)["predictions"]) == 2


@pytest.mark.parametrize(
    ("body", "content_type", "accept", "status", "code"),
    [
        (b"\x89PNG\r\n\x1a\nnot really", "image/png", "application/json", 400, "not_an_image"),
        (json.dumps({"image": "%%%"}).encode(), "application/json", None, 400, "invalid_base64"),
        (json.dumps({"picture": "x"}).encode(), "application/json", None, 400, "missing_image"),
        (b"hello", "text/plain", "application/json", 415, "unsupported_content_type"),
        (None, "image/png", "text/csv", 406, "unsupported_accept"),
    ],
)
def test_bad_requests_keep_the_handlers_status(
    endpoint, photos, body, content_type, accept, status, code
) -> None:
    body = encode(photos["camera"], "PNG") if body is None else body
    answered, _, text = endpoint.invoke(body, content_type, accept)
    error = _error(text)
    assert (answered, error["error"], error["status"]) == (status, code, status)


def test_an_oversized_image_is_a_413(endpoint, monkeypatch) -> None:
    served = sys.modules["inference"]
    monkeypatch.setattr(served, "LIMITS", replace(served.LIMITS, max_image_bytes=1000))
    noise = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    status, _, text = endpoint.invoke(encode(noise, "PNG"), "image/png")
    assert (status, _error(text)["error"]) == (413, "image_too_large")


def test_a_decompression_bomb_is_a_413_not_a_500(endpoint, monkeypatch) -> None:
    served = sys.modules["inference"]
    monkeypatch.setattr(served, "LIMITS", replace(served.LIMITS, max_image_pixels=100 * 100))
    status, _, text = endpoint.invoke(encode(np.zeros((200, 200), np.uint8), "PNG"), "image/png")
    assert status == 413
    assert "pixels" in _error(text)["message"]


def test_an_exception_outside_the_toolkit_hierarchy_is_a_500(endpoint, monkeypatch) -> None:
    # Why the handler's errors subclass the toolkit's base: a plain exception loses its status.
    # (The transformer picks the arguments by arity, so the stand-in keeps predict_fn's two.)
    def failing_predict_fn(data, model):
        raise ValueError("boom")

    transformer = endpoint.service._service
    monkeypatch.setattr(transformer, "_predict_fn", failing_predict_fn)
    status, _, text = endpoint.invoke(encode(np.zeros((8, 8, 3), np.uint8), "PNG"), "image/png")
    assert status == 500
    assert text.partition("\n")[0] == "boom"


def test_an_rgba_photo_is_served(endpoint, photos) -> None:
    rgba = np.asarray(Image.fromarray(photos["astronaut"]).convert("RGBA"))
    status, _, text = endpoint.invoke(encode(rgba, "PNG"), "image/png")
    assert status == 200
    assert json.loads(text)["predictions"][0]["probability"] > 0


def test_an_artifact_with_a_shipped_int8_graph_serves_it(tmp_path, shipped_dir, photos) -> None:
    # The final job's artifact: model.onnx and model.int8.onnx beside model.pt. The worker
    # serves the int8 graph straight from its file and answers as the handler does in-process.
    model_dir = container_model_dir(shipped_dir, tmp_path / "model")
    with served(model_dir, INFERENCE_PRECISION="int8") as running:
        bodies = [encode(photos[name], "PNG") for name in PHOTOS]
        answers = [running.invoke(body, "image/png") for body in bodies]
        model = running.service._service._model  # what model_fn returned in the worker
        assert (model.backend, model.precision, model.source) == (
            "onnxruntime",
            "int8",
            "model.int8.onnx",
        )
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("INFERENCE_PRECISION", "int8")
        int8 = load(shipped_dir)
        patch.setenv("INFERENCE_PRECISION", "fp32")
        fp32 = load(shipped_dir)
    for body, (status, content_type, text) in zip(bodies, answers, strict=True):
        assert (status, content_type) == (200, "application/json")
        answer = json.loads(text)
        assert answer == invoke(int8, body, "image/png")  # the same handler, in-process
        top1 = answer["predictions"][0]["index"]
        assert top1 == invoke(fp32, body, "image/png")["predictions"][0]["index"]
