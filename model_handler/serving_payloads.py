"""The wire format: JSON (single or "instances") and raw image bodies parsed into opened
images, top_k checked, and predictions written as the endpoint contract's JSON document."""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from PIL import Image
from serving_config import Limits
from serving_errors import InferenceError, bad_request, too_large
from serving_images import open_image

JSON_TYPE = "application/json"
RAW_IMAGE_TYPES = frozenset({"image/png", "image/jpeg", "application/x-image"})


@dataclass(frozen=True)
class ParsedRequest:
    """input_fn's result: opened (not yet decoded) images and the requested top-k."""

    images: list[Image.Image]
    top_k: int | None  # None: the default, capped at the number of classes
    batch: bool  # the "instances" form: answer with "results"


@dataclass(frozen=True)
class Prediction:
    """predict_fn's result: per image, the top-k (index, probability) pairs."""

    top: list[list[tuple[int, float]]]
    classes: list[str]
    identity: dict[str, Any]
    batch: bool


def media_type(header: str | None) -> str:
    """'Application/JSON; charset=utf-8' -> 'application/json'."""
    return (header or "").split(";", 1)[0].strip().lower()


def parse_top_k(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return value
    raise bad_request("invalid_top_k", f"top_k must be a positive integer, got {value!r}")


def resolve_top_k(requested: int | None, num_classes: int, default: int) -> int:
    """The default is capped at the model's classes (the API forwards no top_k unless its
    caller gave one); an explicit top_k above them is the caller's mistake."""
    top_k = min(default, num_classes) if requested is None else requested
    if top_k > num_classes:
        raise bad_request(
            "invalid_top_k", f"top_k must be between 1 and {num_classes}, got {top_k}"
        )
    return top_k


def decode_base64(value: Any, where: str, max_bytes: int) -> bytes:
    if not isinstance(value, str) or not value:
        raise bad_request("invalid_image_field", f"{where} must be a non-empty base64 string")
    if value.startswith("data:"):  # a data URL: keep what follows "base64,"
        value = value.partition(",")[2]
    if any(c.isspace() for c in value[:100]) or any(c.isspace() for c in value[-100:]):
        value = "".join(value.split())  # line-wrapped base64 (e.g. base64.encodebytes)
    # Checked before decoding, so an oversized string never costs its decode.
    if len(value) * 3 // 4 > max_bytes + 2:
        raise too_large(
            "image_too_large", f"{where} decodes to more than the {max_bytes}-byte image limit"
        )
    altchars = b"-_" if ("-" in value or "_" in value) else None
    try:
        return base64.b64decode(value, altchars=altchars, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise bad_request("invalid_base64", f"{where} is not valid base64: {exc}") from exc


def parse_json_request(body: str | bytes | bytearray, limits: Limits) -> ParsedRequest:
    try:
        document = json.loads(body)
    except (UnicodeDecodeError, ValueError) as exc:
        raise bad_request("invalid_json", f"the body is not valid JSON: {exc}") from exc
    if not isinstance(document, dict):
        raise bad_request("invalid_json", "the body must be a JSON object")
    top_k = parse_top_k(document.get("top_k"))
    has_image, has_instances = "image" in document, "instances" in document
    if has_image == has_instances:
        raise bad_request("missing_image", 'the body needs exactly one of "image" or "instances"')
    if has_image:
        data = decode_base64(document["image"], '"image"', limits.max_image_bytes)
        return ParsedRequest([open_image(data, limits)], top_k, False)
    instances = document["instances"]
    if not isinstance(instances, list) or not instances:
        raise bad_request("invalid_instances", '"instances" must be a non-empty list')
    if len(instances) > limits.max_batch:
        raise too_large(
            "batch_too_large", f"{len(instances)} instances; the limit is {limits.max_batch}"
        )
    images = []
    for i, instance in enumerate(instances):
        if not isinstance(instance, dict) or "image" not in instance:
            raise bad_request("missing_image", f'instances[{i}] must be an object with "image"')
        data = decode_base64(instance["image"], f"instances[{i}].image", limits.max_image_bytes)
        images.append(open_image(data, limits))
    return ParsedRequest(images, top_k, True)


def parse_raw_request(body: str | bytes | bytearray, kind: str, limits: Limits) -> ParsedRequest:
    if isinstance(body, str):  # only when a caller decoded binary as text
        raise bad_request("invalid_body", f"{kind} bodies must be raw bytes")
    return ParsedRequest([open_image(bytes(body), limits)], None, False)


def negotiate_accept(accept: str | None) -> str:
    """application/json is the only representation; absent or wildcard Accept headers take it."""
    if not accept:
        return JSON_TYPE
    for part in accept.split(","):
        if media_type(part) in (JSON_TYPE, "*/*", "application/*"):
            return JSON_TYPE
    raise InferenceError(
        HTTPStatus.NOT_ACCEPTABLE,
        "unsupported_accept",
        f"accept type {accept!r} is not supported; use {JSON_TYPE}",
    )


def render_prediction(prediction: Prediction) -> str:
    """The contract's document: "predictions" for one image, "results" for a batch."""
    results = [
        {
            "predictions": [
                {"label": prediction.classes[index], "index": index, "probability": probability}
                for index, probability in row
            ]
        }
        for row in prediction.top
    ]
    if prediction.batch:
        return json.dumps({"results": results, "model": prediction.identity})
    return json.dumps({**results[0], "model": prediction.identity})
