"""Reading the EventBridge events SageMaker emits (``source: aws.sagemaker``)."""

from __future__ import annotations

from typing import Any

TUNING_DETAIL_TYPE = "SageMaker HyperParameter Tuning Job State Change"
TRAINING_DETAIL_TYPE = "SageMaker Training Job State Change"
ENDPOINT_DETAIL_TYPE = "SageMaker Endpoint State Change"
MODEL_PACKAGE_DETAIL_TYPE = "SageMaker Model Package State Change"
#: ``source: aws.cloudwatch``: the model-confidence alarm's state changes (drift runs).
ALARM_DETAIL_TYPE = "CloudWatch Alarm State Change"


class BadEvent(ValueError):
    """Not an event this handler understands (wrong type or missing fields)."""


def detail(event: dict[str, Any], detail_type: str, *required: str) -> dict[str, Any]:
    if not isinstance(event, dict) or event.get("detail-type") != detail_type:
        got = event.get("detail-type") if isinstance(event, dict) else type(event).__name__
        raise BadEvent(f"expected a {detail_type!r} event, got {got!r}")
    body = event.get("detail")
    if not isinstance(body, dict):
        raise BadEvent(f"{detail_type} event without a detail object")
    missing = [name for name in required if not body.get(name)]
    if missing:
        raise BadEvent(f"{detail_type} event without {', '.join(missing)}")
    return body


def tags(body: dict[str, Any]) -> dict[str, str]:
    """Event tags as a dict. SageMaker events carry them as a map; the API's list of
    ``{Key, Value}`` is accepted too."""
    raw = body.get("Tags") or {}
    if isinstance(raw, dict):
        return {str(k): str(v) for k, v in raw.items()}
    return {str(t.get("Key")): str(t.get("Value")) for t in raw if isinstance(t, dict)}


def normalised_status(value: str) -> str:
    """Endpoint events spell statuses ``IN_SERVICE``, the API ``InService``: compare both."""
    return value.replace("_", "").lower()
