"""model_fn: artifact checks, device and thread choice, and how the toolkit sees our errors."""

from __future__ import annotations

import importlib.util
import inspect
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import serving_backends
import torch

from model_handler import inference
from tests.unit.handler.artifacts import HANDLER_MODULES

HANDLER_FILE = Path(inference.__file__)


def test_model_fn_accepts_the_toolkit_context(tiny_dir) -> None:
    model = inference.model_fn(str(tiny_dir), object())
    assert model.classes == [f"class_{i}" for i in range(10)]
    assert model.device == torch.device("cpu")
    assert model.preprocess.size == (16, 16)


def test_model_fn_uses_the_configured_threads(monkeypatch, tiny_dir) -> None:
    monkeypatch.setenv("INFERENCE_NUM_THREADS", "1")
    inference.model_fn(str(tiny_dir))
    assert torch.get_num_threads() == 1


@pytest.mark.parametrize(
    ("env", "cpus", "expected"),
    [
        ({"INFERENCE_NUM_THREADS": "3"}, 8, 3),
        ({"SAGEMAKER_MODEL_SERVER_WORKERS": "2"}, 8, 4),
        ({"SAGEMAKER_MODEL_SERVER_WORKERS": "4"}, 2, 1),
        ({}, 2, 2),
    ],
)
def test_threads_share_the_cpus_among_workers(monkeypatch, env, cpus, expected) -> None:
    monkeypatch.delenv("INFERENCE_NUM_THREADS", raising=False)
    monkeypatch.delenv("SAGEMAKER_MODEL_SERVER_WORKERS", raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(serving_backends, "available_cpus", lambda: cpus)
    assert inference.inference_threads() == expected


@pytest.mark.parametrize(("cuda", "expected"), [(True, "cuda"), (False, "cpu")])
def test_device_follows_gpu_availability(monkeypatch, cuda, expected) -> None:
    monkeypatch.delenv("INFERENCE_DEVICE", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    assert inference.select_device() == torch.device(expected)


def test_device_override(monkeypatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setenv("INFERENCE_DEVICE", "cpu")
    assert inference.select_device() == torch.device("cpu")


# A GPU instance loads model.pt onto the GPU, whatever ONNX graphs the artifact ships.
@pytest.mark.parametrize(
    ("artifact", "environment"),
    [("tiny_dir", {}), ("shipped_dir", {"INFERENCE_PRECISION": "int8"})],
)
def test_gpu_instance_loads_the_weights_straight_onto_the_gpu(
    monkeypatch, request, artifact, environment
) -> None:
    model_dir = request.getfixturevalue(artifact)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("INFERENCE_DEVICE", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    seen: dict = {}

    class Loaded(Exception):
        pass

    def fake_load(path, map_location=None):
        seen.update(path=path, map_location=map_location)
        raise Loaded

    monkeypatch.setattr(torch.jit, "load", fake_load)
    with pytest.raises(Loaded):
        inference.model_fn(str(model_dir))
    assert seen == {"path": str(model_dir / "model.pt"), "map_location": torch.device("cuda")}


def test_torch_backend_freezes_the_module(monkeypatch, tiny_dir) -> None:
    monkeypatch.setenv("INFERENCE_BACKEND", "torch")
    model = inference.model_fn(str(tiny_dir))
    assert model.backend == "torch"
    # Frozen modules hold weights as constants: no parameters are left to look up per call.
    assert list(model.module.parameters()) == []


def test_auto_backend_serves_with_onnxruntime_when_installed(tiny_model, resnet_model) -> None:
    assert tiny_model.backend == resnet_model.backend == "onnxruntime"


def test_onnxruntime_and_torch_give_the_same_answer(monkeypatch, resnet_dir, resnet_model) -> None:
    monkeypatch.setenv("INFERENCE_BACKEND", "torch")
    torch_model = inference.model_fn(str(resnet_dir))
    batch = np.random.default_rng(3).standard_normal((4, 3, 32, 32)).astype(np.float32)
    torch.testing.assert_close(
        resnet_model.logits(batch), torch_model.logits(batch), rtol=1e-4, atol=1e-4
    )


def test_auto_backend_falls_back_to_torch_without_onnxruntime(monkeypatch, tiny_dir) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # makes the import fail
    assert inference.model_fn(str(tiny_dir)).backend == "torch"


def test_auto_backend_refuses_an_export_that_disagrees(monkeypatch, tiny_dir) -> None:
    monkeypatch.setattr(serving_backends, "agrees_with_torch", lambda *args: False)
    assert inference.model_fn(str(tiny_dir)).backend == "torch"


def test_required_onnxruntime_must_be_there(monkeypatch, tiny_dir) -> None:
    monkeypatch.setenv("INFERENCE_BACKEND", "onnxruntime")
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(RuntimeError, match="onnxruntime"):
        inference.model_fn(str(tiny_dir))


def test_unknown_backend_is_refused(monkeypatch, tiny_dir) -> None:
    monkeypatch.setenv("INFERENCE_BACKEND", "tensorrt")
    with pytest.raises(ValueError, match="INFERENCE_BACKEND"):
        inference.model_fn(str(tiny_dir))


def _broken_copy(src: Path, dst: Path, file: str, change: dict | list) -> Path:
    shutil.copytree(src, dst)
    path = dst / file
    document = json.loads(path.read_text())
    if isinstance(change, dict):
        document.update(change)
    else:
        document = change
    path.write_text(json.dumps(document))
    return dst


@pytest.mark.parametrize(
    ("file", "change", "message"),
    [
        ("metadata.json", {"format_version": 2}, "format_version"),
        ("metadata.json", {"weights_format": "state_dict"}, "weights_format"),
        ("metadata.json", {"num_classes": 100}, "classes"),
        ("metadata.json", {"preprocess": {"resize": 16}}, "preprocess"),
        ("classes.json", [1, 2, 3], "classes.json"),
    ],
)
def test_inconsistent_artifact_fails_at_load(tmp_path, tiny_dir, file, change, message) -> None:
    broken = _broken_copy(tiny_dir, tmp_path / "broken", file, change)
    with pytest.raises(ValueError, match=message):
        inference.model_fn(str(broken))


def test_handler_functions_fit_the_toolkit_calling_convention() -> None:
    # sagemaker_inference passes (args...) or (args..., context) depending on the arity.
    for function, arguments in [
        (inference.model_fn, 1),
        (inference.input_fn, 2),
        (inference.predict_fn, 2),
        (inference.output_fn, 2),
    ]:
        parameters = list(inspect.signature(function).parameters.values())
        assert len(parameters) == arguments + 1
        assert parameters[-1].default is None


def test_errors_fall_back_to_a_stand_in_without_the_toolkit(monkeypatch) -> None:
    # Outside the container (and dev env) sagemaker_inference may be absent; the handler must
    # still import and its errors keep the toolkit's constructor and attributes.
    # (tests/unit/handler/test_toolkit.py drives the real toolkit.)
    monkeypatch.setitem(sys.modules, "sagemaker_inference.errors", None)  # import -> ImportError
    for name in HANDLER_MODULES:  # the helpers too are imported afresh, as in such a container
        monkeypatch.delitem(sys.modules, name, raising=False)
    spec = importlib.util.spec_from_file_location("inference_without_toolkit", HANDLER_FILE)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "inference_without_toolkit", module)  # for its dataclasses
    spec.loader.exec_module(module)

    with pytest.raises(module.InferenceError) as caught:
        module.input_fn(b"...", "text/plain")

    error = caught.value
    # The stand-in base lives in the handler's own errors module, not sagemaker_inference.errors.
    assert type(error).__mro__[1].__module__ == "serving_errors"
    assert (error.status_code, error.phrase) == (415, "Unsupported Media Type")
    assert json.loads(error.message)["error"] == "unsupported_content_type"


def test_errors_carry_status_without_the_toolkit() -> None:
    error = inference.InferenceError(413, "image_too_large", "too big")
    assert (error.status_code, error.phrase) == (413, "Request Entity Too Large")
    assert json.loads(error.message) == {
        "error": "image_too_large",
        "message": "too big",
        "status": 413,
    }
    assert "\n" not in error.message  # the toolkit appends the traceback after a newline
