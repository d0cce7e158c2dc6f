"""Every client mistake is an InferenceError with a 4xx status and a JSON message."""

from __future__ import annotations

import base64
import io
import json
import struct
import zlib
from dataclasses import replace

import numpy as np
import pytest
from PIL import Image

from model_handler import inference
from tests.unit.handler.artifacts import b64, encode


def png_claiming(width: int, height: int) -> bytes:
    """A few-hundred-byte PNG whose header claims width x height pixels (a decompression bomb)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit grayscale
    rows = zlib.compress(b"\x00" * (width + 1) * 4, 9)  # only a few rows: the rest never comes
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", rows) + chunk(b"IEND", b"")
    )


def refused(model, body, content_type="application/json", accept="application/json"):
    def handle() -> str:
        data = inference.input_fn(body, content_type)
        return inference.output_fn(inference.predict_fn(data, model), accept)

    with pytest.raises(inference.InferenceError) as caught:
        handle()
    error = caught.value
    assert json.loads(error.message) == {
        "error": error.code,
        "message": error.detail,
        "status": error.status_code,
    }
    return error


@pytest.fixture(scope="module")
def photo_png() -> bytes:
    pixels = np.random.default_rng(1).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    return encode(pixels, "PNG")


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ("{not json", "invalid_json"),
        (b"\xff\xfe{}", "invalid_json"),
        ('["image"]', "invalid_json"),
        ("{}", "missing_image"),
        ('{"img": "aGVsbG8="}', "missing_image"),
        ('{"image": "aGVsbG8=", "instances": []}', "missing_image"),
        ('{"image": 42}', "invalid_image_field"),
        ('{"image": ""}', "invalid_image_field"),
        ('{"image": "not base64 at all!"}', "invalid_base64"),
        ('{"image": "aGVsbG8"}', "invalid_base64"),
        ('{"image": "' + b64(b"just some text, not an image") + '"}', "not_an_image"),
        ('{"instances": []}', "invalid_instances"),
        ('{"instances": {"image": "x"}}', "invalid_instances"),
        ('{"instances": [{"picture": "x"}]}', "missing_image"),
        ('{"instances": ["aGVsbG8="]}', "missing_image"),
    ],
)
def test_malformed_json_requests_are_400(body, code, tiny_model) -> None:
    error = refused(tiny_model, body)
    assert (error.status_code, error.code) == (400, code)


@pytest.mark.parametrize("top_k", [0, -1, 11, 1.5, "3", True, None])
def test_top_k_out_of_range_is_400(top_k, photo_png, tiny_model) -> None:
    document = {"image": b64(photo_png), "top_k": top_k}
    if top_k is None:  # an explicit null is the default, not an error
        body = json.dumps(document)
        data = inference.input_fn(body, "application/json")
        assert len(inference.predict_fn(data, tiny_model).top[0]) == 5
        return
    error = refused(tiny_model, json.dumps(document))
    assert (error.status_code, error.code) == (400, "invalid_top_k")


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_truncated_image_is_400(fmt, photos, tiny_model) -> None:
    data = encode(photos["astronaut"], fmt)
    error = refused(tiny_model, json.dumps({"image": b64(data[: len(data) // 2])}))
    assert (error.status_code, error.code) == (400, "corrupt_image")


def test_corrupt_raw_image_is_400(photo_png, tiny_model) -> None:
    corrupt = photo_png[:40] + bytes(200) + photo_png[240:]
    assert refused(tiny_model, corrupt, "image/png").status_code == 400


def test_unsupported_image_format_is_400(tiny_model) -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (16, 16)).save(buffer, "ICO")
    error = refused(tiny_model, buffer.getvalue(), "application/x-image")
    assert (error.status_code, error.code) == (400, "not_an_image")


def test_image_over_the_size_cap_is_413(monkeypatch, photo_png, tiny_model) -> None:
    monkeypatch.setattr(
        inference, "LIMITS", replace(inference.LIMITS, max_image_bytes=len(photo_png) - 1)
    )
    for body, content_type in [
        (json.dumps({"image": b64(photo_png)}), "application/json"),
        (photo_png, "image/png"),
    ]:
        error = refused(tiny_model, body, content_type)
        assert (error.status_code, error.code) == (413, "image_too_large")


def test_image_at_the_size_cap_is_served(monkeypatch, photo_png, tiny_model) -> None:
    monkeypatch.setattr(
        inference, "LIMITS", replace(inference.LIMITS, max_image_bytes=len(photo_png))
    )
    data = inference.input_fn(json.dumps({"image": b64(photo_png)}), "application/json")
    assert inference.predict_fn(data, tiny_model).top


def test_decompression_bomb_is_413_before_decoding(tiny_model) -> None:
    bomb = png_claiming(30_000, 30_000)
    assert len(bomb) < 1000
    error = refused(tiny_model, json.dumps({"image": b64(bomb)}))
    assert (error.status_code, error.code) == (413, "too_many_pixels")


def test_pixel_cap_applies_to_real_photos(monkeypatch, photos, tiny_model) -> None:
    monkeypatch.setattr(
        inference, "LIMITS", replace(inference.LIMITS, max_image_pixels=512 * 512 - 1)
    )
    error = refused(tiny_model, encode(photos["astronaut"], "JPEG"), "image/jpeg")
    assert (error.status_code, error.code) == (413, "too_many_pixels")


def test_batch_over_the_limit_is_413(monkeypatch, photo_png, tiny_model) -> None:
    monkeypatch.setattr(inference, "LIMITS", replace(inference.LIMITS, max_batch=2))
    body = json.dumps({"instances": [{"image": b64(photo_png)}] * 3})
    error = refused(tiny_model, body)
    assert (error.status_code, error.code) == (413, "batch_too_large")


def test_one_bad_instance_fails_the_batch_naming_it(photo_png, tiny_model) -> None:
    body = json.dumps({"instances": [{"image": b64(photo_png)}, {"image": "%%%"}]})
    error = refused(tiny_model, body)
    assert error.status_code == 400
    assert "instances[1]" in error.detail


@pytest.mark.parametrize("content_type", ["text/plain", "text/csv", "image/gif", "", None])
def test_unsupported_content_type_is_415(content_type, photo_png, tiny_model) -> None:
    error = refused(tiny_model, photo_png, content_type)
    assert (error.status_code, error.code) == (415, "unsupported_content_type")


def test_raw_image_type_with_text_body_is_400(photo_png, tiny_model) -> None:
    body = base64.b64encode(photo_png).decode()
    assert refused(tiny_model, body, "image/png").status_code == 400


@pytest.mark.parametrize("accept", ["text/csv", "application/x-npy", "image/png"])
def test_unsupported_accept_is_406(accept, photo_png, tiny_model) -> None:
    error = refused(tiny_model, photo_png, "image/png", accept)
    assert (error.status_code, error.code) == (406, "unsupported_accept")
