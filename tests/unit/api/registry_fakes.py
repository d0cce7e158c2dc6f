"""The Model Registry the /models tests read and write: moto's SageMaker backend behind a real
botocore ``sagemaker`` client (every request is validated against the service model and
answered by moto), plus ``before-call`` hooks that record the requests of chosen operations or
answer one with an AWS error.

Versions are registered with the project's own ``registry.package_request`` (the request the
workflow sends), so what the routes read back has the shape the stack writes.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
from botocore.awsrequest import AWSResponse
from botocore.config import Config
from moto import mock_aws
from moto.sagemaker.models import sagemaker_backends

from retraining.records import RunRecord, RunStatus
from retraining.sagemaker import registry
from retraining.settings import Settings

ACCOUNT = "123456789012"  # moto's default account
REGION = "us-east-1"
INFERENCE_IMAGE = "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-inference:2.5.1-gpu-py311"
#: When version 1 was registered; each later version a day after the one before.
FIRST_CREATED = datetime(2026, 11, 28, 3, 5, 12, tzinfo=UTC)


@contextmanager
def moto_sagemaker() -> Iterator[Any]:
    """A real SageMaker client answered by moto (one attempt: no retry sleeps)."""
    with mock_aws():
        yield boto3.client(
            "sagemaker",
            region_name=REGION,
            config=Config(retries={"mode": "standard", "total_max_attempts": 1}),
        )


class Registry:
    """The stack's model package group in moto, and the versions registered in it."""

    def __init__(self, client: Any, settings: Settings) -> None:
        self.client = client
        self.settings = settings
        self.group = registry.group_name(settings)
        client.create_model_package_group(
            ModelPackageGroupName=self.group, ModelPackageGroupDescription="test registry"
        )

    @property
    def backend(self) -> Any:
        return sagemaker_backends[ACCOUNT][REGION]

    def register(
        self,
        metrics: dict[str, float],
        status: registry.ApprovalStatus = "PendingManualApproval",
        reason: str | None = None,
    ) -> str:
        """Register the next version as the workflow does, then give it ``status`` (set in
        moto's state: moto's UpdateModelPackage drops the package's metadata when the request
        carries none, which SageMaker does not)."""
        number = len(self.backend.model_packages) + 1
        run_id = f"r2026112{number}030512ab12"
        training_job = f"cifar100-{run_id}-final"
        run = RunRecord(
            run_id=run_id,
            trigger="schedule",
            status=RunStatus.TRAINING,
            tuning_job_name=f"cifar100-{run_id}",
            training_job_name=training_job,
            best_hyperparameters={"learning_rate": "0.01", "epochs": str(10 + number)},
        )
        training = {
            "TrainingJobName": training_job,
            "TrainingJobArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:training-job/{training_job}",
            "ModelArtifacts": {
                "S3ModelArtifacts": f"s3://cifar100-artifacts/runs/{run_id}/model.tar.gz"
            },
        }
        arn = registry.register(
            self.client, registry.package_request(self.settings, run, training, metrics)
        )
        package = self.backend.model_packages[arn]
        package.creation_time = (FIRST_CREATED + timedelta(days=number - 1)).replace(tzinfo=None)
        package.model_approval_status = status
        package.approval_description = reason
        return str(arn)

    def status_of(self, arn: str) -> str:
        return str(self.backend.model_packages[arn].model_approval_status)


class Calls:
    """Record the serialized requests of ``operations`` (the calls still go to moto);
    :meth:`bodies` is the JSON SageMaker would receive."""

    def __init__(self, client: Any, *operations: str) -> None:
        self.client = client
        self.operations = operations
        self.requests: dict[str, list[dict[str, Any]]] = {op: [] for op in operations}

    def _event(self, operation: str) -> str:
        return f"before-call.sagemaker.{operation}"

    def __enter__(self) -> Calls:
        for operation in self.operations:

            def record(params: dict[str, Any], _op: str = operation, **_: Any) -> None:
                self.requests[_op].append(params)

            self.client.meta.events.register_first(
                self._event(operation), record, unique_id=f"calls-{operation}"
            )
        return self

    def __exit__(self, *_: object) -> None:
        for operation in self.operations:
            self.client.meta.events.unregister(
                self._event(operation), unique_id=f"calls-{operation}"
            )

    def bodies(self, operation: str) -> list[dict[str, Any]]:
        return [json.loads(params["body"]) for params in self.requests[operation]]


class Refusing:
    """SageMaker answers every ``operation`` call with an AWS error (botocore raises the
    ClientError it would raise for that answer); or, with ``raises``, the call raises it
    (a BotoCoreError such as EndpointConnectionError, or anything unexpected)."""

    def __init__(
        self,
        client: Any,
        operation: str,
        code: str = "ValidationException",
        message: str = "refused",
        status: int = 400,
        *,
        raises: BaseException | None = None,
    ) -> None:
        self.client = client
        self.event = f"before-call.sagemaker.{operation}"
        self.unique_id = f"refusing-{operation}"
        self.error = {
            "Error": {"Code": code, "Message": message},
            "ResponseMetadata": {"HTTPStatusCode": status},
        }
        self.status = status
        self.raises = raises
        self.calls = 0

    def _answer(self, **_: Any) -> tuple[AWSResponse, dict[str, Any]]:
        self.calls += 1
        if self.raises is not None:
            raise self.raises
        return AWSResponse("https://aws.invalid", self.status, {}, None), dict(self.error)

    def __enter__(self) -> Refusing:
        self.client.meta.events.register_first(self.event, self._answer, unique_id=self.unique_id)
        return self

    def __exit__(self, *_: object) -> None:
        self.client.meta.events.unregister(self.event, unique_id=self.unique_id)
