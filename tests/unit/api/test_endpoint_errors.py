"""Every endpoint failure maps to a documented status with the one error shape."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.stub import Stubber
from fastapi.testclient import TestClient

from retraining.deps import Deps
from tests.unit.api.support import b64, png_bytes

IMAGE = b64(png_bytes())


def _post(client: TestClient) -> Any:
    return client.post("/predict", json={"image": IMAGE, "top_k": 3})


@pytest.mark.parametrize(
    ("error_code", "http_status", "message", "fields", "status", "code"),
    [
        (
            "ValidationError",
            400,
            "Endpoint test-endpoint of account 123456789012 not found.",
            None,
            503,
            "endpoint_unavailable",
        ),
        (
            "ValidationError",
            400,
            "Endpoint test-endpoint is not in service; its status is Creating.",
            None,
            503,
            "endpoint_unavailable",
        ),
        ("ServiceUnavailable", 503, "Service unavailable", None, 503, "endpoint_unavailable"),
        ("ModelNotReadyException", 429, "Model not ready", None, 503, "model_not_ready"),
        ("ThrottlingException", 400, "Rate exceeded", None, 429, "throttled"),
        ("InternalFailure", 500, "Internal failure", None, 502, "endpoint_error"),
        ("InternalDependencyException", 530, "dependency", None, 502, "endpoint_error"),
        (
            "ModelError",
            424,
            "Received server error (500) from primary",
            {"OriginalStatusCode": 500, "OriginalMessage": "Traceback: secret internals"},
            502,
            "model_error",
        ),
        (
            "ModelError",
            424,
            "Received server error (0) from primary",
            {
                "OriginalStatusCode": 0,
                "OriginalMessage": "Your invocation timed out while waiting for a response "
                "from container primary.",
            },
            504,
            "model_timeout",
        ),
    ],
)
def test_service_errors_map_to_statuses(
    client: TestClient,
    stubber: Stubber,
    error_code: str,
    http_status: int,
    message: str,
    fields: dict[str, Any] | None,
    status: int,
    code: str,
) -> None:
    stubber.add_client_error(
        "invoke_endpoint",
        service_error_code=error_code,
        service_message=message,
        http_status_code=http_status,
        modeled_fields=fields,
    )
    response = _post(client)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code
    assert "secret internals" not in error["message"]
    assert "123456789012" not in error["message"]
    assert error["request_id"]


def test_throttling_tells_when_to_retry(client: TestClient, stubber: Stubber) -> None:
    stubber.add_client_error("invoke_endpoint", "ThrottlingException", "Rate exceeded", 400)
    response = _post(client)
    assert response.status_code == 429
    assert int(response.headers["retry-after"]) >= 1


@pytest.mark.parametrize(
    ("original_status", "original_message", "expected", "code"),
    [
        (
            400,
            '{"error": "cannot identify image file"}',
            "cannot identify image file",
            "invalid_image",
        ),
        (
            415,
            '{"message": "unsupported content type image/gif"}',
            "unsupported content type",
            "invalid_image",
        ),
        (422, "image has zero size", "image has zero size", "invalid_image"),
        # What the toolkit sends: the handler's one-line JSON, then a traceback.
        (
            413,
            '{"error": "payload_too_large", "message": "image is 5 MB", "status": 413}\n'
            "Traceback (most recent call last):\n  File inference.py",
            "image is 5 MB",
            "payload_too_large",
        ),
        # The handler's own code says which part was wrong: top_k, not the image.
        (
            400,
            '{"error": "invalid_top_k", "message": "top_k must be between 1 and 4, got 9", '
            '"status": 400}',
            "top_k must be between 1 and 4",
            "invalid_top_k",
        ),
    ],
)
def test_container_4xx_passes_through_with_its_message_and_code(
    client: TestClient,
    stubber: Stubber,
    original_status: int,
    original_message: str,
    expected: str,
    code: str,
) -> None:
    stubber.add_client_error(
        "invoke_endpoint",
        service_error_code="ModelError",
        service_message=f"Received client error ({original_status}) from primary",
        http_status_code=424,
        modeled_fields={
            "OriginalStatusCode": original_status,
            "OriginalMessage": original_message,
            "LogStreamArn": "arn:aws:logs:us-east-1:123456789012:log-group:/aws/sagemaker/x",
        },
    )
    response = _post(client)
    assert response.status_code == original_status
    error = response.json()["error"]
    assert error["code"] == code
    assert expected in error["message"]
    assert "Traceback" not in error["message"]


@pytest.fixture
def silent_server() -> Iterator[str]:
    """A real TCP server that accepts and never answers: the client's read timeout fires."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    stop.set()
    thread.join()
    for conn in accepted:
        conn.close()
    listener.close()


def _client_at(url: str) -> Any:
    return boto3.client(
        "sagemaker-runtime",
        region_name="us-east-1",
        endpoint_url=url,
        config=Config(
            retries={"mode": "standard", "max_attempts": 1}, connect_timeout=0.5, read_timeout=0.3
        ),
    )


def test_read_timeout_is_a_504(client: TestClient, deps: Deps, silent_server: str) -> None:
    deps.sagemaker_runtime = _client_at(silent_server)  # replaces the cached client
    response = _post(client)
    assert response.status_code == 504
    assert response.json()["error"]["code"] == "endpoint_timeout"


def test_unreachable_endpoint_is_a_503(client: TestClient, deps: Deps) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    deps.sagemaker_runtime = _client_at(f"http://127.0.0.1:{port}")
    response = _post(client)
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "endpoint_unavailable"


def test_predict_before_any_model_says_how_to_get_one(client: TestClient, stubber: Stubber) -> None:
    # What SageMaker answers InvokeEndpoint for an endpoint that does not exist.
    stubber.add_client_error(
        "invoke_endpoint",
        service_error_code="ValidationError",
        service_message="Endpoint test-endpoint of account 123456789012 not found.",
        http_status_code=400,
    )
    response = _post(client)
    assert response.status_code == 503
    error = response.json()["error"]
    assert error["code"] == "endpoint_unavailable"
    assert error["message"].startswith("no model is deployed yet")
    assert "POST /jobs/tune" in error["message"]
    assert "retry-after" not in response.headers  # seconds would not help
