"""SageMaker (and S3) as the retraining tests see them: real botocore clients behind a Stubber
that record every request, Describe*/List* answers in the shapes the service model requires,
the event fixtures of tests/events/sagemaker, and the settings the template would set."""

from __future__ import annotations

import copy
import json
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
from botocore.stub import Stubber

from retraining.deps import Deps
from retraining.settings import Settings

EVENTS = Path(__file__).resolve().parents[1] / "events" / "sagemaker"
FIXTURE_RUN_ID = "r20261128030512ab12"
ACCOUNT = "123456789012"
T = datetime(2026, 11, 28, 4, 0, tzinfo=UTC)
GROUP = "cifar100-models"  # names.model_package_group_name("cifar100")
BUCKET = "cifar100-artifacts"


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

    def version_for(self, run_id: str) -> int:
        """The version the registry gives ``run_id``'s package: the one it already has (a
        repeated ClientToken answers the same package), else the next one."""
        tokens: list[str] = []
        for request in self.requests("CreateModelPackage"):
            if request["ClientToken"] not in tokens:
                tokens.append(request["ClientToken"])
        return tokens.index(run_id) + 1 if run_id in tokens else len(tokens) + 1

    def registered(self, run_id: str) -> dict[str, Any]:
        """The (last) CreateModelPackage request made for ``run_id``."""
        found = [r for r in self.requests("CreateModelPackage") if r["ClientToken"] == run_id]
        assert found, f"no CreateModelPackage for {run_id}"
        return found[-1]


class RecordingS3:
    """A real botocore S3 client behind a Stubber: what the workflow writes (the registry's
    statistics file) is validated against the service model and recorded. PutObject is
    answered as S3 answers it unless a test queued its own answer (e.g. a failure); any
    other operation must be queued."""

    def __init__(self) -> None:
        self.client = boto3.client("s3", region_name="us-east-1")
        self.stubber = Stubber(self.client)
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self._queued: Counter[str] = Counter()
        self.client.meta.events.register("provide-client-params.s3", self._record)
        self.stubber.activate()

    def _record(self, params: dict[str, Any], model: Any, **_: Any) -> None:
        self.calls.append((model.name, copy.deepcopy(params)))
        if self._queued[model.name]:
            self._queued[model.name] -= 1
        elif model.name == "PutObject":
            self.stubber.add_response("put_object", {"ETag": '"9b2cf535f27731c974343645a3985328"'})

    def expect(self, operation: str, response: dict[str, Any] | None = None) -> None:
        self._queued[_operation_name(self.client, operation)] += 1
        self.stubber.add_response(operation, response or {})

    def fail(self, operation: str, code: str, message: str = "", status: int = 400) -> None:
        self._queued[_operation_name(self.client, operation)] += 1
        self.stubber.add_client_error(
            operation, service_error_code=code, service_message=message, http_status_code=status
        )

    def requests(self, operation: str) -> list[dict[str, Any]]:
        return [params for name, params in self.calls if name == operation]

    def documents(self) -> list[tuple[str, dict[str, Any]]]:
        """Every object put, as (s3 uri, parsed JSON body)."""
        return [
            (f"s3://{put['Bucket']}/{put['Key']}", json.loads(put["Body"]))
            for put in self.requests("PutObject")
        ]

    def assert_all_used(self) -> None:
        self.stubber.assert_no_pending_responses()


def _operation_name(client: Any, method: str) -> str:
    return str(client.meta.method_to_api_mapping[method])


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


def training_description(
    name: str, run_id: str, test_acc: float | None, **reported: float
) -> dict[str, Any]:
    """DescribeTrainingJob of a completed job; ``reported``: more final metrics (e.g. the
    comparison metrics ``champion_test_acc`` and ``mcnemar_p_value``)."""
    metrics = [{"MetricName": "val_acc", "Value": 0.63, "Timestamp": T}]
    if test_acc is not None:
        metrics.append({"MetricName": "test_acc", "Value": test_acc, "Timestamp": T})
    metrics += [{"MetricName": k, "Value": v, "Timestamp": T} for k, v in reported.items()]
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


def model_artifact(run_id: str) -> str:
    """The final job's model.tar.gz (training_description's S3ModelArtifacts)."""
    name = f"cifar100-{run_id}-final"
    return f"s3://{BUCKET}/runs/{run_id}/final/{name}/output/model.tar.gz"


# -- the model registry ---------------------------------------------------------------------


