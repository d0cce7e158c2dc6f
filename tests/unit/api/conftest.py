"""Fixtures: a real sagemaker-runtime client under botocore's Stubber, a real SageMaker client
whose CreateHyperParameterTuningJob is answered, the in-memory run store, the real
start_run, and the app reached three ways (TestClient, Lambda handler with v1 and v2 events)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.stub import Stubber
from fastapi import FastAPI
from fastapi.testclient import TestClient

import api.app
from retraining.deps import Deps, set_deps
from retraining.settings import Settings
from retraining.stores.memory import InMemoryRunStore
from tests.unit.api.fakes import AnsweringClient
from tests.unit.api.support import ENDPOINT, LambdaContext

MAX_IMAGE_BYTES = 64 * 1024
ALLOWED = ["ml.g5.xlarge", "ml.m5.xlarge"]


ACCOUNT = "123456789012"
TUNING_ARN = f"arn:aws:sagemaker:us-east-1:{ACCOUNT}:hyper-parameter-tuning-job/x"


@pytest.fixture
def settings() -> Settings:
    # What the template sets; start_run builds a real tuning request from these.
    return Settings(
        _env_file=None,
        endpoint_name=ENDPOINT,
        max_image_bytes=MAX_IMAGE_BYTES,
        allowed_instance_types=ALLOWED,
        warm_start=False,
        prepare_data=False,  # the data-preparation step has its own tests
        function_timeout_s=29,
        aws_region="us-east-1",
        artifact_bucket="cifar100-artifacts",
        sagemaker_role_arn=f"arn:aws:iam::{ACCOUNT}:role/cifar100-sagemaker",
        training_image_uri="763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-training:2.5.1-gpu-py311",
        training_source_s3_uri="s3://cifar100-artifacts/source/training/sourcedir.tar.gz",
        train_data_s3_uri="s3://cifar100-artifacts/data/train/",
        test_data_s3_uri="s3://cifar100-artifacts/data/test/",
    )


@pytest.fixture(scope="session")
def runtime() -> Any:
    # What retraining.aws builds in Lambda: standard retry mode, timeouts below API Gateway's.
    return boto3.client(
        "sagemaker-runtime",
        region_name="us-east-1",
        config=Config(retries={"mode": "standard", "max_attempts": 1}, read_timeout=5),
    )


@pytest.fixture
def stubber(runtime: Any) -> Iterator[Stubber]:
    with Stubber(runtime) as stub:
        yield stub


@pytest.fixture
def store() -> InMemoryRunStore:
    return InMemoryRunStore()


@pytest.fixture(scope="session")
def sagemaker() -> Any:
    return boto3.client("sagemaker", region_name="us-east-1")


@pytest.fixture
def tuning(sagemaker: Any) -> Iterator[AnsweringClient]:
    """SageMaker accepts every tuning job; the requests are recorded."""
    with AnsweringClient(
        sagemaker, "CreateHyperParameterTuningJob", {"HyperParameterTuningJobArn": TUNING_ARN}
    ) as answering:
        yield answering


@pytest.fixture
def deps(
    settings: Settings, runtime: Any, sagemaker: Any, store: InMemoryRunStore
) -> Iterator[Deps]:
    installed = Deps(
        settings_factory=lambda: settings,
        sagemaker_factory=lambda: sagemaker,
        sagemaker_runtime_factory=lambda: runtime,
        store_factory=lambda: store,
    )
    set_deps(installed)
    yield installed
    set_deps(None)


@pytest.fixture
def app(deps: Deps, tuning: AnsweringClient) -> FastAPI:
    """The module-level app that the Lambda handler serves."""
    return api.app.app


@pytest.fixture
def client(app: FastAPI) -> TestClient:
    return TestClient(app)


@pytest.fixture
def invoke(app: FastAPI) -> Callable[[dict[str, Any]], dict[str, Any]]:
    def call(event: dict[str, Any]) -> dict[str, Any]:
        return api.app.handler(event, LambdaContext())

    return call
