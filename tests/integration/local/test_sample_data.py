"""The generated sample data (``--sample-data``): the layout the local stack reads, the same
bytes for the same seed, and a task that is learnable without being trivial."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from local.sample_data import CLASSES, SHAPES, TEXTURES, class_design, write_sample_dataset


def digest(folder: Path) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*.png"))
    }


def pixels(folder: Path, name: str) -> np.ndarray:
    """Every image of one class, as float arrays (n, h, w, 3)."""
    return np.stack(
        [np.asarray(Image.open(p), dtype=np.float32) for p in sorted((folder / name).glob("*.png"))]
    )


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return write_sample_dataset(
        tmp_path_factory.mktemp("sample"), train_per_class=20, test_per_class=10
    )


def test_ten_classes_of_32px_rgb_pngs_in_an_image_folder(dataset: tuple[Path, Path]) -> None:
    train, test = dataset
    assert len(CLASSES) == 10
    for split, count in ((train, 20), (test, 10)):
        assert sorted(p.name for p in split.iterdir()) == sorted(CLASSES)
        for name in CLASSES:
            files = sorted((split / name).glob("*.png"))
            assert [f.name for f in files] == [f"{n:04d}.png" for n in range(count)]
    image = Image.open(next(train.rglob("*.png")))
    assert (image.format, image.mode, image.size) == ("PNG", "RGB", (32, 32))


def test_same_seed_same_bytes_and_the_test_split_is_other_images(
    dataset: tuple[Path, Path], tmp_path: Path
) -> None:
    train, test = dataset
    again, _ = write_sample_dataset(tmp_path, train_per_class=20, test_per_class=10)
    assert digest(again) == digest(train)
    assert not set(digest(train).values()) & set(digest(test).values())


def test_every_class_is_its_own_shape_and_texture() -> None:
    designs = [class_design(label) for label in range(len(CLASSES))]
    assert {(shape, texture) for shape, texture, _ in designs} == {
        (s, t) for s in SHAPES for t in TEXTURES
    }

    # Around the colour wheel, classes whose hues are close (within twice the jitter, so
    # their colours meet) differ in both shape and texture: there the drawing has to decide.
    # `forest`, `cloud` and `sea` have a colour of their own (the end-to-end test predicts
    # `forest` and `sea`).
    def apart(a: float, b: float) -> float:
        return min(abs(a - b), 1 - abs(a - b)) * 360

    for i, (shape, texture, hue) in enumerate(designs):
        close = [d for j, d in enumerate(designs) if j != i and apart(hue, d[2]) < 2 * 12 + 1]
        assert all(s != shape and t != texture for s, t, _ in close), (CLASSES[i], close)
        if CLASSES[i] in {"forest", "cloud", "sea"}:
            assert min(apart(hue, d[2]) for j, d in enumerate(designs) if j != i) > 50
        else:
            assert close, CLASSES[i]


def test_the_first_image_of_each_class_is_its_prototype(tmp_path: Path) -> None:
    """The clearest image of a class (its own hue, centred, mid size): what a demo predicts."""
    train, _ = write_sample_dataset(tmp_path, train_per_class=2, test_per_class=1)
    for name in CLASSES:
        prototype, other = pixels(train, name)
        assert prototype[16, 16].tolist() != other[16, 16].tolist()
        # Centred: the shape's box is symmetric about the middle, within a few pixels.
        background = np.median(prototype[[0, -1]].reshape(-1, 3), axis=0)
        rows = np.where((np.abs(prototype - background).mean(axis=2) > 60).any(axis=1))[0]
        assert abs((rows.min() + rows.max()) / 2 - 15.5) < 4, (name, rows.min(), rows.max())


def test_no_two_images_of_a_class_are_alike(dataset: tuple[Path, Path]) -> None:
    train, _ = dataset
    for name in CLASSES:
        images = pixels(train, name)
        # Textured and noisy inside an image, and varied (place, size, colour) across images.
        assert images.std(axis=(1, 2, 3)).min() > 20
        differences = np.abs(images[:, None] - images[None]).mean(axis=(2, 3, 4))
        assert differences[~np.eye(len(images), dtype=bool)].min() > 10


def test_mean_colour_alone_is_a_clue_but_does_not_solve_it(dataset: tuple[Path, Path]) -> None:
    """The old sample data (solid colours) was solved by a model's first steps; this is not."""
    train, test = dataset
    means = {name: pixels(train, name).mean(axis=(0, 1, 2)) for name in CLASSES}
    right = total = 0
    for name in CLASSES:
        for colour in pixels(test, name).mean(axis=(1, 2)):
            nearest = min(means, key=lambda c: float(np.linalg.norm(means[c] - colour)))
            right += nearest == name
            total += 1
    accuracy = right / total
    assert 0.2 < accuracy < 0.9, accuracy  # chance is 0.1


def test_fewer_classes_and_other_sizes() -> None:
    with pytest.raises(ValueError, match="between 2 and 10"):
        write_sample_dataset(Path("unused"), classes=11)
    with pytest.raises(ValueError, match="between 2 and 10"):
        write_sample_dataset(Path("unused"), classes=1)


def test_a_small_set_of_three_classes(tmp_path: Path) -> None:
    train, test = write_sample_dataset(
        tmp_path, train_per_class=3, test_per_class=1, size=16, classes=3
    )
    assert sorted(p.name for p in train.iterdir()) == sorted(CLASSES[:3])
    assert len(list(test.rglob("*.png"))) == 3
    assert Image.open(next(test.rglob("*.png"))).size == (16, 16)
