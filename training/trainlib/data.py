"""Channels in either layout -> in-memory uint8 image tensors, plus the validation split.

A channel holds the official CIFAR-100 python layout (``cifar-100-python/{train,test,meta}``)
or an ImageFolder (``<class name>/<image file>``). Images are decoded once, up front: every
epoch after that is tensor indexing (no per-sample PIL decode), and a corrupt file fails the
run before anything is trained or written.
"""

from __future__ import annotations

import pickle
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from trainlib.errors import InputError

CIFAR_DIR = "cifar-100-python"
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".gif", ".tif", ".tiff"}


@dataclass(frozen=True)
class ImageSet:
    """``images``: uint8 ``[N, 3, H, W]``; ``labels``: int64 ``[N]``; ``classes``: label names;
    ``source_size``: the ``(h, w)`` all files had on disk, None when their sizes were mixed
    (then ``images`` were resized to the image size at load)."""

    images: torch.Tensor
    labels: torch.Tensor
    classes: list[str]
    source_size: tuple[int, int] | None = None

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, indices: torch.Tensor) -> ImageSet:
        return ImageSet(self.images[indices], self.labels[indices], self.classes, self.source_size)


def _unpickle(path: Path) -> dict:
    # The channel is the job's own training data, as in torchvision's CIFAR100 loader.
    try:
        with path.open("rb") as f:
            content = pickle.load(f, encoding="bytes")
    except (
        pickle.UnpicklingError,
        EOFError,
        ValueError,
        TypeError,
        AttributeError,
        ImportError,
    ) as e:
        raise InputError(f"{path} is not a CIFAR-100 python pickle ({type(e).__name__})") from None
    if not isinstance(content, dict):
        raise InputError(f"{path} is not a CIFAR-100 python pickle (no dict inside)")
    return content


def _cifar_root(channel: Path) -> Path | None:
    if (channel / CIFAR_DIR).is_dir():
        return channel / CIFAR_DIR
    if (channel / "meta").is_file():  # the channel is the cifar-100-python folder itself
        return channel
    return None


def load_cifar(root: Path, split: str) -> ImageSet:
    """Read ``root/<split>`` and ``root/meta`` (the official pickles)."""
    meta_path, data_path = root / "meta", root / split
    for path in (meta_path, data_path):
        if not path.is_file():
            raise InputError(
                f"{root} has no {path.name!r} file (CIFAR-100 layout needs {split} and meta)"
            )
    names = _unpickle(meta_path).get(b"fine_label_names")
    batch = _unpickle(data_path)
    data, labels = batch.get(b"data"), batch.get(b"fine_labels")
    if names is None or data is None or labels is None:
        raise InputError(f"{root} lacks b'fine_label_names', b'data' or b'fine_labels'")
    data = np.asarray(data, dtype=np.uint8)
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or len(data) != len(labels) or len(data) == 0:
        raise InputError(
            f"{data_path}: expected N x 3072 uint8 rows and N labels, got {data.shape}"
        )
    classes = [n.decode() if isinstance(n, bytes) else str(n) for n in names]
    targets = torch.as_tensor(np.asarray(labels, dtype=np.int64))
    if targets.min() < 0 or targets.max() >= len(classes):
        raise InputError(f"{data_path}: a label is outside 0..{len(classes) - 1}")
    images = torch.from_numpy(data.reshape(-1, 3, 32, 32).copy())
    return ImageSet(images, targets, classes, (32, 32))


def _class_dirs(channel: Path) -> list[Path]:
    return sorted(p for p in channel.iterdir() if p.is_dir() and not p.name.startswith("."))


def _decode(path: Path) -> Image.Image:
    try:
        with Image.open(path) as im:
            im.load()
            return ImageOps.exif_transpose(im).convert("RGB")
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise InputError(f"corrupt or unreadable image {path} ({type(e).__name__})") from None


def load_image_folder(
    channel: Path, image_size: int, classes: Sequence[str] | None = None
) -> ImageSet:
    """Decode ``<class>/<file>`` images; ``classes`` fixes the label order (the test channel
    reuses the training channel's). Mixed sizes are resized to ``image_size`` once, here."""
    dirs = _class_dirs(channel)
    found = [d.name for d in dirs]
    if classes is None:
        classes = found
    else:
        unknown = sorted(set(found) - set(classes))
        if unknown:
            raise InputError(
                f"{channel} has classes the training channel lacks: {', '.join(unknown[:5])}"
            )
    index = {name: i for i, name in enumerate(classes)}
    pictures: list[Image.Image] = []
    labels: list[int] = []
    for d in dirs:
        files = sorted(p for p in d.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise InputError(
                f"class folder {d} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})"
            )
        for path in files:
            pictures.append(_decode(path))
            labels.append(index[d.name])
    sizes = {im.size for im in pictures}
    source_size = None
    if len(sizes) > 1:
        pictures = [
            im.resize((image_size, image_size), Image.Resampling.BILINEAR) for im in pictures
        ]
    else:
        width, height = sizes.pop()
        source_size = (height, width)
    array = np.stack([np.asarray(im, dtype=np.uint8) for im in pictures])
    images = torch.from_numpy(array).permute(0, 3, 1, 2).contiguous()
    return ImageSet(images, torch.tensor(labels, dtype=torch.int64), list(classes), source_size)


def load_channel(
    channel: Path, split: str, image_size: int, classes: Sequence[str] | None = None
) -> ImageSet:
    """Load a channel in whichever layout it holds; ``split`` picks the CIFAR pickle."""
    name = f"{split} channel {channel}"
    if not channel.is_dir():
        raise InputError(f"{name} does not exist or is not a directory")
    if not any(channel.iterdir()):
        raise InputError(f"{name} is empty")
    root = _cifar_root(channel)
    if root is not None:
        loaded = load_cifar(root, split)
        if classes is not None and loaded.classes != list(classes):
            raise InputError(f"{name}: its class names differ from the training channel's")
        return loaded
    if _class_dirs(channel):
        return load_image_folder(channel, image_size, classes)
    raise InputError(f"{name} holds neither {CIFAR_DIR}/ nor <class>/<image> folders")


def split_train_val(data: ImageSet, val_fraction: float, seed: int) -> tuple[ImageSet, ImageSet]:
    """Seeded, stratified hold-out: ``val_fraction`` of each class (at least one image of
    every class with two or more) goes to validation."""
    generator = torch.Generator().manual_seed(seed)
    val_parts, train_parts = [], []
    for label in torch.unique(data.labels).tolist():
        members = torch.nonzero(data.labels == label).flatten()
        members = members[torch.randperm(len(members), generator=generator)]
        n_val = min(len(members) - 1, max(1, round(val_fraction * len(members))))
        val_parts.append(members[:n_val])
        train_parts.append(members[n_val:])
    val_idx, train_idx = torch.cat(val_parts), torch.cat(train_parts)
    if len(val_idx) == 0 or len(train_idx) == 0:
        raise InputError(
            f"training channel has {len(data)} images: too few for a validation split of {val_fraction}"
        )
    return data.subset(train_idx.sort().values), data.subset(val_idx.sort().values)


def iterate_batches(
    data: ImageSet, batch_size: int, *, shuffle: bool, generator: torch.Generator | None = None
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """uint8 image / label batches. Training drops a last batch of one image: BatchNorm in
    train mode cannot normalise a single 1x1 feature map."""
    n = len(data)
    order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
    for start in range(0, n, batch_size):
        idx = order[start : start + batch_size]
        if shuffle and len(idx) == 1 and n > 1:
            break
        yield data.images[idx], data.labels[idx]
