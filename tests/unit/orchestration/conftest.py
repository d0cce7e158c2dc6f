"""Fixtures of the handler tests: the recording SageMaker and S3 doubles."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.sagemaker_double import RecordingS3, RecordingSageMaker


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
