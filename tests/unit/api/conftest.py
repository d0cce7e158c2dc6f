"""Fixtures: a real sagemaker-runtime client under botocore's Stubber, the in-memory run store,
and the app reached three ways (TestClient, Lambda handler with v1 and v2 events)."""

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
from api.dependencies import get_start_run
from retraining.deps import Deps, set_deps
from retraining.memory_store import InMemoryRunStore
from retraining.settings import Settings
from tests.unit.api.fakes import fake_start_run
from tests.unit.api.support import ENDPOINT, LambdaContext

MAX_IMAGE_BYTES = 64 * 1024
ALLOWED = ["ml.g5.xlarge", "ml.m5.xlarge"]


@pytest.fixture
def settings() -> Settings:
    return Settings(
        endpoint_name=ENDPOINT, max_image_bytes=MAX_IMAGE_BYTES, allowed_instance_types=ALLOWED
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


def _no_sagemaker() -> Any:
    raise AssertionError("the API must not need a SageMaker control-plane client here")


@pytest.fixture
def deps(settings: Settings, runtime: Any, store: InMemoryRunStore) -> Iterator[Deps]:
    installed = Deps(
        settings_factory=lambda: settings,
        sagemaker_factory=_no_sagemaker,
        sagemaker_runtime_factory=lambda: runtime,
        store_factory=lambda: store,
    )
    set_deps(installed)
    yield installed
    set_deps(None)


@pytest.fixture
def app(deps: Deps) -> Iterator[FastAPI]:
    """The module-level app the Lambda handler serves, with the start-run stand-in."""
    application = api.app.app
    application.dependency_overrides[get_start_run] = lambda: fake_start_run
    yield application
    application.dependency_overrides.clear()


@pytest.fixture
def client(app: FastAPI) -> TestClient:
    return TestClient(app)


@pytest.fixture
def invoke(app: FastAPI) -> Callable[[dict[str, Any]], dict[str, Any]]:
    def call(event: dict[str, Any]) -> dict[str, Any]:
        return api.app.handler(event, LambdaContext())

    return call
