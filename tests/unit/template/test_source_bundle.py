"""The source-bundle custom resource, offline: moto S3 and a real HTTP server on 127.0.0.1
standing in for CloudFormation's pre-signed response URL."""

from __future__ import annotations

import gzip
import io
import json
import os
import tarfile
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any, ClassVar

import boto3
import pytest
from botocore.exceptions import ClientError
from botocore.stub import ANY, Stubber
from moto import mock_aws

from deploy.source_bundle import bundle
from deploy.source_bundle.handler import handle, put_response

BUCKET = "artifacts"


@pytest.fixture
def s3() -> Iterator[Any]:
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        client.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
        yield client


@pytest.fixture
def payload(tmp_path: Path) -> Path:
    root = tmp_path / "payload"
    (root / "training" / "trainlib").mkdir(parents=True)
    (root / "training" / "train_model.py").write_text("print('train')\n")
    (root / "training" / "requirements.txt").write_text("tqdm==4.70.1\n")
    (root / "training" / "trainlib" / "__init__.py").write_text("")
    (root / "model_handler").mkdir()
    (root / "model_handler" / "inference.py").write_text("def model_fn(d): ...\n")
    (root / "model_handler" / "requirements.txt").write_text("pillow==13.0.0\n")
    return root


class _Recorder(BaseHTTPRequestHandler):
    received: ClassVar[list[tuple[dict[str, str], dict[str, Any]]]] = []

    def do_PUT(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append((dict(self.headers), json.loads(body)))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def response_url() -> Iterator[tuple[str, list[tuple[dict[str, str], dict[str, Any]]]]]:
    received: ClassVar[list[tuple[dict[str, str], dict[str, Any]]]] = []
    handler = type("Handler", (_Recorder,), {"received": received})
    server = HTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/cfn-response?X-Amz-Signature=abc", received
    server.shutdown()
    server.server_close()


def _event(request_type: str, url: str, **props: Any) -> dict[str, Any]:
    return {
        "RequestType": request_type,
        "ResponseURL": url,
        "StackId": "arn:aws:cloudformation:us-east-1:123456789012:stack/cifar100/guid",
        "RequestId": "req-1",
        "ResourceType": "Custom::SourceBundle",
        "LogicalResourceId": "SourceBundle",
        "ResourceProperties": {
            "ServiceToken": "arn:aws:lambda:us-east-1:123456789012:function:bundler",
            "Bucket": BUCKET,
            "Prefix": "code/",
            "BundleVersion": "arn:aws:lambda:us-east-1:123456789012:function:bundler:3",
            **props,
        },
    }


def _key(uri: str) -> str:
    assert uri.startswith(f"s3://{BUCKET}/")
    return uri.removeprefix(f"s3://{BUCKET}/")


def test_create_uploads_both_bundles_and_answers_cloudformation(
    s3: Any, payload: Path, response_url: Any
) -> None:
    url, received = response_url
    handle(_event("Create", url), s3, payload, put_response)

    (headers, body) = received[0]
    assert body["Status"] == "SUCCESS"
    assert body["RequestId"] == "req-1"
    assert body["LogicalResourceId"] == "SourceBundle"
    assert headers.get("Content-Type", "") == ""  # the pre-signed URL is signed without one
    training = body["Data"]["TrainingSourceS3Uri"]
    inference = body["Data"]["InferenceSourceS3Uri"]
    assert training.endswith("/sourcedir.tar.gz")
    assert _key(training).startswith("code/training/")
    assert inference.endswith("/")
    assert _key(inference).startswith("code/inference/")

    tarball = s3.get_object(Bucket=BUCKET, Key=_key(training))["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(tarball)) as tar:
        assert sorted(tar.getnames()) == [
            "requirements.txt",
            "train_model.py",
            "trainlib/__init__.py",
        ]
        assert tar.extractfile("train_model.py").read() == b"print('train')\n"
    listed = s3.list_objects_v2(Bucket=BUCKET, Prefix=_key(inference))["Contents"]
    assert sorted(o["Key"].removeprefix(_key(inference)) for o in listed) == [
        "inference.py",
        "requirements.txt",
    ]


def test_same_content_same_keys_and_no_new_versions(s3: Any, payload: Path) -> None:
    first = bundle.publish(s3, BUCKET, "code", payload)
    second = bundle.publish(s3, BUCKET, "/code/", payload)
    assert first == second
    versions = s3.list_object_versions(Bucket=BUCKET)["Versions"]
    assert len(versions) == 3  # one tarball + two handler files, uploaded once


def test_changed_content_gets_new_keys_and_keeps_the_old(s3: Any, payload: Path) -> None:
    before = bundle.publish(s3, BUCKET, "code/", payload)
    (payload / "training" / "train_model.py").write_text("print('train v2')\n")
    after = bundle.publish(s3, BUCKET, "code/", payload)
    assert after.training_source_s3_uri != before.training_source_s3_uri
    assert after.inference_source_s3_uri == before.inference_source_s3_uri
    # The key of a running job's code stays readable.
    s3.head_object(Bucket=BUCKET, Key=_key(before.training_source_s3_uri))


def test_tarball_is_reproducible_whatever_the_file_times(payload: Path) -> None:
    first = bundle.sourcedir_tarball(payload / "training")
    os.utime(payload / "training" / "train_model.py", (1, 1))
    assert bundle.sourcedir_tarball(payload / "training") == first
    assert gzip.decompress(first)  # a valid gzip stream


def test_delete_leaves_the_objects(s3: Any, payload: Path, response_url: Any) -> None:
    url, received = response_url
    created = handle(_event("Create", url), s3, payload, put_response)
    event = {**_event("Delete", url), "PhysicalResourceId": created["PhysicalResourceId"]}
    handle(event, s3, payload, put_response)
    assert received[-1][1]["Status"] == "SUCCESS"
    assert received[-1][1]["PhysicalResourceId"] == created["PhysicalResourceId"]
    assert s3.list_objects_v2(Bucket=BUCKET)["KeyCount"] == 3


@pytest.mark.parametrize(
    ("props", "reason"),
    [
        ({"Bucket": "no-such-bucket"}, "NoSuchBucket"),
        ({"Bucket": ""}, "Bucket is required"),
    ],
)
def test_failures_are_reported_not_raised(
    s3: Any, payload: Path, response_url: Any, props: dict[str, Any], reason: str
) -> None:
    url, received = response_url
    handle(_event("Update", url, **props), s3, payload, put_response)
    body = received[-1][1]
    assert body["Status"] == "FAILED"
    assert reason in body["Reason"]
    assert "Data" not in body


def test_missing_payload_folder_fails_clearly(s3: Any, tmp_path: Path, response_url: Any) -> None:
    url, received = response_url
    handle(_event("Create", url), s3, tmp_path / "nowhere", put_response)
    assert received[-1][1]["Status"] == "FAILED"
    assert "does not exist" in received[-1][1]["Reason"]


def _as_the_bundler_role(s3: Any) -> Any:
    """Make moto answer as S3 answers the bundler's role, whose s3:ListBucket holds only
    under the condition ``s3:prefix like code/*``: HeadObject carries no s3:prefix, so for a
    missing key S3 answers 403 Forbidden, not 404 ("HeadObject", S3 API reference); a list
    request outside code/ is denied."""

    def remember(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        context["api_params"] = dict(params)  # before-call sees the serialised request only

    def head_object(context: dict[str, Any], **_: Any) -> Any:
        params = context["api_params"]
        listed = s3.list_objects_v2(Bucket=params["Bucket"], Prefix=params["Key"])
        if any(item["Key"] == params["Key"] for item in listed.get("Contents", [])):
            return None  # present: moto answers as usual
        return _error(403, "403", "Forbidden")

    def list_objects_v2(context: dict[str, Any], **_: Any) -> Any:
        if not str(context["api_params"].get("Prefix", "")).startswith("code/"):
            return _error(403, "AccessDenied", "Access Denied")
        return None

    for operation in ("HeadObject", "ListObjectsV2"):
        s3.meta.events.register(f"before-parameter-build.s3.{operation}", remember)
    s3.meta.events.register("before-call.s3.HeadObject", head_object)
    s3.meta.events.register("before-call.s3.ListObjectsV2", list_objects_v2)
    return s3


def _error(status: int, code: str, message: str) -> Any:
    from botocore.awsrequest import AWSResponse

    http = AWSResponse("https://s3.amazonaws.com", status, {}, None)
    return http, {"Error": {"Code": code, "Message": message}, "ResponseMetadata": {}}


def test_first_deploy_succeeds_when_head_object_on_a_new_key_is_forbidden(
    s3: Any, payload: Path, response_url: Any
) -> None:
    role = _as_the_bundler_role(s3)
    with pytest.raises(ClientError) as forbidden:  # the stand-in answers as S3 does
        role.head_object(Bucket=BUCKET, Key="code/training/not-there/sourcedir.tar.gz")
    assert forbidden.value.response["Error"]["Code"] == "403"

    url, received = response_url
    handle(_event("Create", url), role, payload, put_response)
    assert received[-1][1]["Status"] == "SUCCESS", received[-1][1].get("Reason")
    assert role.list_objects_v2(Bucket=BUCKET, Prefix="code/")["KeyCount"] == 3
    # A second deploy finds every key and uploads nothing (no new object versions).
    handle(_event("Update", url), role, payload, put_response)
    assert len(s3.list_object_versions(Bucket=BUCKET)["Versions"]) == 3


def test_existence_is_asked_with_a_prefixed_list_request(payload: Path) -> None:
    """The exact calls, validated against S3's service model: one ListObjectsV2 per key
    with Prefix=<key> (inside the granted code/*), a PutObject when it is not listed."""
    s3 = boto3.client("s3", region_name="us-east-1")
    stubber = Stubber(s3)
    key = f"code/training/{'0' * 16}/sourcedir.tar.gz"
    stubber.add_response(
        "list_objects_v2",
        {"KeyCount": 1, "Contents": [{"Key": key + ".old"}]},  # a longer key is not this one
        {"Bucket": BUCKET, "Prefix": ANY, "MaxKeys": 1},
    )
    stubber.add_response("put_object", {}, {"Bucket": BUCKET, "Key": ANY, "Body": ANY})
    with stubber:
        uri = bundle.publish_training_source(s3, BUCKET, "code/", payload / "training")
    stubber.assert_no_pending_responses()
    assert uri.startswith(f"s3://{BUCKET}/code/training/")


def test_caches_beside_the_sources_are_not_bundled(payload: Path) -> None:
    """A type checker's or interpreter's cache in the folder never reaches the bundle."""
    for cache in ("__pycache__", ".mypy_cache/3.11", ".pytest_cache"):
        (payload / "model_handler" / cache).mkdir(parents=True)
        (payload / "model_handler" / cache / "x.json").write_text("{}")
    files = bundle.source_files(payload / "model_handler")
    assert [f.name for f in files] == ["inference.py", "requirements.txt"]
