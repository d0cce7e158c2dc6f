"""Fixtures: small artifacts in the contract's format, loaded once, and real photos."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import skimage.data
import torch
import torchvision

from tests.unit.handler.artifacts import (
    HANDLER_DIR,
    PHOTOS,
    TinyNet,
    add_serving_graphs,
    load,
    write_artifact,
)

# As in the container, where code/ is on sys.path: the tests import the handler's helper
# modules (serving_images, serving_backends, ...) by the same top-level names it does.
if str(HANDLER_DIR) not in sys.path:
    sys.path.insert(0, str(HANDLER_DIR))

torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _one_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    # model_fn sets torch's thread count from this; the test machine's cores are shared.
    monkeypatch.setenv("INFERENCE_NUM_THREADS", "1")
    monkeypatch.delenv("INFERENCE_BACKEND", raising=False)
    monkeypatch.delenv("INFERENCE_DEVICE", raising=False)
    monkeypatch.delenv("INFERENCE_PRECISION", raising=False)


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    classes = [f"class_{i}" for i in range(10)]
    return write_artifact(tmp_path_factory.mktemp("tiny"), TinyNet(10), classes, 16)


@pytest.fixture(scope="session")
def resnet_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    classes = [f"label_{i:03d}" for i in range(100)]
    net = torchvision.models.resnet34(weights=None, num_classes=100)
    return write_artifact(tmp_path_factory.mktemp("resnet34"), net, classes, 32)


@pytest.fixture(scope="session")
def shipped_dir(tmp_path_factory: pytest.TempPathFactory, tiny_dir: Path) -> Path:
    """tiny_dir's model.pt with the graphs the final job ships beside it: model.onnx and
    model.int8.onnx, in metadata.json's "serving_graphs" (training's own writer)."""
    model_dir = tmp_path_factory.mktemp("shipped") / "model"
    shutil.copytree(tiny_dir, model_dir)
    graphs = add_serving_graphs(model_dir, mode="int8")
    assert graphs.files == {"fp32": "model.onnx", "int8": "model.int8.onnx"}, graphs.note
    return model_dir


@pytest.fixture(scope="session")
def tiny_model(tiny_dir: Path):
    return load(tiny_dir)


@pytest.fixture(scope="session")
def resnet_model(resnet_dir: Path):
    return load(resnet_dir)


@pytest.fixture(scope="session")
def photos() -> dict[str, np.ndarray]:
    return {name: getattr(skimage.data, name)() for name in PHOTOS}
