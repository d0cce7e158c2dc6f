"""Settings from the endpoint model's environment variables, read once per worker at import."""

from __future__ import annotations

import os
from dataclasses import dataclass


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    return int(raw) if raw else default


@dataclass(frozen=True)
class Limits:
    """What one request may carry; a request over a limit is refused before any pixel decode."""

    max_image_bytes: int
    max_image_pixels: int
    max_batch: int
    formats: tuple[str, ...]  # the Pillow decoders allowed; anything else is never parsed

    @classmethod
    def from_environment(cls, formats: tuple[str, ...]) -> Limits:
        return cls(
            # InvokeEndpoint caps the body at 6 MB and base64 adds a third, so ~4 MB of image is
            # the most a JSON request can carry anyway.
            max_image_bytes=env_int("INFERENCE_MAX_IMAGE_BYTES", 4 * 1024 * 1024),
            # Decoded pixels are what cost memory: a 100 KB PNG can claim 30000x30000 pixels.
            max_image_pixels=env_int("INFERENCE_MAX_IMAGE_PIXELS", 40_000_000),
            max_batch=env_int("INFERENCE_MAX_BATCH", 64),
            formats=formats,
        )
