"""bench/accuracy.py without training: the IDX reader, the ImageFolder channels, the log summary."""

import gzip
import struct

import numpy as np
import pytest
from PIL import Image

from bench import accuracy
from bench.accuracy import (
    CLASSES,
    IMAGES_MAGIC,
    LABELS_MAGIC,
    IdxError,
    Line,
    folder_name,
    load_fashion_mnist,
    parse_idx,
    prepare_channels,
    read_idx,
    summarise,
)
from metric_definitions import format_metrics, parse_metrics
from trainlib.data import load_channel


def idx_bytes(array: np.ndarray) -> bytes:
    """The IDX format as the data set ships it: 0x0000, type 0x08 (ubyte), ndim, big-endian sizes."""
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()


def small_split(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = np.arange(n, dtype=np.uint8) % len(CLASSES)
    images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    return images, labels


def write_dataset(folder, *, compress: bool = True, n_train: int = 30, n_test: int = 20):
    """train-* and t10k-* files in the Debian package's naming (gzip, like the package)."""
    folder.mkdir(parents=True, exist_ok=True)
    splits = {"train": small_split(n_train, 0), "t10k": small_split(n_test, 1)}
    for prefix, (images, labels) in splits.items():
        for kind, array in (("images-idx3-ubyte", images), ("labels-idx1-ubyte", labels)):
            data = idx_bytes(array)
            if compress:
                (folder / f"{prefix}-{kind}.gz").write_bytes(gzip.compress(data))
            else:
                (folder / f"{prefix}-{kind}").write_bytes(data)
    return splits


def test_idx_magic_numbers_are_the_documented_ones():
    assert (LABELS_MAGIC, IMAGES_MAGIC) == (2049, 2051)
    images, labels = small_split(3, 0)
    assert idx_bytes(images)[:4] == (2051).to_bytes(4, "big")
    assert idx_bytes(labels)[:4] == (2049).to_bytes(4, "big")


@pytest.mark.parametrize("compress", [True, False])
def test_reads_gzip_and_plain_idx_files(tmp_path, compress):
    splits = write_dataset(tmp_path, compress=compress)
    data = load_fashion_mnist(tmp_path)
    for channel, prefix in (("train", "train"), ("test", "t10k")):
        images, labels = splits[prefix]
        assert data[channel].images.dtype == np.uint8
        assert data[channel].images.shape == images.shape
        np.testing.assert_array_equal(data[channel].images, images)
        np.testing.assert_array_equal(data[channel].labels, labels)


def test_parse_idx_reads_big_endian_sizes_and_wider_types():
    array = np.arange(6, dtype=">i4").reshape(2, 3)
    data = struct.pack(">HBB", 0, 0x0C, 2) + struct.pack(">2I", 2, 3) + array.tobytes()
    parsed = parse_idx(data)
    assert parsed.shape == (2, 3)
    assert parsed.dtype.isnative
    assert parsed.tolist() == [[0, 1, 2], [3, 4, 5]]


def test_a_truncated_idx_file_is_a_clear_error(tmp_path):
    images, _ = small_split(4, 0)
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(idx_bytes(images)[:-100])
    with pytest.raises(
        IdxError, match=r"truncated: its header declares 4x28x28 values \(3136 bytes\) but 3036"
    ):
        read_idx(path, IMAGES_MAGIC)
    with pytest.raises(IdxError, match="less than its 16-byte header"):
        parse_idx(idx_bytes(images)[:10], "short")


def test_a_truncated_gzip_file_is_a_clear_error(tmp_path):
    images, _ = small_split(4, 0)
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(idx_bytes(images))[:-20])
    with pytest.raises(IdxError, match="truncated or corrupt gzip stream"):
        read_idx(path, IMAGES_MAGIC)


def test_wrong_magic_extra_bytes_and_mismatched_counts_are_refused(tmp_path):
    _, labels = small_split(4, 0)
    with pytest.raises(IdxError, match="magic number 2049 where 2051 was expected"):
        parse_idx(idx_bytes(labels), "labels", IMAGES_MAGIC)
    with pytest.raises(IdxError, match="not an IDX file"):
        parse_idx(b"\x89PNG\r\n\x1a\n" + bytes(20), "png")
    with pytest.raises(IdxError, match="3 bytes after"):
        parse_idx(idx_bytes(labels) + b"abc", "labels")
    write_dataset(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(idx_bytes(labels[:3])))
    with pytest.raises(IdxError, match="t10k has 20 images and 3 labels"):
        load_fashion_mnist(tmp_path)


def test_missing_files_name_the_debian_package(tmp_path):
    with pytest.raises(IdxError, match=r"apt-get install dataset-fashion-mnist.*--data-dir"):
        load_fashion_mnist(tmp_path / "nowhere")


