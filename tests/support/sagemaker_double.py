"""SageMaker as the retraining tests see it: a real botocore client behind a Stubber that
records every request, Describe* answers in the shapes the service model requires, the
event fixtures of tests/events/sagemaker, and the settings the template would set."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
from botocore.stub import Stubber

from retraining.deps import Deps, unavailable
from retraining.settings import Settings

EVENTS = Path(__file__).resolve().parents[1] / "events" / "sagemaker"
FIXTURE_RUN_ID = "r20261128030512ab12"
ACCOUNT = "123456789012"
T = datetime(2026, 11, 28, 4, 0, tzinfo=UTC)


def load_event(name: str, run_id: str = FIXTURE_RUN_ID) -> dict[str, Any]:
    return json.loads((EVENTS / name).read_text().replace(FIXTURE_RUN_ID, run_id))


def make_settings(**changes: Any) -> Settings:
    values: dict[str, Any] = {
        "artifact_bucket": "cifar100-artifacts",
        "endpoint_name": "cifar100-classifier",
        "sagemaker_role_arn": f"arn:aws:iam::{ACCOUNT}:role/cifar100-sagemaker",
        "training_image_uri": "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-training:2.5.1-gpu-py311",
        "inference_image_uri": "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-inference:2.5.1-cpu-py311",
        "training_source_s3_uri": "s3://cifar100-artifacts/source/training/sourcedir.tar.gz",
        "inference_source_s3_uri": "s3://cifar100-artifacts/source/model_handler/",
        "train_data_s3_uri": "s3://cifar100-artifacts/data/train/",
        "test_data_s3_uri": "s3://cifar100-artifacts/data/test/",
        "debugger_rule_image_uri": "503895931360.dkr.ecr.us-east-1.amazonaws.com/sagemaker-debugger-rules:latest",
        "rollback_alarm_names": ["cifar100-endpoint-5xx", "cifar100-endpoint-latency"],
        "gate_min_accuracy": 0.5,
        "gate_margin": 0.01,
        "aws_region": "us-east-1",
        # The data-preparation step has its own tests (test_reconcile_and_data.py).
        "prepare_data": False,
    }
    values.update(changes)
    return Settings(_env_file=None, **values)


class RecordingSageMaker:
    """A real botocore SageMaker client behind a Stubber: parameters are validated against
    the service model, responses are queued per test, every request is recorded."""

    def __init__(self) -> None:
        self.client = boto3.client("sagemaker", region_name="us-east-1")
        self.stubber = Stubber(self.client)
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.client.meta.events.register("provide-client-params.sagemaker", self._record)
        self.stubber.activate()

    def _record(self, params: dict[str, Any], model: Any, **_: Any) -> None:
        self.calls.append((model.name, copy.deepcopy(params)))

    def expect(self, operation: str, response: dict[str, Any] | None = None) -> None:
        self.stubber.add_response(operation, response or {})

    def fail(self, operation: str, code: str, message: str = "", status: int = 400) -> None:
        self.stubber.add_client_error(
            operation, service_error_code=code, service_message=message, http_status_code=status
        )

    def requests(self, operation: str) -> list[dict[str, Any]]:
        return [params for name, params in self.calls if name == operation]

    def operations(self) -> list[str]:
        return [name for name, _ in self.calls]

    def assert_all_used(self) -> None:
        self.stubber.assert_no_pending_responses()


# -- response builders (the fields the service model requires) ------------------------------


def tuning_description(
    name: str, best: str | None, tuned: dict[str, str] | None = None, val_acc: float = 0.62
) -> dict[str, Any]:
    response: dict[str, Any] = {
        "HyperParameterTuningJobName": name,
        "HyperParameterTuningJobArn": f"arn:aws:sagemaker:us-east-1:{ACCOUNT}:hyper-parameter-tuning-job/{name}",
        "HyperParameterTuningJobConfig": {
            "Strategy": "Bayesian",
            "ResourceLimits": {"MaxNumberOfTrainingJobs": 4, "MaxParallelTrainingJobs": 2},
        },
        "HyperParameterTuningJobStatus": "Completed",
        "CreationTime": T,
        "TrainingJobStatusCounters": {
            "Completed": 4 if best else 0,
            "NonRetryableError": 0 if best else 4,
        },
        "ObjectiveStatusCounters": {"Succeeded": 4 if best else 0, "Failed": 0 if best else 4},
    }
    if best:
        response["BestTrainingJob"] = {
            "TrainingJobName": best,
            "TrainingJobArn": f"arn:aws:sagemaker:us-east-1:{ACCOUNT}:training-job/{best}",
            "CreationTime": T,
            "TrainingJobStatus": "Completed",
            "TunedHyperParameters": tuned
            or {"learning_rate": "0.0123", "batch_size": '"128"', "epochs": "6"},
            "FinalHyperParameterTuningJobObjectiveMetric": {
                "MetricName": "val_acc",
                "Value": val_acc,
            },
        }
    return response


def training_description(name: str, run_id: str, test_acc: float | None) -> dict[str, Any]:
    metrics = [{"MetricName": "val_acc", "Value": 0.63, "Timestamp": T}]
    if test_acc is not None:
        metrics.append({"MetricName": "test_acc", "Value": test_acc, "Timestamp": T})
    return {
        "TrainingJobName": name,
        "TrainingJobArn": f"arn:aws:sagemaker:us-east-1:{ACCOUNT}:training-job/{name}",
        "ModelArtifacts": {
            "S3ModelArtifacts": f"s3://cifar100-artifacts/runs/{run_id}/final/{name}/output/model.tar.gz"
        },
        "TrainingJobStatus": "Completed",
        "SecondaryStatus": "Completed",
        "AlgorithmSpecification": {"TrainingInputMode": "File"},
        "ResourceConfig": {
            "InstanceType": "ml.g5.xlarge",
            "InstanceCount": 1,
            "VolumeSizeInGB": 30,
        },
        "StoppingCondition": {"MaxRuntimeInSeconds": 14400},
        "CreationTime": T,
        "FinalMetricDataList": metrics,
    }


def endpoint_description(status: str, config: str, pending: str | None = None) -> dict[str, Any]:
    response: dict[str, Any] = {
        "EndpointName": "cifar100-classifier",
        "EndpointArn": f"arn:aws:sagemaker:us-east-1:{ACCOUNT}:endpoint/cifar100-classifier",
        "EndpointConfigName": config,
        "EndpointStatus": status,
        "CreationTime": T,
        "LastModifiedTime": T,
    }
    if pending:
        response["PendingDeploymentSummary"] = {"EndpointConfigName": pending}
    return response


def wire(settings: Settings, sagemaker: RecordingSageMaker, store: Any, s3: Any = None) -> Deps:
    """Deps over the double, a run store and (for the data-preparation check) an S3 client."""
    return Deps(
        settings_factory=lambda: settings,
        sagemaker_factory=lambda: sagemaker.client,
        sagemaker_runtime_factory=lambda: None,
        store_factory=lambda: store,
        s3_factory=(lambda: s3) if s3 is not None else unavailable("s3"),
    )
