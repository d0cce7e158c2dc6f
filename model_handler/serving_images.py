"""Images: opened with the format, byte and pixel caps checked from the header alone, then
decoded upright (EXIF orientation) in RGB, a JPEG straight at a reduced scale."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError
from serving_config import Limits
from serving_errors import bad_request, too_large


def open_image(data: bytes, limits: Limits) -> Image.Image:
    """Open an image and check its caps; pixels are decoded later, at the model's size."""
    if not data:
        raise bad_request("empty_image", "the image is empty")
    if len(data) > limits.max_image_bytes:
        raise too_large(
            "image_too_large",
            f"the image is {len(data)} bytes; the limit is {limits.max_image_bytes}",
        )
    try:
        image = Image.open(io.BytesIO(data), formats=limits.formats)
    except Image.DecompressionBombError as exc:
        raise too_large("too_many_pixels", str(exc)) from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise bad_request(
            "not_an_image", f"the data is not a {'/'.join(limits.formats)} image"
        ) from exc
    width, height = image.size
    if width * height > limits.max_image_pixels:
        raise too_large(
            "too_many_pixels",
            f"the image has {width}x{height} pixels; the limit is {limits.max_image_pixels} pixels",
        )
    return image


def decode_rgb(image: Image.Image, target: tuple[int, int] | None = None) -> Image.Image:
    """Decode an opened image upright (EXIF orientation) in RGB.

    With ``target`` (height, width), a JPEG is decoded straight at a reduced scale that is still
    at least twice the target on each side, so the later antialiased resize sees enough pixels.
    """
    try:
        if target is not None and image.format == "JPEG":
            side = 2 * max(target)
            image.draft(None, (side, side))
        image.load()
        ImageOps.exif_transpose(image, in_place=True)
        return to_rgb(image)
    except Image.DecompressionBombError as exc:
        raise too_large("too_many_pixels", str(exc)) from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise bad_request("corrupt_image", f"the image cannot be decoded: {exc}") from exc


def to_rgb(image: Image.Image) -> Image.Image:
    """RGB from any mode: transparency over white, 16/32-bit grayscale scaled to 8 bits."""
    if image.mode == "RGB":
        return image
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        pixels = np.asarray(image, dtype=np.float64)
        peak = 65535.0 if image.mode.startswith("I;16") else max(float(pixels.max()), 1.0)
        gray = np.clip(pixels * (255.0 / peak), 0, 255).astype(np.uint8)
        return Image.fromarray(gray, mode="L").convert("RGB")
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA", "La", "RGBa"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")
