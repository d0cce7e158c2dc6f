"""OpenAPI ``responses=`` entries for the error statuses a route can answer."""

from __future__ import annotations

from typing import Any

from api.errors import ErrorBody

_DESCRIPTIONS = {
    400: "Malformed request (bad JSON, bad base64, bad cursor)",
    404: "Not found",
    409: "A retraining run is already active",
    413: "Image too large",
    415: "Image format not supported (PNG or JPEG)",
    422: "Request failed validation",
    429: "Throttled; see Retry-After",
    502: "The model failed",
    503: "Endpoint missing or not in service",
    504: "The model timed out",
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {
        status: {"model": ErrorBody, "description": _DESCRIPTIONS[status]} for status in statuses
    }
