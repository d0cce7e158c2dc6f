"""The CLI against a deployed stack: URL from the stack's outputs, SigV4-signed requests
(recomputed here with botocore for known credentials), one-line errors, --json output.

A real HTTP server on 127.0.0.1 stands in for API Gateway and records what it receives.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import boto3
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.stub import Stubber

from local import aws_target
from local.cli import main

KEY, SECRET, TOKEN = "AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "session-token"
PAGE = {"runs": [], "next_cursor": None}


class _Gateway(BaseHTTPRequestHandler):
    answer: ClassVar[tuple[int, dict[str, Any]]] = (200, PAGE)
    received: ClassVar[list[dict[str, Any]]] = []

    def do_GET(self) -> None:
        self.received.append({"method": "GET", "path": self.path, "headers": dict(self.headers)})
        status, body = self.answer
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def gateway() -> Iterator[tuple[str, type[_Gateway]]]:
    handler = type("Gateway", (_Gateway,), {"received": [], "answer": (200, PAGE)})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}", handler
    server.shutdown()
    server.server_close()


@pytest.fixture
def credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.setenv("AWS_SESSION_TOKEN", TOKEN)
    for name in ("AWS_PROFILE", "AWS_SECURITY_TOKEN"):  # botocore reads the latter first
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))


def _expected_signature(url: str, received: dict[str, Any], region: str) -> str:
    """Sign the request the server received again, with the same credentials, time and
    signed headers: botocore's answer must be the Authorization header's signature."""
    authorization = received["headers"]["Authorization"]
    signed_names = authorization.split("SignedHeaders=")[1].split(",")[0].split(";")
    headers = {k: v for k, v in received["headers"].items() if k.lower() in signed_names}
    request = AWSRequest(method=received["method"], url=url + received["path"], headers=headers)
    request.context["timestamp"] = received["headers"]["X-Amz-Date"]
    signer = SigV4Auth(Credentials(KEY, SECRET, TOKEN), "execute-api", region)
    canonical = signer.canonical_request(request)
    return signer.signature(signer.string_to_sign(request, canonical), request)


def test_requests_are_sigv4_signed_for_execute_api(
    gateway: Any, credentials: None, capsys: pytest.CaptureFixture[str]
) -> None:
    url, handler = gateway
    assert main(["runs", "--url", url, "--sign", "--region", "eu-west-1", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []  # --json: the API's answer
    (received,) = handler.received
    authorization = received["headers"]["Authorization"]
    assert authorization.startswith(f"AWS4-HMAC-SHA256 Credential={KEY}/")
    assert "/eu-west-1/execute-api/aws4_request" in authorization
    assert received["headers"]["X-Amz-Security-Token"] == TOKEN
    signature = authorization.rsplit("Signature=", 1)[1]
    assert signature == _expected_signature(url, received, "eu-west-1")


def test_the_local_stack_gets_no_signature(gateway: Any, credentials: None) -> None:
    url, handler = gateway
    assert main(["runs", "--url", url]) == 0
    assert "Authorization" not in handler.received[0]["headers"]


def test_execute_api_urls_are_signed_for_the_region_in_their_host() -> None:
    assert (
        aws_target.execute_api_region("https://a1b2c3.execute-api.ap-east-1.amazonaws.com")
        == "ap-east-1"
    )
    assert aws_target.execute_api_region("http://127.0.0.1:8000") is None


def test_the_stack_name_finds_its_api_url() -> None:
    cloudformation = boto3.client("cloudformation", region_name="us-east-1")
    with Stubber(cloudformation) as stubber:
        stubber.add_response(
            "describe_stacks",
            {
                "Stacks": [
                    {
                        "StackName": "cifar100",
                        "CreationTime": "2026-12-01T00:00:00Z",
                        "StackStatus": "CREATE_COMPLETE",
                        "Outputs": [
                            {
                                "OutputKey": "ApiUrl",
                                "OutputValue": "https://x.execute-api.us-east-1.amazonaws.com",
                            },
                        ],
                    }
                ]
            },
            {"StackName": "cifar100"},
        )
        stubber.add_client_error(
            "describe_stacks",
            service_error_code="ValidationError",
            service_message="Stack with id nope does not exist",
        )
        assert aws_target.stack_url(cloudformation, "cifar100").endswith(".amazonaws.com")
        with pytest.raises(aws_target.TargetError, match="cannot read stack nope: Stack with id"):
            aws_target.stack_url(cloudformation, "nope")


def test_no_credentials_is_one_line(
    gateway: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Any, capsys: Any
) -> None:
    url, handler = gateway
    for name in (
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_SECURITY_TOKEN",
        "AWS_PROFILE",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    assert main(["runs", "--url", url, "--sign", "--region", "eu-west-1"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "no AWS credentials found" in err
    assert handler.received == []  # nothing unsigned was sent


def test_access_denied_by_iam_is_one_line(gateway: Any, credentials: None, capsys: Any) -> None:
    url, handler = gateway
    handler.answer = (403, {"message": "Forbidden"})
    assert main(["runs", "--url", url, "--sign", "--region", "eu-west-1"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "execute-api:Invoke" in err
    assert "(HTTP 403)" in err


def test_an_unreachable_deployed_api_is_one_line(credentials: None, capsys: Any) -> None:
    assert main(["runs", "--url", "http://127.0.0.1:9", "--sign", "--region", "eu-west-1"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: cannot reach the deployed API at http://127.0.0.1:9")
    assert err.count("\n") == 1
