"""The local stack's choice between ImageNet weights and training from scratch."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest

from local import weights
from local.stack import local_environment


@pytest.fixture
def torch_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    return tmp_path / "torch"


def test_weights_in_torch_homes_cache_are_used_without_the_network(torch_home: Path) -> None:
    cached = torch_home / "hub" / "checkpoints" / "resnet34-b627a593.pth"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"weights")
    assert weights.cached_path() == cached  # where torchvision's get_state_dict looks
    found = weights.imagenet_weights(url="http://127.0.0.1:9/resnet34-b627a593.pth")
    assert found.available
    assert str(cached) in found.detail


def test_an_unreachable_download_is_a_quick_clear_no(torch_home: Path) -> None:
    with socket.socket() as closed:  # a port nobody listens on: refused at once
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    started = time.monotonic()
    found = weights.imagenet_weights(url=f"http://127.0.0.1:{port}/x.pth", timeout_s=2)
    assert not found.available
    assert "Error" in found.detail  # the exception's name and its first line
    assert time.monotonic() - started < 10
    assert not any((torch_home / "hub" / "checkpoints").iterdir())  # nothing half-written


def test_the_local_defaults_follow_the_weights() -> None:
    scratch = local_environment(sample_data=False, pretrained=False)
    assert (scratch["PRETRAINED"], scratch["IMAGE_SIZE"], scratch["GATE_MIN_ACCURACY"]) == (
        "false",
        "32",
        "0.05",
    )
    tuned = local_environment(sample_data=False, pretrained=True)
    assert (tuned["PRETRAINED"], tuned["IMAGE_SIZE"], tuned["GATE_MIN_ACCURACY"]) == (
        "true",
        "64",
        "0.2",
    )
    assert local_environment(sample_data=True)["PRETRAINED"] == "false"
