"""Decoding: EXIF orientation, every pixel mode to RGB, and the preprocess training uses."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image
from serving_images import decode_rgb, open_image
from serving_preprocess import Preprocess

from model_handler import inference
from tests.unit.handler.artifacts import CIFAR_MEAN, CIFAR_STD, PHOTOS, encode
from trainlib.preprocess import build_eval_transform

SPEC = {"resize": [32, 32], "interpolation": "bilinear", "mean": CIFAR_MEAN, "std": CIFAR_STD}


def opened(data: bytes) -> Image.Image:
    """An image opened under the endpoint's own limits, as input_fn opens it."""
    return open_image(data, inference.LIMITS)


def red_left_blue_right(width: int, height: int) -> Image.Image:
    pixels = np.zeros((height, width, 3), dtype=np.uint8)
    pixels[:, : width // 2] = (255, 0, 0)
    pixels[:, width // 2 :] = (0, 0, 255)
    return Image.fromarray(pixels)


def with_orientation(image: Image.Image, orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=95, exif=exif.tobytes())
    return buffer.getvalue()


@pytest.mark.parametrize(("width", "height"), [(40, 20), (800, 400)])
def test_exif_orientation_is_honoured(width, height) -> None:
    # Orientation 6: the camera was turned, the viewer rotates 90 degrees clockwise.
    data = with_orientation(red_left_blue_right(width, height), 6)

    upright = decode_rgb(opened(data), target=(32, 32))

    w, h = upright.size
    assert h > w  # landscape pixels, portrait photo
    pixels = np.asarray(upright).astype(int)
    top, bottom = pixels[: h // 4].mean(axis=(0, 1)), pixels[-h // 4 :].mean(axis=(0, 1))
    assert top[0] > 200 > top[2]  # red went to the top
    assert bottom[2] > 200 > bottom[0]


def test_orientation_changes_the_prediction_input() -> None:
    image = red_left_blue_right(40, 20)
    preprocess = Preprocess.from_metadata(SPEC)
    plain = preprocess.batch([opened(with_orientation(image, 1))])
    rotated = preprocess.batch([opened(with_orientation(image, 6))])
    assert np.abs(plain - rotated).mean() > 0.5


def _image(mode: str) -> Image.Image:
    if mode == "I;16":
        return Image.fromarray(np.full((4, 4), 65535, dtype=np.uint16))
    if mode == "P+transparency":
        image = Image.new("P", (4, 4), 0)
        image.putpalette([0, 0, 0, 10, 20, 30])
        image.info["transparency"] = 0
        return image
    color = {"1": 1, "L": 100, "LA": (100, 0), "RGBA": (0, 0, 0, 0), "CMYK": (0, 0, 0, 0)}.get(
        mode, 0
    )
    return Image.new(mode, (4, 4), color)


@pytest.mark.parametrize(
    ("mode", "fmt", "pixel"),
    [
        ("1", "PNG", (255, 255, 255)),
        ("L", "PNG", (100, 100, 100)),
        ("LA", "PNG", (255, 255, 255)),  # fully transparent: the white background shows
        ("RGBA", "PNG", (255, 255, 255)),
        ("P+transparency", "PNG", (255, 255, 255)),
        ("P", "GIF", (0, 0, 0)),
        ("I;16", "PNG", (255, 255, 255)),
        ("CMYK", "JPEG", (255, 255, 255)),
    ],
)
def test_every_mode_becomes_rgb(mode, fmt, pixel) -> None:
    buffer = io.BytesIO()
    _image(mode).save(buffer, fmt)

    rgb = decode_rgb(opened(buffer.getvalue()))

    assert rgb.mode == "RGB"
    assert tuple(int(v) for v in rgb.getpixel((1, 1))) == pytest.approx(pixel, abs=2)


def test_grayscale_photo_is_three_equal_channels(photos) -> None:
    rgb = np.asarray(decode_rgb(opened(encode(photos["camera"], "PNG"))))
    assert rgb.shape == (*photos["camera"].shape, 3)
    np.testing.assert_array_equal(rgb[..., 0], photos["camera"])
    np.testing.assert_array_equal(rgb[..., 2], photos["camera"])


@pytest.mark.parametrize("size", [32, 96])
@pytest.mark.parametrize("name", PHOTOS)
def test_preprocess_matches_the_training_eval_transform(name, size, photos) -> None:
    # Training builds its evaluation transform from the same dict (trainlib.preprocess).
    spec = {**SPEC, "resize": [size, size]}
    image = Image.fromarray(photos[name]).convert("RGB")

    ours = Preprocess.from_metadata(spec).batch([image])[0]
    theirs = build_eval_transform(spec)(image).numpy()

    assert ours.shape == theirs.shape == (3, size, size)
    one_level = 1 / 255 / min(CIFAR_STD)  # resamplers may round one 8-bit step apart
    assert np.abs(ours - theirs).max() <= one_level + 1e-5
    assert np.abs(ours - theirs).mean() < 1e-3


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_photo_goes_through_the_training_images_native_size_first(fmt, photos) -> None:
    # CIFAR models were trained on 32x32 images upsampled to 64 here: a 512x512 photo must be
    # brought down to 32x32 first, as training's transform does, not straight to 64.
    spec = {**SPEC, "resize": [64, 64], "source_size": [32, 32]}
    data = encode(photos["chelsea"], fmt)

    ours = Preprocess.from_metadata(spec).batch([opened(data)])[0]
    theirs = build_eval_transform(spec)(decode_rgb(opened(data))).numpy()
    direct = Preprocess.from_metadata({**SPEC, "resize": [64, 64]})
    straight = direct.batch([opened(data)])[0]

    one_level = 1 / 255 / min(CIFAR_STD)
    assert np.abs(ours - theirs).mean() < 1e-2  # JPEG's reduced decode may differ slightly
    assert np.abs(ours - theirs).max() <= 8 * one_level
    assert np.abs(ours - straight).mean() > 10 * np.abs(ours - theirs).mean()


def test_source_size_must_be_a_size() -> None:
    with pytest.raises(ValueError, match="source_size"):
        Preprocess.from_metadata({**SPEC, "source_size": [32]})


def test_non_square_resize_is_height_then_width(photos) -> None:
    spec = {**SPEC, "resize": [24, 40]}
    out = Preprocess.from_metadata(spec).batch([Image.fromarray(photos["rocket"])])
    assert out.shape == (1, 3, 24, 40)


@pytest.mark.parametrize("name", ["astronaut", "coffee"])
def test_reduced_jpeg_decode_stays_close_to_full_decode(name, photos) -> None:
    data = encode(photos[name], "JPEG", quality=90)
    preprocess = Preprocess.from_metadata(SPEC)

    drafted = preprocess.batch([opened(data)])[0]
    full = preprocess.batch([Image.open(io.BytesIO(data)).convert("RGB")])[0]

    assert np.abs(drafted - full).mean() < 0.05  # in normalised units (~3 grey levels)


@pytest.mark.parametrize(
    "change",
    [
        {"resize": 32},
        {"resize": [32]},
        {"resize": [0, 32]},
        {"interpolation": "cubic-spline"},
        {"std": [0.2, 0.0, 0.2]},
        {"mean": [0.5, 0.5]},
    ],
)
def test_invalid_preprocess_spec_is_refused(change) -> None:
    with pytest.raises(ValueError, match="preprocess"):
        Preprocess.from_metadata({**SPEC, **change})