def test_class_folders_are_safe_names_of_the_documented_labels():
    names = [folder_name(c) for c in CLASSES]
    assert names[0] == "T-shirt_top"
    assert names[-1] == "Ankle_boot"
    assert all("/" not in n and " " not in n for n in names)
    assert len(set(names)) == len(CLASSES)


def test_writes_rgb_image_folder_channels_the_data_loader_reads(tmp_path):
    write_dataset(tmp_path / "idx")
    data = load_fashion_mnist(tmp_path / "idx")
    channels, reused = prepare_channels(tmp_path / "out", data, limit_train=None, seed=0)
    assert not reused
    assert sorted(p.name for p in channels["train"].iterdir()) == sorted(
        folder_name(c) for c in CLASSES
    )
    first = next((channels["train"] / "T-shirt_top").iterdir())
    with Image.open(first) as im:
        assert (im.mode, im.size) == ("RGB", (28, 28))
    train = load_channel(channels["train"], "train", 28)
    test = load_channel(channels["test"], "test", 28, classes=train.classes)
    assert (len(train), len(test)) == (30, 20)
    assert train.source_size == (28, 28)
    # Every image comes back as its grayscale copied to three channels, under its own label.
    for loaded, split in ((train, data["train"]), (test, data["test"])):
        for image, label in zip(loaded.images.numpy(), loaded.labels.tolist(), strict=True):
            assert (image == image[0]).all()
            matches = np.flatnonzero((split.images == image[0]).all(axis=(1, 2)))
            assert [CLASSES[split.labels[i]] for i in matches] == [
                c for c in CLASSES if folder_name(c) == loaded.classes[label]
            ]


def test_channels_are_reused_only_when_they_match(tmp_path):
    write_dataset(tmp_path / "idx")
    data = load_fashion_mnist(tmp_path / "idx")
    out = tmp_path / "out"
    assert prepare_channels(out, data, limit_train=None, seed=0)[1] is False
    assert prepare_channels(out, data, limit_train=None, seed=0)[1] is True
    channels, reused = prepare_channels(out, data, limit_train=20, seed=0)
    assert not reused
    assert len(list(channels["train"].rglob("*.png"))) == 20
    assert len(list(channels["test"].rglob("*.png"))) == 20


def test_summarise_times_epochs_from_the_metric_lines():
    texts = [
        (1.0, "loading"),
        (12.0, "data: 900 train / 100 val / 20 test images, 10 classes, stored (28, 28) -> 28px"),
        (20.0, format_metrics(epoch=1, step=1, batch_loss=2.3, batch_acc=0.1)),
        (30.0, format_metrics(epoch=1, step=2, batch_loss=2.0, batch_acc=0.2)),
        (
            32.0,
            format_metrics(epoch=1, train_loss=2.1, train_acc=0.15, val_loss=1.9, val_acc=0.3),
        ),
        (50.0, format_metrics(epoch=2, step=3, batch_loss=1.5, batch_acc=0.5)),
        (
            53.0,
            format_metrics(epoch=2, train_loss=1.5, train_acc=0.5, val_loss=1.2, val_acc=0.6),
        ),
        (55.0, format_metrics(test_loss=1.25, test_acc=0.61)),
        (55.1, "trained 2 epochs in 43.0s on cpu (bfloat16 autocast)"),
    ]
    lines = [Line(t, text, parse_metrics(text)) for t, text in texts]
    result = summarise(["hpo.py"], lines, 0, 56.0, False)
    assert result.startup_seconds == 12.0
    assert (result.train_images, result.val_images, result.test_images) == (900, 100, 20)
    assert (result.device, result.precision) == ("cpu", "bfloat16 autocast")
    assert [(e.epoch, e.seconds, e.train_seconds, e.val_seconds) for e in result.epochs] == [
        (1, 20.0, 18.0, 2.0),
        (2, 21.0, 18.0, 3.0),
    ]
    assert result.epochs[1].val_acc == 0.6
    assert (result.test_acc, result.test_seconds) == (0.61, 2.0)
    projection = accuracy.projection(result, 3600, full_train=1800)
    assert projection is not None
    assert projection["seconds_per_epoch_full_train_split"] == pytest.approx(41.0)
    met, text = accuracy.verdict(result, 3600, full_run=True)
    assert not met
    assert text.startswith("NOT MET: test accuracy 61.00% (< 92%)")


def test_hpo_command_trains_from_scratch_with_script_mode_arguments(tmp_path):
    args = accuracy.build_parser().parse_args(["--epochs", "2", "--image-size", "32"])
    command = accuracy.hpo_command(
        args, {"train": tmp_path / "a", "test": tmp_path / "b"}, tmp_path
    )
    pairs = dict(zip(command[2::2], command[3::2], strict=True))
    assert command[1].endswith("hpo.py")
    assert pairs["--pretrained"] == "false"
    assert pairs["--freeze_backbone"] == "false"
    assert (pairs["--epochs"], pairs["--image_size"]) == ("2", "32")
    assert pairs["--train"] == str(tmp_path / "a")
