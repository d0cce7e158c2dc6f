"""Plug a local backend into real botocore clients.

A ``before-send`` hook (the way moto intercepts botocore) answers the request botocore has
already validated and serialized; botocore then parses our response or error exactly as it
would parse AWS's, so callers get real response dicts and real ``ClientError`` codes.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from io import BytesIO
from typing import Any
from urllib.parse import unquote, urlsplit

import boto3
from botocore.awsrequest import AWSPreparedRequest, AWSResponse
from botocore.config import Config

from local.sagemaker.errors import ServiceError, validation
from local.sagemaker.validation import constraint_errors, validation_message

REGION = "us-east-1"
ACCOUNT = "000000000000"

#: (operation name, parsed params) -> response dict
JsonHandler = Callable[[str, dict[str, Any]], dict[str, Any]]


class _Raw(BytesIO):
    """The raw body botocore reads: ``read()`` for streams, ``stream()`` for the rest."""

    def stream(self, **_: Any) -> Any:
        chunk = self.read()
        while chunk:
            yield chunk
            chunk = self.read()


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.timestamp()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _error(url: str, error: ServiceError) -> AWSResponse:
    body = {"__type": error.code, "message": error.message, **error.fields}
    headers = {"x-amzn-errortype": error.code, "content-type": "application/x-amz-json-1.1"}
    return AWSResponse(url, error.status, headers, _Raw(json.dumps(body).encode()))


def make_client(service: str, **kwargs: Any) -> Any:
    """A real boto3 client with dummy credentials that never leaves this machine."""
    return boto3.client(
        service,
        region_name=REGION,
        aws_access_key_id="local",
        aws_secret_access_key="local",
        config=Config(retries={"max_attempts": 1}),
        **kwargs,
    )


def attach_json_backend(client: Any, handler: JsonHandler) -> Any:
    """Serve a JSON-protocol client (``sagemaker``) from ``handler``."""
    model = client.meta.service_model

    def before_send(request: AWSPreparedRequest, event_name: str, **_: Any) -> AWSResponse:
        operation = event_name.rsplit(".", 1)[-1]
        params = json.loads(request.body or b"{}")
        try:
            errors = constraint_errors(model.operation_model(operation).input_shape, params)
            if errors:
                raise validation(validation_message(errors))
            result = handler(operation, params)
        except ServiceError as error:
            return _error(request.url, error)
        body = json.dumps(result, default=_json_default).encode()
        return AWSResponse(
            request.url, 200, {"content-type": "application/x-amz-json-1.1"}, _Raw(body)
        )

    client.meta.events.register(f"before-send.{model.service_id.hyphenize()}.*", before_send)
    return client


#: (endpoint name, body, content type, accept) -> (body, content type)
InvokeHandler = Callable[[str, bytes, str, str], tuple[bytes, str]]


def _header(request: AWSPreparedRequest, name: str, default: str) -> str:
    value = request.headers.get(name, default)
    return value.decode() if isinstance(value, bytes) else value  # signing leaves bytes


def attach_runtime_backend(client: Any, invoke: InvokeHandler) -> Any:
    """Serve ``sagemaker-runtime``'s InvokeEndpoint (REST-JSON) from ``invoke``."""

    def before_send(request: AWSPreparedRequest, event_name: str, **_: Any) -> AWSResponse:
        operation = event_name.rsplit(".", 1)[-1]
        if operation != "InvokeEndpoint":
            return _error(request.url, validation(f"{operation} is not available locally"))
        # Path: /endpoints/<name>/invocations
        name = unquote(urlsplit(request.url).path.split("/")[2])
        body = request.body or b""
        if hasattr(body, "read"):
            body = body.read()
        if isinstance(body, str):
            body = body.encode()
        try:
            payload, content_type = invoke(
                name,
                body,
                _header(request, "Content-Type", "application/octet-stream"),
                _header(request, "Accept", "application/json"),
            )
        except ServiceError as error:
            return _error(request.url, error)
        out = {"Content-Type": content_type, "x-Amzn-Invoked-Production-Variant": "AllTraffic"}
        return AWSResponse(request.url, 200, out, _Raw(payload))

    client.meta.events.register("before-send.sagemaker-runtime.*", before_send)
    return client
