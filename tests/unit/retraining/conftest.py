"""Fixtures of the retraining tests (tests/unit/retraining and below): settings, the
recording SageMaker and S3 doubles, an in-memory run store and Deps wiring them."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from retraining.deps import Deps, set_deps
from retraining.settings import Settings
from retraining.stores.memory import InMemoryRunStore
from tests.support.sagemaker_double import RecordingS3, RecordingSageMaker, make_settings, wire

# -- fixtures -------------------------------------------------------------------------------


@pytest.fixture
def sagemaker() -> Iterator[RecordingSageMaker]:
    double = RecordingSageMaker()
    yield double
    double.stubber.deactivate()


@pytest.fixture
def s3_double() -> Iterator[RecordingS3]:
    double = RecordingS3()
    yield double
    double.stubber.deactivate()


@pytest.fixture
def settings() -> Settings:
    return make_settings()


@pytest.fixture
def store() -> InMemoryRunStore:
    return InMemoryRunStore()


@pytest.fixture
def deps(
    settings: Settings,
    sagemaker: RecordingSageMaker,
    store: InMemoryRunStore,
    s3_double: RecordingS3,
) -> Iterator[Deps]:
    wired = wire(settings, sagemaker, store, s3_double)
    set_deps(wired)
    yield wired
    set_deps(None)
