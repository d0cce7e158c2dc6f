"""The /predict path against AWS's size limits and botocore's retry of a read timeout.

InvokeEndpoint takes a body of at most 6291456 bytes (botocore's sagemaker-runtime model);
a synchronous Lambda invocation takes a payload of at most 6 MB (Lambda quotas: 6291456
bytes), and that payload is the whole API Gateway event, body included. The largest image
the API accepts (MAX_IMAGE_BYTES, its default) must fit both, as the code really sends it.
"""

from __future__ import annotations

import base64
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ReadTimeoutError
from botocore.stub import Stubber

from api import endpoint
from api.images import max_base64_length
from retraining.aws import client_config
from retraining.settings import PREDICT_MAX_ATTEMPTS, Settings
from tests.unit.api.support import http_v2_event, invoke_response, model_answer

#: Lambda quotas, "Invocation payload (request and response)": 6 MB each for synchronous
#: invocations; Lambda refuses a larger one ("Request must be smaller than 6291456 bytes").
LAMBDA_SYNC_PAYLOAD_BYTES = 6 * 1024 * 1024
#: HTTP API quotas: the request line and header values together are at most 10240 bytes.
HTTP_API_HEADER_BYTES = 10240
TOP_K_MAX = 100  # PredictRequest.top_k le=100: the longest top_k a caller can send


