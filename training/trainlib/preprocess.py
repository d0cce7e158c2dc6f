"""The preprocess dict of metadata.json and the transforms built from it.

Serving reads ``metadata["preprocess"]``; training builds its evaluation transform from the
very same dict with :func:`build_eval_transform`, so the two cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torchvision.transforms import v2

#: CIFAR-100 training-set channel statistics (the contract's normalisation).
CIFAR100_MEAN = (0.5071, 0.4865, 0.4409)
CIFAR100_STD = (0.2673, 0.2564, 0.2762)


def preprocess_spec(
    image_size: int,
    mean: tuple[float, ...] = CIFAR100_MEAN,
    std: tuple[float, ...] = CIFAR100_STD,
    source_size: tuple[int, int] | None = None,
) -> dict[str, Any]:
    """The ``preprocess`` entry of metadata.json.

    ``source_size`` is the ``(h, w)`` every training image had before the upsampling to
    ``image_size`` (``(32, 32)`` for CIFAR), or None when the sizes were mixed.
    """
    return {
        "resize": [image_size, image_size],
        "interpolation": "bilinear",
        "mean": list(mean),
        "std": list(std),
        "source_size": list(source_size) if source_size is not None else None,
    }


def build_eval_transform(spec: dict[str, Any]) -> Callable[[Any], torch.Tensor]:
    """[Resize(source_size) ->] Resize(resize) -> float in [0, 1] -> Normalize, from a preprocess dict.

    When the dict has a ``source_size``, an image is first brought down to the training images'
    native size, so a full-size photo reaches the model as blurry as the upsampled CIFAR images
    it was trained on (a no-op for inputs already that size). Accepts a PIL image (serving) or a uint8 tensor ``[..., 3, H, W]`` (a whole batch in
    training); returns a plain float tensor.
    """
    interpolation = v2.InterpolationMode(spec["interpolation"])
    source_size = spec.get("source_size")  # absent in older artifacts
    to_source = (
        [v2.Resize(list(source_size), interpolation=interpolation, antialias=True)]
        if source_size
        else []
    )
    pipeline = v2.Compose(
        [
            v2.ToImage(),
            *to_source,
            v2.Resize(list(spec["resize"]), interpolation=interpolation, antialias=True),
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize(list(spec["mean"]), list(spec["std"])),
        ]
    )

    def transform(images: Any) -> torch.Tensor:
        return pipeline(images).as_subclass(torch.Tensor)

    return transform


def augment_batch(images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Random crop (zero padding of 1/8 of the side) and horizontal flip of a uint8 batch.

    Works on the stored resolution, before the resize, where it is cheapest; the crop offsets
    and flips are drawn per image.
    """
    n, _, h, w = images.shape
    pad = max(1, h // 8)
    padded = torch.nn.functional.pad(images, (pad, pad, pad, pad))
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=generator).tolist()
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=generator).tolist()
    flips = torch.rand(n, generator=generator) < 0.5
    out = torch.stack(
        [padded[i, :, y : y + h, x : x + w] for i, (y, x) in enumerate(zip(dy, dx, strict=True))]
    )
    return torch.where(flips.view(n, 1, 1, 1).to(out.device), out.flip(-1), out)
