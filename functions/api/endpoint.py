"""Call the SageMaker endpoint and turn its failures into API errors (never leak them raw).

Mapping (see docs/api.md):
endpoint missing / not InService / model not ready -> 503; ModelError whose container answered
4xx -> that 4xx with the container's message; other model errors -> 502; throttling -> 429 with
Retry-After; a timeout (client read/connect timeout, or the container's 60 s limit) -> 504.
"""

from __future__ import annotations

import json
import re
from typing import Any

from botocore.exceptions import (
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)

from api.errors import ApiError

RETRY_AFTER_S = "1"
_THROTTLING = {"ThrottlingException", "Throttling", "TooManyRequestsException"}
_CODE = re.compile(r"[a-z][a-z0-9_]{2,40}")  # the handler's codes: invalid_top_k, ...
_MESSAGE_LIMIT = 500


def invoke(client: Any, endpoint_name: str, image_b64: str, top_k: int | None) -> dict[str, Any]:
    """POST ``{"image", "top_k"}`` (the endpoint contract) and return its parsed JSON.
    ``top_k`` goes only when the caller gave it: the handler's default fits the model's
    number of classes, a fixed 5 would be a 400 for a model with fewer."""
    document: dict[str, Any] = {"image": image_b64}
    if top_k is not None:
        document["top_k"] = top_k
    body = json.dumps(document)
    try:
        response = client.invoke_endpoint(
            EndpointName=endpoint_name,
            ContentType="application/json",
            Accept="application/json",
            Body=body,
        )
        raw = response["Body"].read()
    except ClientError as exc:
        raise error_from_client_error(exc, endpoint_name) from exc
    except (ReadTimeoutError, ConnectTimeoutError) as exc:
        raise ApiError(504, "endpoint_timeout", "the model did not answer in time") from exc
    except EndpointConnectionError as exc:
        raise ApiError(
            503, "endpoint_unavailable", "the prediction service cannot be reached"
        ) from exc
    try:
        answer: dict[str, Any] = json.loads(raw)
        return answer
    except ValueError as exc:
        raise ApiError(502, "bad_model_response", "the model answered with invalid JSON") from exc


def error_from_client_error(exc: ClientError, endpoint_name: str) -> ApiError:
    error = exc.response.get("Error", {})
    code = error.get("Code", "")
    message = error.get("Message", "")
    if code in _THROTTLING:
        return ApiError(
            429,
            "throttled",
            "too many requests to the model; retry later",
            headers={"Retry-After": RETRY_AFTER_S},
        )
    if code == "ModelNotReadyException":
        return ApiError(
            503,
            "model_not_ready",
            "the model is not ready yet; retry later",
            headers={"Retry-After": RETRY_AFTER_S},
        )
    if code == "ServiceUnavailable":
        return ApiError(
            503,
            "endpoint_unavailable",
            "the prediction service is unavailable; retry later",
            headers={"Retry-After": RETRY_AFTER_S},
        )
    if code == "ValidationError" and "not found" in message.lower():
        # "Endpoint X of account Y not found.": the first run that passes the quality gate
        # creates it. Retrying in seconds would not help, so no Retry-After.
        return ApiError(
            503,
            "endpoint_unavailable",
            f"no model is deployed yet (endpoint {endpoint_name} does not exist): start a "
            "retraining run with POST /jobs/tune; the first run that passes the quality gate "
            "creates the endpoint",
        )
    if code == "ValidationError" and _names_endpoint_state(message):
        # "... is not in service" (being created, updated or failed): an operator problem,
        # not the caller's.
        return ApiError(
            503,
            "endpoint_unavailable",
            f"endpoint {endpoint_name} is not available (not in service); retry later",
            headers={"Retry-After": "30"},
        )
    if code == "ModelError":
        return _from_model_error(exc.response)
    return ApiError(502, "endpoint_error", "the prediction service failed")


def _names_endpoint_state(message: str) -> bool:
    text = message.lower()
    return "endpoint" in text and any(
        word in text for word in ("not found", "not in service", "inservice", "status")
    )


def _from_model_error(response: dict[str, Any]) -> ApiError:
    status = response.get("OriginalStatusCode")
    original = str(response.get("OriginalMessage") or response.get("Error", {}).get("Message", ""))
    if isinstance(status, int) and 400 <= status < 500:
        return ApiError(status, container_code(original), container_message(original))
    if "timed out" in original.lower():
        return ApiError(504, "model_timeout", "the model did not answer in time")
    return ApiError(502, "model_error", "the model failed to process the image")


def _container_json(original: str) -> dict[str, Any] | None:
    """The container's JSON error document: the first line of the body the inference
    toolkit writes (a traceback follows it)."""
    try:
        parsed = json.loads(original.strip().split("\n", 1)[0])
    except ValueError:
        return None
    return parsed if isinstance(parsed, dict) else None


def container_code(original: str) -> str:
    """The handler's own error code (``{"error": "invalid_top_k", ...}``), so the caller
    learns which part of the request was wrong; ``invalid_image`` when it sent none."""
    code = (_container_json(original) or {}).get("error")
    if isinstance(code, str) and _CODE.fullmatch(code):
        return code
    return "invalid_image"


def container_message(original: str) -> str:
    """The container's error text: its JSON ``message``/``error`` when it sent one.

    The inference toolkit writes the exception's message as the first line of the body and
    a traceback after it: only that first line is the container's answer."""
    parsed = _container_json(original)
    original = original.strip().split("\n", 1)[0]
    if parsed is not None:
        for key in ("message", "error", "detail"):
            value = parsed.get(key)
            if isinstance(value, dict):
                value = value.get("message")
            if isinstance(value, str) and value:
                return value[:_MESSAGE_LIMIT]
    return (original.strip() or "the model rejected the image")[:_MESSAGE_LIMIT]
