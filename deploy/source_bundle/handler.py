"""The custom resource's Lambda handler: a thin CloudFormation adapter over :mod:`.bundle`.

Create/Update publish the bundles and return their S3 URIs as attributes
(``!GetAtt SourceBundle.TrainingSourceS3Uri`` / ``InferenceSourceS3Uri``). Delete leaves the
objects: the bucket is retained and versioned, and past runs' records point at them.
"""

from __future__ import annotations

import json
import logging
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .bundle import publish

logger = logging.getLogger(__name__)
logger.setLevel(logging.INFO)

#: Where deploy/Makefile puts training/ and model_handler/ inside the function package.
PAYLOAD_ROOT = Path(__file__).resolve().parent.parent / "payload"

Responder = Callable[[str, dict[str, Any]], None]
RESPONSE_LIMIT_BYTES = 4096


def put_response(url: str, body: dict[str, Any]) -> None:
    """PUT the result to CloudFormation's pre-signed URL (signed with no content type)."""
    data = json.dumps(body).encode()
    request = urllib.request.Request(
        url, data=data, method="PUT", headers={"Content-Type": "", "Content-Length": str(len(data))}
    )
    with urllib.request.urlopen(
        request, timeout=30
    ) as response:  # the pre-signed https URL from CFN
        response.read()


def handle(
    event: dict[str, Any],
    s3: Any,
    payload_root: Path = PAYLOAD_ROOT,
    respond: Responder = put_response,
) -> dict[str, Any]:
    """Do the request and always answer CloudFormation (a missing answer hangs the stack)."""
    props = event.get("ResourceProperties", {})
    bucket = str(props.get("Bucket", ""))
    physical_id = event.get("PhysicalResourceId") or f"source-bundle-{bucket}"
    body: dict[str, Any] = {
        "PhysicalResourceId": physical_id,
        "StackId": event.get("StackId"),
        "RequestId": event.get("RequestId"),
        "LogicalResourceId": event.get("LogicalResourceId"),
    }
    try:
        request_type = event["RequestType"]
        if request_type in ("Create", "Update"):
            sources = publish(s3, bucket, str(props.get("Prefix", "code/")), payload_root)
            body["Data"] = {
                "TrainingSourceS3Uri": sources.training_source_s3_uri,
                "InferenceSourceS3Uri": sources.inference_source_s3_uri,
            }
        elif request_type != "Delete":
            raise ValueError(f"unknown RequestType {request_type!r}")
        body["Status"] = "SUCCESS"
    except Exception as error:
        logger.exception("source bundle %s failed", event.get("RequestType"))
        body["Status"] = "FAILED"
        body["Reason"] = _fitting_reason(body, f"{type(error).__name__}: {error}")
    respond(event["ResponseURL"], body)
    return body


def _fitting_reason(body: dict[str, Any], reason: str) -> str:
    """The reason, cut so the whole response stays within CloudFormation's 4096 bytes as
    JSON ("Custom resource response objects"): a character may take up to 12 bytes once
    escaped, so the encoded body is measured, not the string. Short: the stack events show it."""
    reason = reason[:500]
    while reason and len(json.dumps({**body, "Reason": reason}).encode()) > RESPONSE_LIMIT_BYTES:
        reason = reason[: len(reason) * 3 // 4]
    return reason


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    import boto3  # in the Lambda runtime; imported here so tests can pass their own client

    return handle(event, boto3.client("s3"))