def _invoke_endpoint_body_limit() -> int:
    model = boto3.client("sagemaker-runtime", region_name="us-east-1").meta.service_model
    body = model.operation_model("InvokeEndpoint").input_shape.members["Body"]
    return int(body.metadata["max"])


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The API's settings with the image cap the deployed function runs with (the template
    sets no MAX_IMAGE_BYTES, so the Settings default)."""
    default = Settings.model_fields["max_image_bytes"].default
    return settings.model_copy(update={"max_image_bytes": default})


def _largest_image(max_bytes: int) -> str:
    """The longest base64 image the API accepts: a PNG of exactly ``max_bytes`` bytes."""
    image = base64.b64encode(b"\x89PNG\r\n\x1a\n" + bytes(max_bytes - 8)).decode()
    assert len(image) == max_base64_length(max_bytes)
    return image


def _worst_case_event(body: bytes, *, base64_body: bool) -> dict[str, Any]:
    """The HTTP API event for ``body`` with the largest headers the gateway lets through
    (SigV4 with a session token, padded to the quota) and an IAM authorizer context."""
    event = http_v2_event("POST", "/predict", body, base64_body=base64_body)
    event["headers"]["x-padding"] = "p" * HTTP_API_HEADER_BYTES
    event["requestContext"]["authorizer"] = {
        "iam": {
            "accessKey": "ASIA" + "A" * 16,
            "accountId": "123456789012",
            "callerId": "AROA" + "A" * 17 + ":session",
            "principalOrgId": "o-" + "a" * 32,
            "userArn": "arn:aws:sts::123456789012:assumed-role/" + "r" * 64 + "/session",
            "userId": "AROA" + "A" * 17 + ":session",
            "cognitoIdentity": None,
        }
    }
    return event


def test_the_largest_accepted_image_fits_invoke_endpoints_body(settings: Settings) -> None:
    image = _largest_image(settings.max_image_bytes)
    runtime = boto3.client("sagemaker-runtime", region_name="us-east-1")
    sent: list[bytes] = []
    runtime.meta.events.register(
        "provide-client-params.sagemaker-runtime.InvokeEndpoint",
        lambda params, **_: sent.append(params["Body"]),
    )
    with Stubber(runtime) as stubber:
        stubber.add_response("invoke_endpoint", invoke_response(model_answer(2)))
        endpoint.invoke(runtime, "ep", image, TOP_K_MAX)
    (body,) = sent
    body = body if isinstance(body, bytes) else body.encode()
    assert json.loads(body) == {"image": image, "top_k": TOP_K_MAX}
    assert len(body) <= _invoke_endpoint_body_limit()


def test_the_largest_accepted_image_reaches_lambda_within_its_payload_limit_as_json_text(
    settings: Settings, invoke: Callable[[dict[str, Any]], dict[str, Any]], stubber: Stubber
) -> None:
    """Sent as the README says (Content-Type: application/json), the body reaches Lambda as
    text: the event is the body plus headers and context, under 6 MB with room to spare."""
    image = _largest_image(settings.max_image_bytes)
    request = json.dumps({"image": image, "top_k": TOP_K_MAX}).encode()
    event = _worst_case_event(request, base64_body=False)
    assert event["headers"]["content-type"] == "application/json"
    assert len(json.dumps(event).encode()) <= LAMBDA_SYNC_PAYLOAD_BYTES
    # ... and the function accepts it (not a 413): this is the largest body it forwards.
    stubber.add_response("invoke_endpoint", invoke_response(model_answer(2)))
    response = invoke(event)
    assert response["statusCode"] == 200, response.get("body", "")[:300]
    # One base64 quantum more is refused by the API itself, before any endpoint call.
    bigger = json.dumps({"image": image + "AAAA", "top_k": TOP_K_MAX}).encode()
    refused = invoke(_worst_case_event(bigger, base64_body=False))
    assert refused["statusCode"] == 413


def test_the_largest_accepted_image_fits_lambda_even_when_the_gateway_base64_encodes_it(
    settings: Settings,
) -> None:
    image = _largest_image(settings.max_image_bytes)
    request = json.dumps({"image": image, "top_k": TOP_K_MAX}).encode()
    event = _worst_case_event(request, base64_body=True)
    assert len(json.dumps(event).encode()) <= LAMBDA_SYNC_PAYLOAD_BYTES


# -- botocore standard mode retries a read timeout --------------------------------------------


class _SilentServer:
    """Accepts every connection and never answers; remembers what each one was sent."""

    def __init__(self) -> None:
        self._listener = socket.socket()
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(8)
        self._listener.settimeout(0.05)
        self.connections: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                self.connections.append(self._listener.accept()[0])
            except TimeoutError:
                continue

    def requests(self) -> list[bytes]:
        """The first bytes each connection carried (the client has sent them by now)."""
        received = []
        for conn in self.connections:
            conn.settimeout(0.5)
            try:
                received.append(conn.recv(65536))
            except TimeoutError:
                received.append(b"")
        return received

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        for conn in self.connections:
            conn.close()
        self._listener.close()


@pytest.fixture
def silent() -> Iterator[_SilentServer]:
    server = _SilentServer()
    yield server
    server.close()


def test_standard_mode_retries_a_read_timeout_once_more_then_raises(silent: _SilentServer) -> None:
    """The predict client (retraining.aws.client_config, PREDICT_MAX_ATTEMPTS in all): a read
    timeout is a transient error in botocore's standard mode, so the request goes out again
    on a new connection, and the timeout is raised only after the last attempt."""
    config = client_config(0.5, 0.5, max_attempts=PREDICT_MAX_ATTEMPTS)
    assert config.retries == {"mode": "standard", "total_max_attempts": PREDICT_MAX_ATTEMPTS}
    runtime = boto3.client(
        "sagemaker-runtime", region_name="us-east-1", endpoint_url=silent.url, config=config
    )
    started = time.monotonic()
    with pytest.raises(ReadTimeoutError):
        runtime.invoke_endpoint(EndpointName="ep", Body=b"{}", ContentType="application/json")
    elapsed = time.monotonic() - started
    requests = silent.requests()
    assert len(requests) == PREDICT_MAX_ATTEMPTS == 2
    assert all(r.startswith(b"POST /endpoints/ep/invocations ") for r in requests), requests
    # Each attempt waited its read timeout; the back-off before the retry is at most 1 s.
    assert PREDICT_MAX_ATTEMPTS * 0.5 <= elapsed < PREDICT_MAX_ATTEMPTS * 0.5 + 1.5
