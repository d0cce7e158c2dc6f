"""Check an uploaded image before it costs an endpoint call: strict base64, a size cap and
an allowlist of formats recognised by their signature (magic bytes), not by a claimed type."""

from __future__ import annotations

import binascii

from api.errors import ApiError

# What model_handler decodes (model_handler.inference.ALLOWED_FORMATS; a test keeps the two
# lists equal). Checked by signature here so a wrong file never costs an endpoint call.
SIGNATURES: dict[str, tuple[bytes, ...]] = {
    "png": (b"\x89PNG\r\n\x1a\n",),
    "jpeg": (b"\xff\xd8\xff",),
    "gif": (b"GIF87a", b"GIF89a"),
    "bmp": (b"BM",),
    "tiff": (b"II*\x00", b"MM\x00*"),
}
ALLOWED_FORMATS: tuple[str, ...] = ("png", "jpeg", "gif", "bmp", "webp", "tiff")


def sniff_format(data: bytes) -> str | None:
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    for name, prefixes in SIGNATURES.items():
        if data.startswith(prefixes):
            return name
    return None


def max_base64_length(max_bytes: int) -> int:
    """Longest padded base64 text whose decoded size can still be within ``max_bytes``."""
    return 4 * -(-max_bytes // 3)


def decode_image(image_b64: str, max_bytes: int) -> tuple[bytes, str]:
    """Return (bytes, format) or raise ApiError 400 (bad base64), 413 (too large) or
    415 (not an allowed format)."""
    if len(image_b64) > max_base64_length(max_bytes):
        raise ApiError(413, "payload_too_large", _too_large(max_bytes))
    try:
        # strict_mode: no characters outside the alphabet, no data after padding, no
        # missing padding; a lenient decoder would accept garbage and forward it.
        data = binascii.a2b_base64(image_b64.encode("ascii"), strict_mode=True)
    except (binascii.Error, UnicodeEncodeError):
        raise ApiError(
            400, "invalid_base64", "image must be standard base64 (RFC 4648, padded)"
        ) from None
    if not data:
        raise ApiError(400, "empty_image", "image is empty")
    if len(data) > max_bytes:
        raise ApiError(413, "payload_too_large", _too_large(max_bytes))
    kind = sniff_format(data)
    if kind not in ALLOWED_FORMATS:
        allowed = ", ".join(name.upper() for name in ALLOWED_FORMATS)
        raise ApiError(415, "unsupported_media_type", f"image must be one of: {allowed}")
    return data, kind


def _too_large(max_bytes: int) -> str:
    return f"image is larger than {max_bytes} bytes after base64 decoding"
