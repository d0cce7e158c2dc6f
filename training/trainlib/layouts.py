"""Writers for the two channel layouts (the readers are in ``data``)."""

from __future__ import annotations

import pickle
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from trainlib.data import CIFAR_DIR


def write_cifar(
    channel: Path,
    split: str,
    images: np.ndarray,
    labels: Sequence[int] | np.ndarray,
    classes: Sequence[str],
) -> Path:
    """``channel/cifar-100-python/{split,meta}`` as the official pickles (``images``: N,32,32,3 uint8)."""
    root = channel / CIFAR_DIR
    root.mkdir(parents=True, exist_ok=True)
    images = np.asarray(images, dtype=np.uint8)
    rows = images.transpose(0, 3, 1, 2).reshape(len(images), -1)  # CHW rows, as the originals
    batch = {
        b"filenames": [f"{i:06d}.png".encode() for i in range(len(images))],
        b"fine_labels": [int(x) for x in labels],
        b"data": rows,
    }
    with (root / split).open("wb") as f:
        pickle.dump(batch, f)
    with (root / "meta").open("wb") as f:
        pickle.dump({b"fine_label_names": [c.encode() for c in classes]}, f)
    return root


def write_image_folder(
    channel: Path, images: np.ndarray, labels: Sequence[int] | np.ndarray, classes: Sequence[str]
) -> Path:
    """``channel/<class>/<index>.png`` (``images``: N,H,W,3 uint8)."""
    for i, (image, label) in enumerate(zip(images, labels, strict=True)):
        folder = channel / classes[int(label)]
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.asarray(image, dtype=np.uint8)).save(folder / f"{i:06d}.png")
    return channel
