import pickle

import numpy as np
import pytest
import torch
from PIL import Image

from trainlib.data import iterate_batches, load_channel, split_train_val
from trainlib.errors import InputError
from trainlib.layouts import write_image_folder
from trainlib.synthetic import make_images


def write_official_pickles(channel, split, rows, labels, names):
    """The CIFAR-100 python layout written by hand, as the official archive has it."""
    root = channel / "cifar-100-python"
    root.mkdir(parents=True)
    with (root / split).open("wb") as f:
        pickle.dump({b"data": rows, b"fine_labels": labels, b"coarse_labels": [0] * len(labels)}, f)
    with (root / "meta").open("wb") as f:
        pickle.dump({b"fine_label_names": names, b"coarse_label_names": [b"x"]}, f)


def test_reads_the_official_cifar_pickles(tmp_path):
    rows = np.arange(2 * 3072, dtype=np.int64).astype(np.uint8).reshape(2, 3072)
    write_official_pickles(tmp_path, "train", rows, [1, 0], [b"apple", b"aquarium_fish"])
    data = load_channel(tmp_path, "train", 32)
    assert data.classes == ["apple", "aquarium_fish"]
    assert data.labels.tolist() == [1, 0]
    assert data.images.shape == (2, 3, 32, 32)
    assert data.images.dtype == torch.uint8
    # rows are channel-major: the first 1024 bytes are the red plane
    assert torch.equal(data.images[0, 0].flatten(), torch.from_numpy(rows[0, :1024]))
    assert torch.equal(data.images[0, 1].flatten(), torch.from_numpy(rows[0, 1024:2048]))


def test_image_folder_labels_follow_sorted_class_names(tmp_path):
    images, labels = make_images(3, 2, size=20)
    write_image_folder(tmp_path, images, labels, ["cat", "ant", "bee"])
    data = load_channel(tmp_path, "train", 64)
    assert data.classes == ["ant", "bee", "cat"]
    assert sorted(data.labels.tolist()) == [0, 0, 1, 1, 2, 2]
    assert data.images.shape == (6, 3, 20, 20)  # same size everywhere: stored as is


def test_test_channel_reuses_training_label_order(tmp_path):
    images, labels = make_images(1, 2, size=8)
    write_image_folder(tmp_path, images, labels, ["zebra"])
    data = load_channel(tmp_path, "test", 8, classes=["apple", "zebra"])
    assert data.labels.tolist() == [1, 1]
    with pytest.raises(InputError, match="zebra"):
        load_channel(tmp_path, "test", 8, classes=["apple"])


def test_mixed_sizes_are_resized_once(tmp_path):
    (tmp_path / "a").mkdir()
    Image.new("RGB", (10, 20), "red").save(tmp_path / "a" / "1.png")
    Image.new("L", (30, 30), 128).save(tmp_path / "a" / "2.jpg")
    data = load_channel(tmp_path, "train", 16)
    assert data.images.shape == (2, 3, 16, 16)
    assert data.source_size is None  # no single native size to record


def test_the_native_size_is_kept_through_the_split(tmp_path):
    images, labels = make_images(2, 4, size=24)
    wide = images[:, :, :20]  # 24 high, 20 wide
    write_image_folder(tmp_path / "folder", wide, labels, ["a", "b"])
    folder = load_channel(tmp_path / "folder", "train", 64)
    assert folder.source_size == (24, 20)
    train, val = split_train_val(folder, 0.25, seed=0)
    assert train.source_size == val.source_size == (24, 20)
    rows = np.zeros((2, 3072), dtype=np.uint8)
    write_official_pickles(tmp_path / "cifar", "train", rows, [0, 1], [b"x", b"y"])
    assert load_channel(tmp_path / "cifar", "train", 128).source_size == (32, 32)


@pytest.mark.parametrize(
    ("setup", "needle"),
    [
        (lambda p: None, "does not exist"),
        (lambda p: p.mkdir(), "is empty"),
        (lambda p: (p.mkdir(), (p / "notes.txt").write_text("x")), "neither"),
        (
            lambda p: (
                p.mkdir(parents=True),
                (p / "a").mkdir(),
                (p / "a" / "x.txt").write_text("x"),
            ),
            "no images",
        ),
        (
            lambda p: (
                (p / "a").mkdir(parents=True),
                (p / "a" / "bad.png").write_bytes(b"\x89PNG broken"),
            ),
            "bad.png",
        ),
        (
            lambda p: (
                (p / "cifar-100-python").mkdir(parents=True),
                (p / "cifar-100-python" / "meta").write_bytes(b"junk"),
                (p / "cifar-100-python" / "train").write_bytes(b"junk"),
            ),
            "not a CIFAR-100",
        ),
        (
            lambda p: (
                (p / "cifar-100-python").mkdir(parents=True),
                (p / "cifar-100-python" / "meta").write_bytes(b""),
            ),
            "no 'train' file",
        ),
    ],
    ids=[
        "missing",
        "empty",
        "neither-layout",
        "class-without-images",
        "corrupt-image",
        "corrupt-pickle",
        "cifar-without-split",
    ],
)
def test_bad_channels_fail_with_a_named_error(tmp_path, setup, needle):
    channel = tmp_path / "train"
    setup(channel)
    with pytest.raises(InputError, match=needle) as info:
        load_channel(channel, "train", 32)
    assert "\n" not in str(info.value)


def make_set(n_per_class=10, n_classes=3):
    from trainlib.data import ImageSet

    labels = torch.arange(n_classes).repeat(n_per_class)
    images = (
        torch.arange(len(labels), dtype=torch.uint8).view(-1, 1, 1, 1).expand(-1, 3, 2, 2).clone()
    )
    return ImageSet(images, labels, [str(i) for i in range(n_classes)])


def test_validation_split_is_seeded_stratified_and_disjoint():
    data = make_set()
    train, val = split_train_val(data, 0.2, seed=7)
    again_train, again_val = split_train_val(data, 0.2, seed=7)
    _, other_val = split_train_val(data, 0.2, seed=8)
    ids = lambda s: set(s.images[:, 0, 0, 0].tolist())  # noqa: E731
    assert ids(val) == ids(again_val)
    assert ids(train) == ids(again_train)
    assert ids(val) != ids(other_val)
    assert ids(train).isdisjoint(ids(val))
    assert len(ids(train) | ids(val)) == len(data)
    assert torch.bincount(val.labels).tolist() == [2, 2, 2]


def test_too_few_images_for_a_split():
    with pytest.raises(InputError, match="too few"):
        split_train_val(make_set(n_per_class=1), 0.1, seed=0)


def test_training_batches_cover_the_data_and_skip_a_lone_last_image():
    data = make_set(n_per_class=3, n_classes=3)  # 9 images
    seen = [
        len(labels)
        for _, labels in iterate_batches(
            data, 4, shuffle=True, generator=torch.Generator().manual_seed(0)
        )
    ]
    assert seen == [4, 4]
    assert [len(labels) for _, labels in iterate_batches(data, 4, shuffle=False)] == [4, 4, 1]
