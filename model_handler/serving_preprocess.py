"""The evaluation transform of metadata.json["preprocess"], precomputed once per worker:
decode at the model's size, Resize(source_size) -> Resize -> ToTensor -> Normalize."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeGuard

import numpy as np
import numpy.typing as npt
from PIL import Image
from serving_images import decode_rgb

_INTERPOLATIONS = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "box": Image.Resampling.BOX,
    "hamming": Image.Resampling.HAMMING,
    "lanczos": Image.Resampling.LANCZOS,
}


def _is_size(value: object) -> TypeGuard[Sequence[int]]:
    return (
        isinstance(value, Sequence)
        and len(value) == 2
        and all(isinstance(v, int) and v > 0 for v in value)
    )


@dataclass(frozen=True)
class Preprocess:
    """The transform as numbers, so a request only resizes and does one multiply-add."""

    size: tuple[int, int]  # (height, width), torchvision's Resize order
    # The training images' native (height, width), e.g. (32, 32) for CIFAR: a photo is brought
    # down to it first, so it reaches the model as the upsampled training images did.
    source: tuple[int, int] | None
    resample: Image.Resampling
    scale: npt.NDArray[np.float32]  # per channel 1 / (255 * std): ToTensor and Normalize in one
    bias: npt.NDArray[np.float32]  # per channel -mean / std

    @classmethod
    def from_metadata(cls, spec: dict[str, Any]) -> Preprocess:
        resize = spec.get("resize")
        if not _is_size(resize):
            raise ValueError(f"preprocess.resize must be [height, width], got {resize!r}")
        source = spec.get("source_size")  # absent in older artifacts, null for mixed sizes
        if source is not None and not _is_size(source):
            raise ValueError(f"preprocess.source_size must be [height, width], got {source!r}")
        interpolation = spec.get("interpolation", "bilinear")
        if interpolation not in _INTERPOLATIONS:
            raise ValueError(f"unsupported preprocess.interpolation {interpolation!r}")
        mean = np.asarray(spec["mean"], dtype=np.float32)
        std = np.asarray(spec["std"], dtype=np.float32)
        if mean.shape != (3,) or std.shape != (3,) or np.any(std <= 0):
            raise ValueError("preprocess.mean and preprocess.std need three values, std > 0")
        return cls(
            size=(resize[0], resize[1]),
            source=(source[0], source[1]) if source else None,
            resample=_INTERPOLATIONS[interpolation],
            scale=(1.0 / (255.0 * std)).astype(np.float32),
            bias=(-mean / std).astype(np.float32),
        )

    def batch(self, images: Sequence[Image.Image]) -> npt.NDArray[np.float32]:
        """Decode, convert to RGB, resize and normalise images into one float32 NCHW array."""
        height, width = self.size
        out = np.empty((len(images), height, width, 3), dtype=np.float32)
        for i, image in enumerate(images):
            rgb = decode_rgb(image, self.source or self.size)
            if self.source is not None and rgb.size != self.source[::-1]:
                rgb = rgb.resize(self.source[::-1], self.resample)
            rgb = rgb.resize((width, height), self.resample)
            np.multiply(np.asarray(rgb, dtype=np.float32), self.scale, out=out[i])
        out += self.bias
        return np.ascontiguousarray(out.transpose(0, 3, 1, 2))
