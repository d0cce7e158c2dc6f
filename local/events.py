"""EventBridge event envelopes and pattern matching, as AWS documents them.

The local SageMaker emits the same ``aws.sagemaker`` events AWS does, and the local bus
delivers them through the same event patterns the template's rules use.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from typing import Any

from local.sagemaker.wire import ACCOUNT, REGION

TRAINING = "SageMaker Training Job State Change"
TUNING = "SageMaker HyperParameter Tuning Job State Change"
ENDPOINT = "SageMaker Endpoint State Change"


def envelope(detail_type: str, resource_arn: str, detail: dict[str, Any]) -> dict[str, Any]:
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": detail_type,
        "source": "aws.sagemaker",
        "account": ACCOUNT,
        "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": REGION,
        "resources": [resource_arn],
        "detail": detail,
    }


def scheduled_event(rule_arn: str) -> dict[str, Any]:
    """What an EventBridge schedule delivers to its target."""
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": ACCOUNT,
        "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": REGION,
        "resources": [rule_arn],
        "detail": {},
    }


def matches(pattern: Any, event: Any) -> bool:
    """EventBridge pattern matching: nested objects; arrays of allowed values; the
    ``prefix``, ``suffix``, ``wildcard``, ``anything-but``, ``exists`` and ``equals-ignore-case``
    filters."""
    if isinstance(pattern, dict):
        if not isinstance(event, dict):
            return False
        for key, sub in pattern.items():
            if isinstance(sub, list) and any(
                isinstance(c, dict) and "exists" in c and c["exists"] is False for c in sub
            ):
                if key in event:
                    return False
                continue
            if key not in event or not matches(sub, event[key]):
                return False
        return True
    if isinstance(pattern, list):
        values = event if isinstance(event, list) else [event]
        return any(_value_matches(c, v) for c in pattern for v in values)
    return pattern == event


def _wildcard(pattern: str) -> re.Pattern[str]:
    """EventBridge wildcard matching: ``*`` matches any run of characters (``\\*`` a literal
    star); everything else, case included, matches itself."""
    parts = re.split(r"(\\\*|\*)", pattern)
    return re.compile(
        "".join(".*" if p == "*" else re.escape("*" if p == "\\*" else p) for p in parts),
        re.DOTALL,
    )


def _value_matches(condition: Any, value: Any) -> bool:
    if not isinstance(condition, dict):
        return condition == value
    if "prefix" in condition:
        return isinstance(value, str) and value.startswith(condition["prefix"])
    if "suffix" in condition:
        return isinstance(value, str) and value.endswith(condition["suffix"])
    if "wildcard" in condition:
        return (
            isinstance(value, str) and _wildcard(condition["wildcard"]).fullmatch(value) is not None
        )
    if "equals-ignore-case" in condition:
        return isinstance(value, str) and value.lower() == condition["equals-ignore-case"].lower()
    if "exists" in condition:
        return condition["exists"] is True
    if "anything-but" in condition:
        excluded = condition["anything-but"]
        if isinstance(excluded, dict):
            return not _value_matches(excluded, value)
        excluded = excluded if isinstance(excluded, list) else [excluded]
        return value not in excluded
    raise ValueError(f"unsupported event pattern filter: {condition}")
