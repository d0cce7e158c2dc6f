"""POST /predict: validation before the endpoint call, the endpoint contract, the answer."""

from __future__ import annotations

import ast
import io
from pathlib import Path

import pytest
from botocore.stub import Stubber
from fastapi.testclient import TestClient
from PIL import Image

from api.images import ALLOWED_FORMATS
from tests.unit.api.conftest import MAX_IMAGE_BYTES
from tests.unit.api.support import (
    b64,
    expected_invoke,
    invoke_response,
    jpeg_bytes,
    model_answer,
    png_bytes,
)

ROOT = Path(__file__).resolve().parents[3]


def test_png_is_forwarded_as_the_endpoint_contract_and_answer_returned(
    client: TestClient, stubber: Stubber
) -> None:
    image = b64(png_bytes())
    stubber.add_response(
        "invoke_endpoint", invoke_response(model_answer(2)), expected_invoke(image, 2)
    )
    response = client.post("/predict", json={"image": image, "top_k": 2})
    assert response.status_code == 200, response.text
    body = response.json()
    assert [p["label"] for p in body["predictions"]] == ["apple", "aquarium_fish"]
    assert body["model"]["architecture"] == "resnet34"
    assert body["request_id"] == response.headers["x-request-id"]
    stubber.assert_no_pending_responses()


def test_jpeg_without_top_k_leaves_the_default_to_the_model(
    client: TestClient, stubber: Stubber
) -> None:
    # No top_k in the request -> none sent: a model with fewer than 5 classes would
    # answer a forwarded default of 5 with a 400.
    image = b64(jpeg_bytes())
    stubber.add_response(
        "invoke_endpoint", invoke_response(model_answer(5)), expected_invoke(image, None)
    )
    response = client.post("/predict", json={"image": image}, headers={"x-request-id": "abc-1"})
    assert response.status_code == 200, response.text
    assert len(response.json()["predictions"]) == 5
    assert response.json()["request_id"] == "abc-1"


@pytest.mark.parametrize(
    ("image", "status", "code"),
    [
        ("not base64!", 400, "invalid_base64"),
        ("iVBORw0KGgo", 400, "invalid_base64"),  # missing padding
        ("QQ==QQ==", 400, "invalid_base64"),  # data after padding
        ("QUJD\nREVG", 400, "invalid_base64"),  # line breaks
        (b64(b"PK\x03\x04" + bytes(40)), 415, "unsupported_media_type"),  # a zip
        (b64(b"RIFF\x00\x00\x00\x00WAVEfmt "), 415, "unsupported_media_type"),  # not WEBP
        (b64(b"%PDF-1.7 hello world"), 415, "unsupported_media_type"),
        (b64(b"\x89PNG\r\n\x1a\n" + bytes(MAX_IMAGE_BYTES)), 413, "payload_too_large"),
        ("A" * (4 * MAX_IMAGE_BYTES), 413, "payload_too_large"),
    ],
)
def test_bad_images_are_refused_before_the_endpoint_call(
    client: TestClient, stubber: Stubber, image: str, status: int, code: str
) -> None:
    response = client.post("/predict", json={"image": image})
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code
    assert error["request_id"] == response.headers["x-request-id"]
    stubber.assert_no_pending_responses()  # nothing queued, and nothing was called


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (b"", 400, "missing_body"),
        (b"{not json", 400, "invalid_json"),
        (b"[]", 422, "validation_error"),
        (b'"abc"', 422, "validation_error"),
        (b"{}", 422, "validation_error"),
        (b'{"image": 12}', 422, "validation_error"),
        (b'{"image": ""}', 422, "validation_error"),
        (b'{"image": "QQ==", "top_k": 0}', 422, "validation_error"),
        (b'{"image": "QQ==", "top_k": 101}', 422, "validation_error"),
        (b'{"image": "QQ==", "top_k": "5"}', 422, "validation_error"),
        (b'{"image": "QQ==", "topk": 5}', 422, "validation_error"),
    ],
)
def test_malformed_requests_get_clear_4xx(
    client: TestClient, body: bytes, status: int, code: str
) -> None:
    response = client.post("/predict", content=body, headers={"content-type": "application/json"})
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code
    assert error["message"]


def test_validation_message_names_the_field(client: TestClient) -> None:
    response = client.post("/predict", json={"image": "QQ==", "top_k": 500})
    error = response.json()["error"]
    assert "body.top_k" in error["message"]
    assert error["details"][0]["field"] == "body.top_k"


def test_unexpected_model_answer_is_a_502(client: TestClient, stubber: Stubber) -> None:
    image = b64(png_bytes())
    stubber.add_response("invoke_endpoint", invoke_response({"labels": ["x"]}))
    stubber.add_response("invoke_endpoint", invoke_response(b"<html>oops"))
    for _ in range(2):
        response = client.post("/predict", json={"image": image})
        assert response.status_code == 502
        assert response.json()["error"]["code"] == "bad_model_response"


def test_extra_predictions_are_cut_to_top_k(client: TestClient, stubber: Stubber) -> None:
    image = b64(png_bytes())
    stubber.add_response("invoke_endpoint", invoke_response(model_answer(5)))
    response = client.post("/predict", json={"image": image, "top_k": 1})
    assert response.status_code == 200
    assert len(response.json()["predictions"]) == 1


def test_formats_match_what_the_model_handler_opens() -> None:
    """The endpoint's list, read from its source (importing it would load torch)."""
    source = (ROOT / "model_handler" / "inference.py").read_text()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "ALLOWED_FORMATS" for t in node.targets
        ):
            handler_formats = {name.lower() for name in ast.literal_eval(node.value)}
            break
    else:
        raise AssertionError("model_handler/inference.py has no ALLOWED_FORMATS")
    assert set(ALLOWED_FORMATS) == handler_formats


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "GIF", "BMP", "WEBP", "TIFF"])
def test_every_allowed_format_reaches_the_endpoint(
    client: TestClient, stubber: Stubber, fmt: str
) -> None:
    out = io.BytesIO()
    Image.new("RGB", (16, 16), (10, 200, 30)).save(out, format=fmt)
    image = b64(out.getvalue())
    stubber.add_response(
        "invoke_endpoint", invoke_response(model_answer(1)), expected_invoke(image, 1)
    )
    response = client.post("/predict", json={"image": image, "top_k": 1})
    assert response.status_code == 200, response.text
    stubber.assert_no_pending_responses()
