"""Generated sample data: an ImageFolder (``<class>/<n>.png``) that is learnable but not trivial.

Ten classes, each a shape drawn with a texture (class = shape x texture: five shapes, two
textures) in a colour, on a textured background, with the nuisances a classifier has to see
past:

* position, size and angle of the shape are random;
* colour: each class has its own hue, but seven of them sit 23 degrees apart and the hue
  jitter is about half that, so neighbours' colours meet (neighbours always differ in shape
  and texture); brightness and saturation vary too;
* stripe angle, period and phase, checker size and offset vary per image;
* the background is a random grey-ish colour with a soft blotchy texture and its own
  brightness, and Gaussian noise covers everything.

Colour alone (the nearest mean colour) gets about 60% right; a short run of the local search
space (2 epochs, from scratch, 32 px) reaches well over the local gate's 0.5 without getting
near 1.0, a run that learns nothing stays near chance (10%), and different hyperparameters
score differently, so the quality gate has something to decide. Image ``0000.png`` of each
class and split is its prototype: its own hue, centred, mid size. Nothing is chiral (no
left/right distinction), because training augments with horizontal flips.

Everything is drawn from ``numpy.random.default_rng(seed)``: the same arguments give the same
bytes. It is not CIFAR-100: the class names are borrowed from it only so predictions read
like the real service's, and a photo is still classified as one of these ten.
"""

from __future__ import annotations

import colorsys
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

#: Each class: (name, shape, texture, hue in degrees). The names are real CIFAR-100 labels, so
#: predictions read like the real service's. Eight classes share the red-to-yellow and the
#: purple part of the colour wheel, 23 degrees apart: with the colour jitter, neighbours'
#: hues meet, so colour alone cannot tell them apart; along the wheel the textures alternate
#: and every pair of neighbours differs in shape too, so the drawing can. `forest` (green),
#: `cloud` (cyan) and `sea` (blue) have a colour of their own: the easy ones. The first three
#: have hues far apart.
_DESIGN = (
    ("apple", "disc", "stripes", 0),
    ("forest", "plus", "checker", 120),
    ("sea", "ring", "stripes", 235),
    ("lobster", "ring", "checker", 23),
    ("sunflower", "square", "stripes", 46),
    ("plain", "disc", "checker", 69),
    ("cloud", "triangle", "stripes", 178),
    ("orchid", "square", "checker", 290),
    ("tulip", "plus", "stripes", 313),
    ("rose", "triangle", "checker", 336),
)
CLASSES = tuple(name for name, *_ in _DESIGN)
SHAPES = ("disc", "square", "triangle", "ring", "plus")
TEXTURES = ("stripes", "checker")
_HUE_JITTER = 8.0  # +- degrees: a third of the 23 between neighbours
_NOISE = 16.0  # standard deviation of the Gaussian pixel noise (0-255 scale)
_RADIUS = (0.28, 0.40)  # of the image side
_BACKGROUND_VALUE = (0.3, 0.6)


def class_design(label: int) -> tuple[str, str, float]:
    """(shape, texture, hue in [0, 1)) of a class."""
    _, shape, texture, hue = _DESIGN[label]
    return shape, texture, hue / 360


class _Draw:
    """Random draws for one image; a prototype takes the middle of every range instead."""

    def __init__(self, rng: np.random.Generator, prototype: bool) -> None:
        self.rng, self.prototype = rng, prototype

    def uniform(self, low: float, high: float, n: int | None = None) -> Any:
        drawn = self.rng.uniform(low, high, n)  # drawn either way: one stream per split
        return np.full_like(drawn, (low + high) / 2) if self.prototype else drawn


