"""Fixtures of the handler tests: the recording SageMaker double."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.sagemaker_double import RecordingSageMaker


@pytest.fixture
def sagemaker() -> Iterator[RecordingSageMaker]:
    double = RecordingSageMaker()
    yield double
    double.stubber.deactivate()
