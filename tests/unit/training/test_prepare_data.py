"""prepare_data.py in-process: a synthetic cifar-100-python source, both layouts read back by
the training loader, an S3 prefix under moto, and the offline failure."""

from __future__ import annotations

import socket
import urllib.error
from pathlib import Path

import boto3
import numpy as np
import prepare_data
import pytest
import torch
from moto import mock_aws

from trainlib.data import load_channel
from trainlib.layouts import write_cifar
from trainlib.synthetic import class_names, make_images

PER_CLASS = {"train": 4, "test": 2}


@pytest.fixture
def source(tmp_path: Path) -> tuple[Path, dict[str, tuple[np.ndarray, np.ndarray]]]:
    """``cifar-100-python/{train,test,meta}`` in the official pickle format, and its content."""
    parent, names = tmp_path / "source", class_names(3)
    content = {}
    for seed, split in enumerate(("train", "test")):
        images, labels = make_images(3, PER_CLASS[split], size=32, seed=seed)
        write_cifar(parent, split, images, labels, names)
        content[split] = (images, labels)
    return parent, content


@pytest.fixture
def fake_aws(monkeypatch: pytest.MonkeyPatch) -> None:
    """Credentials and a region for boto3 under moto; never a real profile."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.delenv("AWS_PROFILE", raising=False)


def expected_tensors(images: np.ndarray, labels: np.ndarray, layout: str):
    """What the loader should give back: the source order for the pickles; class by class
    (files named by source index, so in source order within a class) for an ImageFolder."""
    order = np.arange(len(labels)) if layout == "cifar" else np.argsort(labels, kind="stable")
    chw = torch.from_numpy(images[order]).permute(0, 3, 1, 2)
    return chw, torch.as_tensor(labels[order])


@pytest.mark.parametrize("layout", ["cifar", "imagefolder"])
def test_both_layouts_read_back_by_the_training_loader(source, tmp_path, layout, capsys):
    parent, content = source
    out = tmp_path / "channels"
    argv = ["--output", str(out), "--layout", layout, "--source", str(parent)]
    assert prepare_data.main(argv) == 0
    assert f"({layout} layout)" in capsys.readouterr().out
    classes = None
    for split in ("train", "test"):
        loaded = load_channel(out / split, split, image_size=32, classes=classes)
        classes = loaded.classes
        assert loaded.classes == class_names(3)
        images, labels = expected_tensors(*content[split], layout)
        assert torch.equal(loaded.images, images)  # PNG and the pickles are both lossless
        assert torch.equal(loaded.labels, labels)
        assert loaded.source_size == (32, 32)
    if layout == "cifar":  # the official files are copied byte for byte
        for split in ("train", "test"):
            copied = out / split / "cifar-100-python"
            assert sorted(p.name for p in copied.iterdir()) == sorted([split, "meta"])
            original = parent / "cifar-100-python" / split
            assert (copied / split).read_bytes() == original.read_bytes()


@pytest.mark.parametrize(
    ("layout", "expected"),
    [
        (
            "cifar",
            {
                "cifar100/v1/train/cifar-100-python/train",
                "cifar100/v1/train/cifar-100-python/meta",
                "cifar100/v1/test/cifar-100-python/test",
                "cifar100/v1/test/cifar-100-python/meta",
            },
        ),
        (
            "imagefolder",
            # Source index i has class i % 3 (make_images interleaves the classes).
            {f"cifar100/v1/train/class_{i % 3:02d}/{i:06d}.png" for i in range(12)}
            | {f"cifar100/v1/test/class_{i % 3:02d}/{i:06d}.png" for i in range(6)},
        ),
    ],
)
def test_s3_output_uploads_the_channels_under_the_prefix(
    source, fake_aws, capsys, layout, expected
):
    parent, _ = source
    with mock_aws():
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket="datasets")
        argv = ["--output", "s3://datasets/cifar100/v1/", "--layout", layout]
        assert prepare_data.main([*argv, "--source", str(parent)]) == 0
        listed = s3.list_objects_v2(Bucket="datasets")["Contents"]
        keys = {o["Key"] for o in listed}
        assert keys == expected
        if layout == "cifar":
            body = s3.get_object(Bucket="datasets", Key="cifar100/v1/train/cifar-100-python/train")
            original = parent / "cifar-100-python" / "train"
            assert body["Body"].read() == original.read_bytes()
    assert f"uploaded {len(expected)} objects ({layout} layout)" in capsys.readouterr().out


def test_missing_bucket_is_one_error_line(source, fake_aws, capsys):
    parent, _ = source
    with mock_aws():
        code = prepare_data.main(["--output", "s3://no-such-bucket/x", "--source", str(parent)])
    assert code == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1
    assert err[0].startswith("error: upload to s3://no-such-bucket/x failed")
    assert "NoSuchBucket" in err[0]


def test_offline_download_is_one_error_line_and_exit_2(tmp_path, monkeypatch, capsys):
    import torchvision.datasets.cifar as cifar

    calls = []

    def no_network(url: str, *args, **kwargs):
        # What urllib raises when the host name cannot be resolved (no network, no DNS).
        calls.append(url)
        raise urllib.error.URLError(
            socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")
        )

    monkeypatch.setattr(cifar, "download_and_extract_archive", no_network)
    out = tmp_path / "channels"
    argv = ["--output", str(out), "--download-dir", str(tmp_path / "dl")]
    assert prepare_data.main(argv) == 2
    assert calls
    assert calls[0].startswith("https://")
    captured = capsys.readouterr()
    err = captured.err.splitlines()
    assert len(err) == 1, captured.err
    assert err[0].startswith("error: could not download CIFAR-100 with torchvision (URLError")
    assert "name resolution" in err[0]
    assert "Traceback" not in captured.err + captured.out
    assert not out.exists()  # nothing half-written


def test_source_that_is_not_a_cifar_folder_is_one_error_line(tmp_path, capsys):
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "train").write_bytes(b"x")
    argv = ["--output", str(tmp_path / "out"), "--source", str(tmp_path / "src")]
    assert prepare_data.main(argv) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1
    assert err[0].startswith("error: ")
    assert "missing test, meta" in err[0]
