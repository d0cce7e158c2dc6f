"""Generated sample data: an ImageFolder (``<class>/<n>.png``) with a real, learnable signal.

Each class has its own colour and stripe orientation, blurred by noise and random
brightness, so a model trained for an epoch or two does far better than chance while a
model that learns nothing (e.g. a tiny learning rate) stays near it: enough for the quality
gate to tell a good run from a bad one without downloading CIFAR-100.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

#: Real CIFAR-100 label names, so predictions read like the real service's.
CLASSES = ("apple", "sea", "forest", "sunflower", "cloud", "rose", "plain", "lobster")
_COLOURS = np.array(
    [
        [200, 30, 40],
        [30, 80, 200],
        [30, 140, 50],
        [230, 200, 30],
        [220, 220, 230],
        [200, 60, 150],
        [150, 120, 60],
        [240, 110, 20],
    ],
    dtype=np.float32,
)


def make_image(label: int, size: int, rng: np.random.Generator) -> Image.Image:
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    angle = np.pi * label / len(CLASSES)
    stripes = 0.5 + 0.5 * np.sin((np.cos(angle) * xx + np.sin(angle) * yy) * 2 * np.pi / 8)
    colour = _COLOURS[label] * rng.uniform(0.7, 1.1)
    image = colour[None, None, :] * (0.6 + 0.4 * stripes[..., None])
    image += rng.normal(0, 25, size=image.shape)
    return Image.fromarray(np.clip(image, 0, 255).astype(np.uint8))


def write_split(root: Path, per_class: int, size: int, classes: int, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    for label, name in enumerate(CLASSES[:classes]):
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        for n in range(per_class):
            make_image(label, size, rng).save(folder / f"{n:04d}.png")
    return root


def write_sample_dataset(
    root: Path,
    train_per_class: int = 40,
    test_per_class: int = 10,
    size: int = 32,
    classes: int = 4,
) -> tuple[Path, Path]:
    """``root/train`` and ``root/test`` (different seeds, so the test split is unseen)."""
    if not 2 <= classes <= len(CLASSES):
        raise ValueError(f"classes must be between 2 and {len(CLASSES)}")
    train = write_split(root / "train", train_per_class, size, classes, seed=1)
    test = write_split(root / "test", test_per_class, size, classes, seed=2)
    return train, test
