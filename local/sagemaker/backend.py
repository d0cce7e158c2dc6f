"""The local SageMaker service: answers the operations the orchestration and the API call.

Requests arrive already validated and parsed by botocore (see :mod:`local.sagemaker.wire`);
:class:`LocalSageMaker` owns the shared state and dispatches each operation through
:attr:`LocalSageMaker.operations` to the module that serves it: training jobs
(:mod:`~local.sagemaker.training`), the tuner (:mod:`~local.sagemaker.tuning`), the model
registry (:mod:`~local.sagemaker.registry`), models and endpoint configs
(:mod:`~local.sagemaker.models`), endpoints (:mod:`~local.sagemaker.endpoints`, hosted by
:mod:`~local.sagemaker.hosting`) and tags.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from local.s3 import LocalS3
from local.sagemaker.context import Document, Emit, ServiceContext
from local.sagemaker.endpoints import Endpoints
from local.sagemaker.errors import validation
from local.sagemaker.hosting import Hosting
from local.sagemaker.models import Models
from local.sagemaker.registry import ModelRegistry
from local.sagemaker.tags import Tags
from local.sagemaker.training import TrainingJobs
from local.sagemaker.tuning import TuningJobs

#: parsed request parameters -> response
Operation = Callable[[Document], Document]


class LocalSageMaker:
    def __init__(self, root: Path, s3: LocalS3, emit: Emit, threads_per_job: int = 2) -> None:
        self.root, self.s3, self.emit = root, s3, emit
        self.threads_per_job = threads_per_job
        self.context = ServiceContext(root, s3, emit, threads_per_job)
        self.table = self.context.table
        self.hosting = Hosting(root / "hosting", s3)
        self.training = TrainingJobs(self.context)
        self.tuning = TuningJobs(self.context, self.training)
        self.registry = ModelRegistry(self.context)
        self.models = Models(self.context, self.registry)
        self.endpoints = Endpoints(self.context, self.models, self.hosting)
        self.tags = Tags(self.table)
        # Every operation this service answers; anything else is refused (see handle).
        self.operations: dict[str, Operation] = {
            "CreateTrainingJob": self.training.create,
            "DescribeTrainingJob": self.training.describe,
            "ListTrainingJobs": self.training.list_jobs,
            "StopTrainingJob": self.training.stop,
            "CreateHyperParameterTuningJob": self.tuning.create,
            "DescribeHyperParameterTuningJob": self.tuning.describe,
            "ListTrainingJobsForHyperParameterTuningJob": self.tuning.list_training_jobs,
            "StopHyperParameterTuningJob": self.tuning.stop,
            "CreateModelPackageGroup": self.registry.create_group,
            "DescribeModelPackageGroup": self.registry.describe_group,
            "CreateModelPackage": self.registry.create_package,
            "DescribeModelPackage": self.registry.describe_package,
            "ListModelPackages": self.registry.list_packages,
            "UpdateModelPackage": self.registry.update_package,
            "CreateModel": self.models.create_model,
            "DescribeModel": self.models.describe_model,
            "CreateEndpointConfig": self.models.create_config,
            "DescribeEndpointConfig": self.models.describe_config,
            "CreateEndpoint": self.endpoints.create,
            "UpdateEndpoint": self.endpoints.update,
            "DescribeEndpoint": self.endpoints.describe,
            "ListTags": self.tags.list_tags,
        }

    def handle(self, operation: str, params: Document) -> Document:
        """The JSON handler :func:`~local.sagemaker.wire.attach_json_backend` calls."""
        answer = self.operations.get(operation)
        if answer is None:
            raise validation(f"{operation} is not implemented by the local SageMaker")
        return answer(params)

    def invoke(
        self, endpoint: str, body: bytes, content_type: str, accept: str
    ) -> tuple[bytes, str]:
        """InvokeEndpoint, for :func:`~local.sagemaker.wire.attach_runtime_backend`."""
        self.endpoints.ensure_serving(endpoint)
        return self.hosting.invoke(endpoint, body, content_type, accept)

    def job_dir(self, name: str) -> Path:
        return self.context.job_dir(name)

    def job_log(self, name: str) -> Path:
        return self.job_dir(name) / "log.txt"

    def shutdown(self) -> None:
        """Kill running jobs. Their records stay InProgress: the next start marks them
        Failed (``local stack stopped``) and tells the handlers, as after a crash."""
        with self.context.lock:
            self.context.stack_stopping = True
            processes = list(self.context.processes.values())
        for process in processes:
            process.stop()

    def recover(self) -> None:
        """After a restart: whatever was running died with the previous stack."""
        self.training.recover()
        self.tuning.recover()
        self.endpoints.recover()
