"""Fixtures of the retraining tests (tests/unit/retraining and below): settings, the
recording SageMaker double, an in-memory run store and Deps wiring them."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from retraining.deps import Deps, set_deps
from retraining.settings import Settings
from retraining.stores.memory import InMemoryRunStore
from tests.support.sagemaker_double import RecordingSageMaker, make_settings

# -- fixtures -------------------------------------------------------------------------------


@pytest.fixture
def sagemaker() -> Iterator[RecordingSageMaker]:
    double = RecordingSageMaker()
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
    settings: Settings, sagemaker: RecordingSageMaker, store: InMemoryRunStore
) -> Iterator[Deps]:
    wired = Deps(
        settings_factory=lambda: settings,
        sagemaker_factory=lambda: sagemaker.client,
        sagemaker_runtime_factory=lambda: None,
        store_factory=lambda: store,
    )
    set_deps(wired)
    yield wired
    set_deps(None)