def package_arn(version: int, group: str = GROUP) -> str:
    return f"arn:aws:sagemaker:us-east-1:{ACCOUNT}:model-package/{group}/{version}"


def package_description(
    version: int,
    approval: str = "Approved",
    *,
    registered: dict[str, Any] | None = None,
    run_id: str = FIXTURE_RUN_ID,
    metrics: dict[str, float] | None = None,
    hyperparameters: dict[str, str] | None = None,
    approval_description: str | None = None,
) -> dict[str, Any]:
    """DescribeModelPackage of a versioned package. ``registered``: the CreateModelPackage
    request the workflow sent (its specification, metrics and metadata are what SageMaker
    answers); otherwise one registered for ``run_id`` with these metrics/hyperparameters."""
    if registered is None:
        name = f"cifar100-{run_id}-final"
        meta = {
            "run_id": run_id,
            "trigger": "api",
            "training_job_name": name,
            "tuning_job_name": f"cifar100-{run_id}",
            **{f"metric.{k}": repr(v) for k, v in (metrics or {"test_acc": 0.7}).items()},
            **{f"hp.{k}": v for k, v in (hyperparameters or {"learning_rate": "0.01"}).items()},
        }
        registered = {
            "ModelPackageGroupName": GROUP,
            "ModelPackageDescription": f"run {run_id} (api): {name}",
            "InferenceSpecification": {
                "Containers": [
                    {
                        "Image": make_settings().inference_image_uri,
                        "ModelDataUrl": model_artifact(run_id),
                    }
                ],
                "SupportedContentTypes": ["application/json"],
                "SupportedResponseMIMETypes": ["application/json"],
            },
            "CustomerMetadataProperties": meta,
        }
    group = registered["ModelPackageGroupName"]
    response: dict[str, Any] = {
        "ModelPackageName": group,
        "ModelPackageGroupName": group,
        "ModelPackageVersion": version,
        "ModelPackageArn": package_arn(version, group),
        "CreationTime": T,
        "ModelPackageStatus": "Completed",
        "ModelPackageStatusDetails": {"ValidationStatuses": []},
        "ModelApprovalStatus": approval,
        "LastModifiedTime": T,
    }
    for key in (
        "ModelPackageDescription",
        "InferenceSpecification",
        "ModelMetrics",
        "MetadataProperties",
        "CustomerMetadataProperties",
    ):
        if key in registered:
            response[key] = copy.deepcopy(registered[key])
    if approval_description:
        response["ApprovalDescription"] = approval_description
    return response


def package_summaries(
    *versions: tuple[int, str], next_token: str | None = None, group: str = GROUP
) -> dict[str, Any]:
    """ListModelPackages answer: one summary per (version, approval status), as given
    (the workflow asks newest first)."""
    response: dict[str, Any] = {
        "ModelPackageSummaryList": [
            {
                "ModelPackageName": group,
                "ModelPackageGroupName": group,
                "ModelPackageVersion": version,
                "ModelPackageArn": package_arn(version, group),
                "CreationTime": T,
                "ModelPackageStatus": "Completed",
                "ModelApprovalStatus": approval,
            }
            for version, approval in versions
        ]
    }
    if next_token:
        response["NextToken"] = next_token
    return response


def model_package_event(
    arn: str, approval: str = "Approved", run_id: str = FIXTURE_RUN_ID, group: str = GROUP
) -> dict[str, Any]:
    """The "SageMaker Model Package State Change" fixture, for package ``arn``."""
    event = load_event("model_package_state_change.json", run_id)
    body = event["detail"]
    body.update(
        ModelPackageArn=arn,
        ModelPackageVersion=int(arn.rsplit("/", 1)[-1]),
        ModelPackageGroupName=group,
        ModelApprovalStatus=approval,
    )
    event["resources"] = [arn]
    return event


def wire(settings: Settings, sagemaker: RecordingSageMaker, store: Any, s3: Any = None) -> Deps:
    """Deps over the double, a run store and an S3 client: a RecordingS3 (or its client, or
    any client such as moto's) for the data-preparation check and the registry's statistics
    file; a fresh RecordingS3 when none is given."""
    if s3 is None:
        s3 = RecordingS3()
    client = s3.client if isinstance(s3, RecordingS3) else s3
    return Deps(
        settings_factory=lambda: settings,
        sagemaker_factory=lambda: sagemaker.client,
        sagemaker_runtime_factory=lambda: None,
        store_factory=lambda: store,
        s3_factory=lambda: client,
    )
