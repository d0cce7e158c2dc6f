"""Small synthetic datasets with a real, learnable signal (smoke runs, tests, benchmarks).

Class ``k`` is a colour plus a class-specific stripe orientation under heavy noise: a model
has to learn something to beat chance, yet a few epochs on a CPU are enough.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from trainlib.layouts import write_cifar, write_image_folder

PALETTE = np.array(
    [[220, 50, 50], [50, 200, 60], [60, 80, 220], [200, 200, 60], [170, 60, 200], [60, 200, 200]],
    dtype=np.float64,
)


def class_names(num_classes: int) -> list[str]:
    return [f"class_{k:02d}" for k in range(num_classes)]


def make_images(
    num_classes: int, per_class: int, size: int = 32, seed: int = 0, noise: float = 40.0
) -> tuple[np.ndarray, np.ndarray]:
    """``images`` uint8 ``[N, size, size, 3]`` and ``labels`` ``[N]``, classes interleaved."""
    rng = np.random.default_rng(seed)
    labels = np.tile(np.arange(num_classes), per_class)
    colours = PALETTE[labels % len(PALETTE)] * (1 - 0.3 * (labels // len(PALETTE)))[:, None]
    yy, xx = np.mgrid[0:size, 0:size]
    stripes = np.stack([np.sin((yy if k % 2 else xx) * (1 + k % 3)) for k in range(num_classes)])
    images = colours[:, None, None, :] + 30 * stripes[labels][..., None]
    images = images + rng.normal(0, noise, images.shape)
    return np.clip(images, 0, 255).astype(np.uint8), labels


def write_dataset(
    root: Path,
    layout: str,
    num_classes: int = 4,
    train_per_class: int = 24,
    test_per_class: int = 8,
    size: int = 32,
    seed: int = 0,
) -> tuple[Path, Path]:
    """``root/train`` and ``root/test`` channels in ``layout`` ("cifar" needs size 32)."""
    names = class_names(num_classes)
    channels = []
    for split, per_class, split_seed in (
        ("train", train_per_class, seed),
        ("test", test_per_class, seed + 1),
    ):
        images, labels = make_images(num_classes, per_class, size, split_seed)
        channel = root / split
        if layout == "cifar":
            write_cifar(channel, split, images, labels, names)
        else:
            write_image_folder(channel, images, labels, names)
        channels.append(channel)
    return channels[0], channels[1]