def _shape_mask(shape: str, size: int, draw: _Draw) -> np.ndarray:
    """A float mask in [0, 1] of ``shape`` at a random place, scale and angle."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) + 0.5
    radius = size * float(draw.uniform(*_RADIUS))
    margin = radius * 0.85
    cy, cx = draw.uniform(margin, size - margin, 2)
    angle = float(draw.uniform(0, np.pi / 2))
    dy, dx = yy - cy, xx - cx
    # Coordinates rotated by `angle` (square and plus are symmetric under a quarter turn).
    u = np.cos(angle) * dx + np.sin(angle) * dy
    v = -np.sin(angle) * dx + np.cos(angle) * dy
    if shape == "disc":
        inside = np.hypot(dx, dy) - radius
    elif shape == "square":
        inside = np.maximum(np.abs(u), np.abs(v)) - radius * 0.85
    elif shape == "ring":
        inside = np.abs(np.hypot(dx, dy) - radius * 0.75) - radius * 0.28
    elif shape == "plus":
        arm = radius * 0.33
        inside = np.minimum(
            np.maximum(np.abs(u) - radius, np.abs(v) - arm),
            np.maximum(np.abs(v) - radius, np.abs(u) - arm),
        )
    elif shape == "triangle":
        # Pointing up (a vertical mirror image would be another class; flips are horizontal).
        h = radius * 1.3
        top = -(dy + h * 0.9)
        sides = (np.abs(dx) * 2 - (dy + h * 0.9)) / np.sqrt(5)
        inside = np.maximum(np.maximum(top, sides), dy - h * 0.6)
    else:
        raise ValueError(f"unknown shape {shape!r}")
    return np.clip(0.5 - inside, 0, 1)  # one pixel of anti-aliasing


def _texture(texture: str, size: int, draw: _Draw) -> np.ndarray:
    """Values in [0, 1]: stripes at a random angle and period, or a checkerboard."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    if texture == "stripes":
        angle = float(draw.uniform(0, np.pi))
        period = float(draw.uniform(2.5, 3.5)) * size / 32
        phase = (np.cos(angle) * xx + np.sin(angle) * yy) * 2 * np.pi / period
        return 0.5 + 0.5 * np.sign(np.sin(phase + float(draw.uniform(0, 2 * np.pi))))
    if texture == "checker":
        cell = float(draw.uniform(4.0, 6.0)) * size / 32
        oy, ox = draw.uniform(0, cell, 2)
        return (((yy + oy) // cell + (xx + ox) // cell) % 2).astype(np.float32)
    raise ValueError(f"unknown texture {texture!r}")


def _rgb(hue: float, saturation: float, value: float) -> np.ndarray:
    return np.array(colorsys.hsv_to_rgb(hue % 1.0, saturation, value), dtype=np.float32) * 255


def make_image(
    label: int, size: int, rng: np.random.Generator, prototype: bool = False
) -> Image.Image:
    """One image of class ``label``. A prototype is the class at the middle of every range
    (its own hue, centred, mid size), as noisy as the rest: the clearest image of it."""
    draw = _Draw(rng, prototype)
    shape, texture, hue = class_design(label)
    hue += float(draw.uniform(-_HUE_JITTER, _HUE_JITTER)) / 360
    light = _rgb(hue, float(draw.uniform(0.7, 1.0)), float(draw.uniform(0.75, 1.0)))
    dark = light * float(draw.uniform(0.35, 0.6))
    fill = _texture(texture, size, draw)[..., None]
    foreground = dark + (light - dark) * fill

    # Background: a random grey-ish colour, a soft blotchy texture and its own brightness.
    base = _rgb(
        float(draw.uniform(0, 1)),
        float(draw.uniform(0.0, 0.1)),
        float(draw.uniform(*_BACKGROUND_VALUE)),
    )
    noise = rng.normal(0, 1, (max(2, size // 8),) * 2)
    blotches = np.asarray(
        Image.fromarray(((noise - noise.min()) / np.ptp(noise) * 255).astype(np.uint8)).resize(
            (size, size), Image.Resampling.BILINEAR
        ),
        dtype=np.float32,
    )[..., None]
    background = base * (0.75 + 0.5 * blotches / 255)

    mask = _shape_mask(shape, size, draw)[..., None]
    image = background * (1 - mask) + foreground * mask
    image += rng.normal(0, _NOISE, size=image.shape)
    return Image.fromarray(np.clip(image, 0, 255).astype(np.uint8))


def write_split(root: Path, per_class: int, size: int, classes: int, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    for label, name in enumerate(CLASSES[:classes]):
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        for n in range(per_class):
            make_image(label, size, rng, prototype=n == 0).save(folder / f"{n:04d}.png")
    return root


def write_sample_dataset(
    root: Path,
    train_per_class: int = 80,
    test_per_class: int = 20,
    size: int = 32,
    classes: int = len(CLASSES),
) -> tuple[Path, Path]:
    """``root/train`` and ``root/test`` (different seeds, so the test split is unseen)."""
    if not 2 <= classes <= len(CLASSES):
        raise ValueError(f"classes must be between 2 and {len(CLASSES)}")
    train = write_split(root / "train", train_per_class, size, classes, seed=1)
    test = write_split(root / "test", test_per_class, size, classes, seed=2)
    return train, test
