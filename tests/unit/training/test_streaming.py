"""The streamed ImageFolder path: the in-memory path's batches, read from disk by workers."""

from __future__ import annotations

import io
import json
import re

import numpy as np
import pytest
import torch
from PIL import Image

from trainlib import data as data_module
from trainlib.data import (
    ImageFiles,
    ImageSet,
    choose_loading,
    epoch_batches,
    estimated_decoded_bytes,
    load_batches,
    load_channel,
    shard_batches,
    split_train_val,
)
from trainlib.errors import InputError
from trainlib.layouts import write_image_folder
from trainlib.synthetic import make_images, write_dataset


def write_folder(root, sizes: list[tuple[int, int]], per_class: int = 5) -> None:
    """Three classes of PNGs, the i-th file of a class ``sizes[i % len(sizes)]`` (w, h), and
    one JPEG stored sideways with an EXIF orientation that turns it upright (h, w swapped)."""
    rng = np.random.default_rng(0)
    for c in ("ant", "bee", "cat"):
        (root / c).mkdir(parents=True)
        for i in range(per_class):
            w, h = sizes[i % len(sizes)]
            pixels = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / c / f"{i:03d}.png")
    w, h = sizes[0]
    sideways = Image.fromarray(rng.integers(0, 256, (w, h, 3), dtype=np.uint8))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees to display: decoded (after transpose) as h x w
    sideways.save(root / "bee" / "999.jpg", exif=exif.tobytes(), quality=95)


@pytest.mark.parametrize("sizes", [[(20, 12)], [(20, 12), (16, 16)]], ids=["one-size", "mixed"])
@pytest.mark.parametrize("world", [1, 2])
def test_streamed_batches_equal_the_in_memory_ones(tmp_path, sizes, world):
    write_folder(tmp_path, sizes)
    memory = load_channel(tmp_path, "train", 24)
    # One case through real DataLoader worker processes, the rest in-process (faster).
    workers = 1 if world == 2 and len(sizes) == 2 else 0
    streamed = load_channel(tmp_path, "train", 24, loading="stream", workers=workers)
    assert isinstance(memory, ImageSet)
    assert isinstance(streamed, ImageFiles)
    assert streamed.classes == memory.classes
    assert torch.equal(streamed.labels, memory.labels)
    assert streamed.source_size == memory.source_size == ((12, 20) if len(sizes) == 1 else None)
    assert streamed.stored_size == memory.stored_size
    mem_train, mem_val = split_train_val(memory, 0.2, seed=3)
    str_train, str_val = split_train_val(streamed, 0.2, seed=3)
    for rank in range(world):
        for epoch_seed in (0, 1):  # the same generator state: the same batches
            orders = [
                epoch_batches(len(t), 3, torch.Generator().manual_seed(epoch_seed), rank, world)
                for t in (mem_train, str_train)
            ]
            pairs = zip(
                load_batches(mem_train, orders[0]),
                load_batches(str_train, orders[1]),
                strict=True,
            )
            for (a_images, a_labels), (b_images, b_labels) in pairs:
                assert torch.equal(a_images, b_images)
                assert torch.equal(a_labels, b_labels)
        evaluation = shard_batches(len(mem_val), 2, rank, world)
        for a, b in zip(
            load_batches(mem_val, evaluation), load_batches(str_val, evaluation), strict=True
        ):
            assert torch.equal(a[0], b[0])
            assert torch.equal(a[1], b[1])


def test_auto_streams_only_above_a_quarter_of_the_available_memory(tmp_path, monkeypatch):
    images, labels = make_images(2, 5, size=10)
    write_image_folder(tmp_path / "folder", images, labels, ["a", "b"])
    write_dataset(tmp_path / "cifar", "cifar", num_classes=2, train_per_class=3, test_per_class=1)
    decoded = 10 * 3 * 10 * 10
    assert estimated_decoded_bytes(tmp_path / "folder", 64) == decoded
    assert estimated_decoded_bytes(tmp_path / "cifar" / "train", 64) == 0  # read whole anyway
    channels = [tmp_path / "folder", tmp_path / "cifar" / "test"]
    monkeypatch.setattr(data_module, "available_memory_bytes", lambda: 4 * decoded)
    assert choose_loading("auto", channels, 64)[0] == "memory"  # exactly a quarter: not over
    assert choose_loading("auto", channels, 64, local_processes=2)[0] == "stream"  # 2 copies
    monkeypatch.setattr(data_module, "available_memory_bytes", lambda: 4 * decoded - 1)
    mode, why = choose_loading("auto", channels, 64)
    assert mode == "stream"
    assert "25%" in why
    monkeypatch.setattr(data_module, "available_memory_bytes", lambda: None)
    assert choose_loading("auto", channels, 64)[0] == "memory"  # unknown: the fast path
    assert choose_loading("stream", channels, 64)[0] == "stream"
    assert choose_loading("memory", channels, 64)[0] == "memory"
    # A CIFAR channel is read into memory whatever the mode.
    assert isinstance(
        load_channel(tmp_path / "cifar" / "train", "train", 32, loading="stream"), ImageSet
    )


def test_available_memory_is_known_here():
    available = data_module.available_memory_bytes()
    assert available is None or available > 0


def test_a_file_cut_short_fails_when_read_with_one_error_line(tmp_path):
    images, labels = make_images(2, 3, size=16)
    write_image_folder(tmp_path, images, labels, ["a", "b"])
    victim = sorted((tmp_path / "b").iterdir())[0]
    buffer = io.BytesIO()
    Image.fromarray(np.zeros((16, 16, 3), np.uint8) + 77).save(buffer, "PNG")
    victim.write_bytes(buffer.getvalue()[:60])  # the header survives, the pixels do not
    streamed = load_channel(tmp_path, "train", 16, loading="stream", workers=1)  # header: fine
    with pytest.raises(InputError, match=re.escape(victim.name)) as info:
        list(load_batches(streamed, shard_batches(len(streamed), 4)))
    assert "\n" not in str(info.value)
    with pytest.raises(InputError, match=re.escape(victim.name)):  # the in-memory path: at load
        load_channel(tmp_path, "train", 16)
    (tmp_path / "a" / "junk.png").write_bytes(b"not an image")
    with pytest.raises(InputError, match=r"junk\.png"):  # an unreadable header: at load
        load_channel(tmp_path, "train", 16, loading="stream")


def test_a_run_streams_to_the_same_numbers(tmp_path):
    from trainlib.cli import run
    from trainlib.config import parse_config

    write_dataset(
        tmp_path / "data",
        "imagefolder",
        num_classes=2,
        train_per_class=8,
        test_per_class=3,
        size=24,
    )
    results = {}
    for mode in ("memory", "stream"):
        argv = [
            "--train", str(tmp_path / "data" / "train"), "--test", str(tmp_path / "data" / "test"),
            "--model-dir", str(tmp_path / mode / "model"),
            "--output-data-dir", str(tmp_path / mode / "output"),
            "--pretrained", "false", "--freeze_backbone", "true", "--image_size", "32",
            "--batch_size", "4", "--hidden_units", "16", "--epochs", "2", "--amp", "off",
            "--data_loading", mode, "--checkpoint-dir", "",
        ]  # fmt: skip
        results[mode] = run(
            parse_config(argv, "train_model.py", "test", env={}), instrumented=False
        )
    assert results["stream"] == results["memory"]
    memory, streamed = (
        json.loads((tmp_path / mode / "output" / "metrics.json").read_text())
        for mode in ("memory", "stream")
    )
    assert streamed["batches"] == memory["batches"]
    assert streamed["epochs"] == memory["epochs"]
