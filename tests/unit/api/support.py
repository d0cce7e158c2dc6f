"""Helpers for the API tests: real images, real API Gateway events, stubbed endpoint answers."""

from __future__ import annotations

import base64
import copy
import io
import json
from pathlib import Path
from typing import Any

from botocore.response import StreamingBody
from PIL import Image

EVENTS = Path(__file__).resolve().parents[2] / "events" / "api"
ENDPOINT = "test-endpoint"


def png_bytes(size: int = 32, seed: int = 0) -> bytes:
    image = Image.frombytes(
        "RGB", (size, size), bytes((i * 7 + seed) % 256 for i in range(size * size * 3))
    )
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def jpeg_bytes(size: int = 32) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (size, size), (200, 30, 40)).save(out, format="JPEG")
    return out.getvalue()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def model_answer(top_k: int = 2) -> dict[str, Any]:
    labels = ["apple", "aquarium_fish", "baby", "bear", "beaver"]
    return {
        "predictions": [
            {"label": labels[i], "index": i, "probability": round(0.9 / (i + 1), 4)}
            for i in range(min(top_k, len(labels)))
        ],
        "model": {
            "version": "cifar100-r20261128030512ab12-final",
            "training_job_name": "cifar100-r20261128030512ab12-final",
            "architecture": "resnet34",
        },
    }


def invoke_response(payload: Any) -> dict[str, Any]:
    raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return {
        "Body": StreamingBody(io.BytesIO(raw), len(raw)),
        "ContentType": "application/json",
        "InvokedProductionVariant": "AllTraffic",
    }


def expected_invoke(image_b64: str, top_k: int | None) -> dict[str, Any]:
    """The InvokeEndpoint parameters; ``top_k`` None: the caller gave none, none is sent."""
    document: dict[str, Any] = {"image": image_b64}
    if top_k is not None:
        document["top_k"] = top_k
    return {
        "EndpointName": ENDPOINT,
        "ContentType": "application/json",
        "Accept": "application/json",
        "Body": json.dumps(document),
    }


def rest_v1_event(
    method: str,
    path: str,
    body: bytes | None = None,
    *,
    stage: str = "prod",
    query: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
) -> dict[str, Any]:
    """A REST API (payload v1) proxy event as ``sam local generate-event apigateway
    aws-proxy`` makes it: base64 body and no Content-Type header unless given."""
    event = copy.deepcopy(json.loads((EVENTS / "rest_v1_aws_proxy.json").read_text()))
    event["httpMethod"] = event["requestContext"]["httpMethod"] = method
    event["path"] = path
    event["pathParameters"] = {"proxy": path.lstrip("/")}
    event["requestContext"]["path"] = f"/{stage}{path}"
    event["requestContext"]["stage"] = stage
    event["body"] = base64.b64encode(body).decode() if body is not None else None
    event["isBase64Encoded"] = body is not None
    if query:
        event["queryStringParameters"] = dict(query)
        event["multiValueQueryStringParameters"] = {k: [v] for k, v in query.items()}
    for name, value in (headers or {}).items():
        event["headers"][name] = value
        event["multiValueHeaders"][name] = [value]
    return event


def http_v2_event(
    method: str,
    path: str,
    body: bytes | None = None,
    *,
    base64_body: bool = False,
    query: str = "",
    headers: dict[str, str] | None = None,
    stage: str = "$default",
) -> dict[str, Any]:
    """An HTTP API (payload v2) event. A named stage appears in rawPath, as API Gateway
    sends it."""
    event = copy.deepcopy(json.loads((EVENTS / "http_api_v2_proxy.json").read_text()))
    full = path if stage == "$default" else f"/{stage}{path}"
    event["rawPath"] = event["requestContext"]["http"]["path"] = full
    event["requestContext"]["http"]["method"] = method
    event["requestContext"]["stage"] = stage
    event["rawQueryString"] = query
    event["headers"].update(headers or {})
    if body is None:
        event.pop("body")
        event["isBase64Encoded"] = False
    elif base64_body:
        event["body"] = base64.b64encode(body).decode()
        event["isBase64Encoded"] = True
    else:
        event["body"] = body.decode()
        event["isBase64Encoded"] = False
    return event


class LambdaContext:
    function_name = "cifar100-api"
    function_version = "$LATEST"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:cifar100-api"
    memory_limit_in_mb = 512
    aws_request_id = "0f4f1c9e-8d3b-4c5a-9a59-2b7f3c1d2e4f"
    log_group_name = "/aws/lambda/cifar100-api"
    log_stream_name = "2026/11/28/[$LATEST]abcdef"

    def get_remaining_time_in_millis(self) -> int:
        return 29_000


def body_of(response: dict[str, Any]) -> Any:
    raw = response["body"]
    if response.get("isBase64Encoded"):
        raw = base64.b64decode(raw).decode()
    return json.loads(raw)
