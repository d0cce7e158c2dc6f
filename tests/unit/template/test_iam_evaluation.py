"""IAM checked by evaluation: every AWS call each principal makes while the real code runs,
judged by the policies of the *transformed* template, with least privilege both ways.

How it works (the machinery is in tests/support/aws_calls.py, see its docstring):

1. The ``analysis`` fixture deploys the stack offline: moto answers DynamoDB, S3 and
   Application Auto Scaling; :class:`FakeSageMaker` answers SageMaker (the model registry
   too) and the SageMaker runtime from state it keeps, behind real botocore clients
   (requests are validated against the service model). Each Lambda runs with the environment
   the template gives it (``Stack.environment``), its clients built by
   ``retraining.aws.deps_from_env`` exactly as in Lambda, its handler the template's
   ``Handler``.
2. :data:`SCENARIOS` drive the functions in order, each starting where the previous left the
   stack; every call is recorded and attributed to the function being invoked.
3. The calls become IAM accesses (``OPERATIONS``), plus what SageMaker does with the
   execution role (``ROLE_USES``) and what Lambda does with each function's role; each is
   decided against that principal's policies.

The tests fail on a denied access (principal, action, resource, condition keys, the call it
comes from) and on a granted Action or Resource entry that no access uses, unless
:data:`KEPT_GRANTS` says why it stays.

What acts as the SageMaker execution role is derived from the request bodies the functions
send (aws_calls.ROLE_USES); the data job's own uploads are recorded by running
training/prepare_data.py's upload code as that role (``Cloud.run_data_job``).

Extending it
------------
* A new scenario: a function ``def name(cloud: Cloud) -> None`` that drives handlers through
  ``cloud`` (``cloud.api``, ``cloud.schedule``, ``cloud.reconcile``, ``cloud.tuning_finished``,
  ``cloud.training_finished`` (``data=True`` for the data job), ``cloud.endpoint_changed``,
  ``cloud.model_approved`` (the registry's event for a run's version), ``cloud.alarm_changed``
  (the model-confidence alarm), ``cloud.custom_resource``), sets SageMaker outcomes with
  ``cloud.sagemaker.finish_tuning`` / ``finish_training`` (``champion_acc``, ``p_value``: the
  comparison a final job given the champion reports) / ``settle`` / ``fail`` /
  ``refuse_next_update`` and the harness state with ``cloud.age``, ``cloud.run_data_job``,
  ``cloud.remove_training_data``, ``cloud.delete_service_linked_role``; reads the registry
  with ``cloud.package``, ``cloud.approved_versions``, ``cloud.champion``; it asserts the
  outcome it expects (so a code change that skips the path fails loudly), and gets one line
  in :data:`SCENARIOS`. Pass template parameters as keywords to run a function with another
  deployment's settings, e.g. ``cloud.training_finished(run, EndpointInstanceType=
  "ml.m5.xlarge")``; a function that exists only under some parameters (a ``Condition``) is run
  with them (:data:`MANUAL` for ModelApprovedFunction; :data:`DEPLOYMENT`, the stack every
  scenario runs in, turns the confidence alarm and so StartDriftRunFunction on).
* A new SageMaker operation: a ``_<snake_case_name>`` method on :class:`FakeSageMaker` (the
  fake names the missing one) and its line in ``aws_calls.OPERATIONS``.
* A new principal (function or role in the template): a line in :data:`PRINCIPALS` and a
  scenario that invokes it (``cloud.invoke(<logical id>, event)`` runs its template Handler).
* A grant that must stay although no call uses it: a :class:`Kept` entry with the reason.
"""

from __future__ import annotations

import contextlib
import copy
import importlib
import io
import json
import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.awsrequest import AWSResponse
from botocore.exceptions import ClientError
from botocore.response import StreamingBody
from moto import mock_aws
from moto.iam.access_control import IAMPolicy, PermissionResult

from deploy.source_bundle.handler import handle as handle_source_bundle
from retraining import workflow
from retraining.aws import deps_from_env
from retraining.aws_errors import RetryLater
from retraining.deps import set_deps
from retraining.records import RunRecord, RunStatus
from retraining.sagemaker import names
from retraining.sagemaker.events import (
    ENDPOINT_DETAIL_TYPE,
    MODEL_PACKAGE_DETAIL_TYPE,
    TRAINING_DETAIL_TYPE,
    TUNING_DETAIL_TYPE,
)
from retraining.settings import Settings
from retraining.stores.dynamo import DynamoRunStore
from tests.support.aws_calls import (
    ACCOUNT,
    HARNESS,
    OPERATIONS,
    REGION,
    Access,
    Analysis,
    Arns,
    Call,
    Grant,
    MappingContext,
    PolicyEvaluator,
    Recorder,
    Stack,
    analyse,
    conditions_hold,
)
from tests.support.sagemaker_double import (
    endpoint_description,
    training_description,
    tuning_description,
)
from tests.unit.api.support import b64, body_of, http_v2_event, model_answer, png_bytes

#: Every principal of the template and what acts with its permissions.
PRINCIPALS = {
    "ApiFunction": "functions/api: /jobs, /predict and /models (the registry: list, current, "
    "one version, deploy, approve)",
    "StartScheduledRunFunction": "orchestration.handlers.start_scheduled_run",
    "StartDriftRunFunction": "orchestration.handlers.start_drift_run (ConfidenceAlarmThreshold "
    "not off)",
    "ModelApprovedFunction": "orchestration.handlers.model_package_state_change (ModelApproval "
    "manual)",
    "TuningJobStateChangeFunction": "orchestration.handlers.tuning_job_state_change",
    "TrainingJobStateChangeFunction": "orchestration.handlers.training_job_state_change",
    "EndpointStateChangeFunction": "orchestration.handlers.endpoint_state_change",
    "ReconcileFunction": "orchestration.handlers.reconcile",
    "SourceBundleFunction": "deploy/source_bundle (the SourceBundle custom resource)",
    "SageMakerExecutionRole": "SageMaker for the training jobs, tuning trials and endpoint",
}


@dataclass(frozen=True)
class Kept:
    """A grant no recorded call uses that stays anyway. ``principal`` "*" means every one."""

    principal: str
    statement: str
    pattern: str
    reason: str

    def covers(self, grant: Grant) -> bool:
        return (
            self.principal in ("*", grant.principal)
            and self.statement == grant.statement
            and self.pattern == grant.pattern
        )


KEPT_GRANTS = [
    Kept(
        "*",
        "AWSLambdaBasicExecutionRole/#0",
        "logs:CreateLogGroup",
        # The AWS-managed policy SAM attaches to every function role; the template creates
        # each function's log group itself, so Lambda only creates streams and writes to them.
        "AWS-managed policy (AWSLambdaBasicExecutionRole), not ours to trim",
    ),
    Kept(
        "EndpointStateChangeFunction",
        "EndpointStateChangeFunctionRolePolicy0/ReadEndpoint",
        "sagemaker:DescribeEndpointConfig",
        # SageMaker AI Developer Guide, "Auto scaling prerequisites": a caller that manages
        # auto scaling itself must hold DescribeEndpoint, DescribeEndpointConfig and
        # UpdateEndpointWeightsAndCapacities on the endpoint.
        "listed by SageMaker's auto-scaling prerequisites for the registering caller",
    ),
    Kept(
        "EndpointStateChangeFunction",
        "EndpointStateChangeFunctionRolePolicy0/ReadEndpoint",
        f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:endpoint-config/cifar100-*",
        "the resource of the DescribeEndpointConfig kept above",
    ),
]

T0 = datetime(2026, 11, 28, 3, 0, tzinfo=UTC)
EVENTS = Path(__file__).resolve().parents[2] / "events"


# ================================================================================ fake SageMaker


class Refused(Exception):
    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code, self.message, self.status = code, message, status


def _snake(name: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in name).lstrip("_")


class FakeSageMaker:
    """SageMaker and the SageMaker runtime for the scenarios: real botocore clients whose
    ``before-call`` hook answers from this state. Describe* answers derive from the requests,
    as SageMaker's would (model artifacts under the job's output path, the endpoint's config
    with its variants); the scenario sets how jobs end and endpoints settle."""

    def __init__(self, arns: Arns) -> None:
        self.arns = arns
        self.tuning: dict[str, dict[str, Any]] = {}
        self.training: dict[str, dict[str, Any]] = {}
        self.models: dict[str, dict[str, Any]] = {}
        self.configs: dict[str, dict[str, Any]] = {}
        self.endpoints: dict[str, dict[str, Any]] = {}
        self.groups: set[str] = set()  # model package groups (the template creates them)
        self.packages: dict[str, dict[str, Any]] = {}  # version ARN -> state, in creation order
        self.refuse_next_update: Refused | None = None

    def attach(self, client: Any) -> Any:
        service = client.meta.service_model.service_id.hyphenize()
        client.meta.events.register_first(f"before-call.{service}", self._answer)
        return client

    def _answer(self, model: Any, params: dict[str, Any], **_: Any) -> tuple[AWSResponse, dict]:
        handler = getattr(self, f"_{_snake(model.name)}", None)
        if handler is None:
            raise AssertionError(
                f"FakeSageMaker does not answer {model.name}: add FakeSageMaker._{_snake(model.name)}"
            )
        body = params.get("body") or b"{}"
        request = json.loads(body) if model.metadata["protocol"] == "json" else {}
        try:
            result = handler(request)
        except Refused as refused:
            error = {"Error": {"Code": refused.code, "Message": refused.message}}
            meta = {"ResponseMetadata": {"HTTPStatusCode": refused.status}}
            return AWSResponse("https://sagemaker.invalid", refused.status, {}, None), error | meta
        meta = {"ResponseMetadata": {"HTTPStatusCode": 200}}
        return AWSResponse("https://sagemaker.invalid", 200, {}, None), result | meta

    # -- what the scenarios decide -------------------------------------------------------------

    def finish_tuning(self, name: str, *, best: bool = True, hours_ago: float = 0) -> None:
        self.tuning[name].update(
            status="Completed", best=f"{name}-002-4f1c2a9b" if best else None, ended=_ago(hours_ago)
        )

    def finish_training(
        self,
        name: str,
        *,
        test_acc: float | None,
        hours_ago: float = 0,
        champion_acc: float | None = None,
        p_value: float = 0.001,
    ) -> None:
        """The job completed. A final job given the champion's model (its ``champion``
        channel) also reports the comparison metrics: by default the champion 2 points
        below, the difference significant."""
        self.training[name].update(
            status="Completed",
            test_acc=test_acc,
            ended=_ago(hours_ago),
            champion_acc=champion_acc,
            p_value=p_value,
        )

    def settle(
        self, endpoint: str, status: str = "InService", *, serving: str | None = None
    ) -> None:
        """The endpoint's creation or update ended: it serves ``serving`` (default: the config
        it was moving to; name the old one for a rollback)."""
        state = self.endpoints[endpoint]
        state.update(
            status=status, config=serving or state["pending"] or state["config"], pending=None
        )

    def fail(self, endpoint: str, reason: str) -> None:
        self.endpoints[endpoint].update(status="Failed", failure=reason, pending=None)

    # -- tuning and training jobs --------------------------------------------------------------

    def _job(self, jobs: dict[str, Any], name: str, kind: str) -> dict[str, Any]:
        if name not in jobs:
            raise Refused(
                "ResourceNotFound", f"Amazon SageMaker can't find a {kind} with name {name}"
            )
        return jobs[name]

    def _create_hyper_parameter_tuning_job(self, request: dict[str, Any]) -> dict[str, Any]:
        name = request["HyperParameterTuningJobName"]
        if name in self.tuning:
            raise Refused("ResourceInUse", f"Hyperparameter tuning job {name} already exists")
        self.tuning[name] = {
            "request": request,
            "status": "InProgress",
            "best": None,
            "ended": None,
        }
        return {
            "HyperParameterTuningJobArn": self.arns.sagemaker("hyper-parameter-tuning-job", name)
        }

    def _describe_hyper_parameter_tuning_job(self, request: dict[str, Any]) -> dict[str, Any]:
        name = request["HyperParameterTuningJobName"]
        job = self._job(self.tuning, name, "tuning job")
        response = tuning_description(name, best=job["best"])
        response["HyperParameterTuningJobStatus"] = job["status"]
        if job["ended"]:
            response["HyperParameterTuningEndTime"] = job["ended"]
        return response

    def _list_training_jobs_for_hyper_parameter_tuning_job(self, request: dict[str, Any]) -> dict:
        name = request["HyperParameterTuningJobName"]
        self._job(self.tuning, name, "tuning job")
        trial = f"{name}-001-0a1b2c3d"
        summary = {
            "TrainingJobName": trial,
            "TrainingJobArn": self.arns.sagemaker("training-job", trial),
            "CreationTime": T0,
            "TrainingJobStatus": "Failed",
            "FailureReason": "AlgorithmError: the data channel is empty",
            "TunedHyperParameters": {"learning_rate": "0.01"},
        }
        return {"TrainingJobSummaries": [summary]}

    def _create_training_job(self, request: dict[str, Any]) -> dict[str, Any]:
        name = request["TrainingJobName"]
        if name in self.training:
            raise Refused("ResourceInUse", f"Training job {name} already exists")
        self.training[name] = {
            "request": request,
            "status": "InProgress",
            "test_acc": None,
            "ended": None,
        }
        return {"TrainingJobArn": self.arns.sagemaker("training-job", name)}

    def _describe_training_job(self, request: dict[str, Any]) -> dict[str, Any]:
        name = request["TrainingJobName"]
        job = self._job(self.training, name, "training job")
        channels = {c["ChannelName"] for c in job["request"].get("InputDataConfig", [])}
        compared = {}
        if "champion" in channels and job["test_acc"] is not None:
            champion = job["champion_acc"]
            compared = {
                "champion_test_acc": job["test_acc"] - 0.02 if champion is None else champion,
                "mcnemar_p_value": job["p_value"],
            }
        response = training_description(name, "", job["test_acc"], **compared)
        output = job["request"]["OutputDataConfig"]["S3OutputPath"]
        response["ModelArtifacts"] = {"S3ModelArtifacts": f"{output}/{name}/output/model.tar.gz"}
        response["TrainingJobStatus"] = response["SecondaryStatus"] = job["status"]
        if job["ended"]:
            response["TrainingEndTime"] = response["LastModifiedTime"] = job["ended"]
        return response

    # -- models, endpoint configs, the endpoint --------------------------------------------------

    def _create_model(self, request: dict[str, Any]) -> dict[str, Any]:
        name = request["ModelName"]
        if name in self.models:
            raise Refused("ValidationException", f"Cannot create already existing model {name}")
        package = request["PrimaryContainer"].get("ModelPackageName")
        if package is not None:
            self._package(package)
        self.models[name] = request
        return {"ModelArn": self.arns.sagemaker("model", name)}

    def _create_endpoint_config(self, request: dict[str, Any]) -> dict[str, Any]:
        name = request["EndpointConfigName"]
        if name in self.configs:
            raise Refused(
                "ValidationException",
                f"Cannot create already existing endpoint configuration {name}",
            )
        for variant in request["ProductionVariants"]:
            if variant["ModelName"] not in self.models:
                raise Refused("ValidationException", f"Could not find model {variant['ModelName']}")
        self.configs[name] = request
        return {"EndpointConfigArn": self.arns.sagemaker("endpoint-config", name)}

    def _config(self, name: str) -> dict[str, Any]:
        if name not in self.configs:
            raise Refused("ValidationException", f"Could not find endpoint configuration {name}")
        return self.configs[name]

    def _describe_endpoint_config(self, request: dict[str, Any]) -> dict[str, Any]:
        name = request["EndpointConfigName"]
        config = self._config(name)
        return {
            "EndpointConfigName": name,
            "EndpointConfigArn": self.arns.sagemaker("endpoint-config", name),
            "ProductionVariants": config["ProductionVariants"],
            "CreationTime": T0,
        }

    def _endpoint(self, name: str) -> dict[str, Any]:
        if name not in self.endpoints:
            raise Refused("ValidationException", f'Could not find endpoint "{name}".')
        return self.endpoints[name]

    def _create_endpoint(self, request: dict[str, Any]) -> dict[str, Any]:
        name, config = request["EndpointName"], request["EndpointConfigName"]
        if name in self.endpoints:
            raise Refused("ValidationException", f"Cannot create already existing endpoint {name}")
        self._config(config)
        self.endpoints[name] = {
            "config": config,
            "status": "Creating",
            "pending": None,
            "failure": None,
        }
        return {"EndpointArn": self.arns.sagemaker("endpoint", name)}

    def _describe_endpoint(self, request: dict[str, Any]) -> dict[str, Any]:
        name = request["EndpointName"]
        state = self._endpoint(name)
        response = endpoint_description(state["status"], state["config"], state["pending"])
        response.update(EndpointName=name, EndpointArn=self.arns.sagemaker("endpoint", name))
        if state["failure"]:
            response["FailureReason"] = state["failure"]
        return response

    def _update_endpoint(self, request: dict[str, Any]) -> dict[str, Any]:
        name, config = request["EndpointName"], request["EndpointConfigName"]
        state = self._endpoint(name)
        if self.refuse_next_update:
            refused, self.refuse_next_update = self.refuse_next_update, None
            raise refused
        if state["status"] != "InService":
            raise Refused(
                "ValidationException", f"Cannot update endpoint {name} in status {state['status']}"
            )
        self._config(config)
        state.update(status="Updating", pending=config)
        return {"EndpointArn": self.arns.sagemaker("endpoint", name)}

    def _delete_endpoint(self, request: dict[str, Any]) -> dict[str, Any]:
        self._endpoint(request["EndpointName"])
        del self.endpoints[request["EndpointName"]]
        return {}

    # -- the model registry ------------------------------------------------------------------

    def _package(self, name: str) -> dict[str, Any]:
        if name not in self.packages:
            raise Refused("ValidationException", f"ModelPackage {name} does not exist.")
        return self.packages[name]

    def _create_model_package(self, request: dict[str, Any]) -> dict[str, Any]:
        """A new version of the group; the same ClientToken again answers the version it
        created (the API's idempotency token)."""
        group = request["ModelPackageGroupName"]
        if group not in self.groups:
            raise Refused("ValidationException", f"Model Package Group {group} does not exist.")
        if request.get("Tags"):
            # CreateModelPackage: a version "uses the tags associated with the model group. In
            # this case, you cannot supply a tag argument."
            raise Refused("ValidationException", "Tags cannot be specified for a model version.")
        versions = [p for p in self.packages.values() if p["group"] == group]
        token = request.get("ClientToken")
        for package in versions:
            if token and package["request"].get("ClientToken") == token:
                return {"ModelPackageArn": package["arn"]}
        version = len(versions) + 1
        arn = self.arns.model_package(group, version)
        self.packages[arn] = {
            "arn": arn,
            "group": group,
            "version": version,
            "request": request,
            "approval": request.get("ModelApprovalStatus", "PendingManualApproval"),
            "approval_description": None,
            "created": T0 + timedelta(minutes=len(self.packages)),
        }
        return {"ModelPackageArn": arn}

    def _update_model_package(self, request: dict[str, Any]) -> dict[str, Any]:
        package = self._package(request["ModelPackageArn"])
        if "ModelApprovalStatus" in request:
            package["approval"] = request["ModelApprovalStatus"]
        if "ApprovalDescription" in request:
            package["approval_description"] = request["ApprovalDescription"]
        return {"ModelPackageArn": package["arn"]}

    def _summary(self, package: dict[str, Any]) -> dict[str, Any]:
        return {
            "ModelPackageName": package["group"],
            "ModelPackageGroupName": package["group"],
            "ModelPackageVersion": package["version"],
            "ModelPackageArn": package["arn"],
            "CreationTime": package["created"],
            "ModelPackageStatus": "Completed",
            "ModelApprovalStatus": package["approval"],
        }

    def describe_package(self, arn: str) -> dict[str, Any]:
        """DescribeModelPackage's answer (also the detail of the package's state-change
        event, which carries the package's description)."""
        package = self._package(arn)
        request = package["request"]
        response = {
            **self._summary(package),
            **{
                k: request[k]
                for k in (
                    "ModelPackageDescription",
                    "InferenceSpecification",
                    "ModelMetrics",
                    "MetadataProperties",
                    "CustomerMetadataProperties",
                )
                if k in request
            },
            "LastModifiedTime": package["created"],
            "ModelPackageStatusDetails": {"ValidationStatuses": [], "ImageScanStatuses": []},
            "CertifyForMarketplace": False,
        }
        if package["approval_description"]:
            response["ApprovalDescription"] = package["approval_description"]
        return response

    def _describe_model_package(self, request: dict[str, Any]) -> dict[str, Any]:
        return self.describe_package(request["ModelPackageName"])

    def _list_model_packages(self, request: dict[str, Any]) -> dict[str, Any]:
        assert request.get("ModelPackageType") == "Versioned", request
        group = request["ModelPackageGroupName"]
        found = sorted(
            (p for p in self.packages.values() if p["group"] == group),
            key=lambda p: p["created"],
            reverse=request.get("SortOrder") == "Descending",
        )
        start = int(request.get("NextToken") or 0)
        end = start + request.get("MaxResults", 10)
        response: dict[str, Any] = {
            "ModelPackageSummaryList": [self._summary(p) for p in found[start:end]]
        }
        if end < len(found):
            response["NextToken"] = str(end)
        return response

    def _invoke_endpoint(self, request: dict[str, Any]) -> dict[str, Any]:
        raw = json.dumps(model_answer(2)).encode()
        return {
            "Body": StreamingBody(io.BytesIO(raw), len(raw)),
            "ContentType": "application/json",
            "InvokedProductionVariant": "AllTraffic",
        }


def _ago(hours: float) -> datetime:
    return datetime.now(UTC) - timedelta(hours=hours)


# ================================================================================ the cloud


@dataclass
class LambdaContext:
    function_name: str
    invoked_function_arn: str
    function_version: str = "$LATEST"
    memory_limit_in_mb: int = 256
    aws_request_id: str = "52fdfc07-2182-154f-163f-5f0f9a621d72"
    log_group_name: str = ""
    log_stream_name: str = "2026/11/28/[$LATEST]0123456789abcdef"


#: Variables a Lambda gets from its runtime rather than from the template.
_RUNTIME_VARIABLES = ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_LAMBDA_FUNCTION_NAME")


@contextlib.contextmanager
def _environ(variables: dict[str, str]) -> Iterator[None]:
    """Exactly the function's variables for the Settings fields (none leak in from outside)."""
    saved = dict(os.environ)
    for key in list(os.environ):
        if key.lower() in Settings.model_fields or key.startswith("POWERTOOLS_"):
            del os.environ[key]
    os.environ.update(variables)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


class Cloud:
    """The deployed stack as the scenarios see it. Every method that invokes a function
    records its calls as that function; set-up and inspection run as HARNESS."""

    def __init__(self, stack: Stack, recorder: Recorder, scratch: Path) -> None:
        self.stack = stack
        self.recorder = recorder
        self.sagemaker = FakeSageMaker(stack.arns)
        self.scratch = scratch
        self.payload = scratch / "payload"
        self.prefix = stack.parameters["ResourcePrefix"]
        self.endpoint = stack.parameters["EndpointName"]
        self.table = stack.physical_name("RunsTable")
        self.current: str | None = None  # the run a scenario leaves active for the next
        self._checked_variants: set[frozenset[tuple[str, str]]] = set()
        self._containers: dict[tuple[str, frozenset[tuple[str, str]]], Any] = {}

    # -- set-up and inspection (not judged) ---------------------------------------------------

    def create_stateful_resources(self) -> None:
        """What CloudFormation creates before any function runs, from the template."""
        with self.recorder.acting_as(HARNESS):
            table = self.stack.resolve(self.stack.resource("RunsTable")["Properties"])
            schema = ("AttributeDefinitions", "KeySchema", "GlobalSecondaryIndexes", "BillingMode")
            boto3.client("dynamodb", region_name=REGION).create_table(
                TableName=self.table, **{k: table[k] for k in schema}
            )
            s3 = boto3.client("s3", region_name=REGION)
            bucket = self.stack.physical_name("ArtifactBucket")
            s3.create_bucket(Bucket=bucket)
            s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
        for group in self.stack.of_type("AWS::SageMaker::ModelPackageGroup"):
            props = self.stack.resolve(self.stack.resource(group)["Properties"])
            self.sagemaker.groups.add(props["ModelPackageGroupName"])

    def champion(self) -> dict[str, Any]:
        with self.recorder.acting_as(HARNESS):
            client = boto3.client("dynamodb", region_name=REGION)
            return DynamoRunStore(client, self.table).get_champion() or {}

    def package(self, run_id: str) -> dict[str, Any]:
        """The registered version of the run's model, as the registry describes it."""
        arn = self.record(run_id).model_package_arn
        assert arn, f"run {run_id} registered no version"
        return self.sagemaker.describe_package(arn)

    def approved_versions(self) -> list[int]:
        """Approved versions not in service, newest first (what a promotion may deploy)."""
        serving = self.champion().get("model_package_arn")
        return [
            p["version"]
            for p in reversed(self.sagemaker.packages.values())
            if p["approval"] == "Approved" and p["arn"] != serving
        ]

    def record(self, run_id: str) -> RunRecord:
        with self.recorder.acting_as(HARNESS):
            client = boto3.client("dynamodb", region_name=REGION)
            found = DynamoRunStore(client, self.table).get(run_id)
        assert found is not None, run_id
        return found

    def age(self, run_id: str, hours: float = 1) -> None:
        """Make the run look untouched for ``hours`` (as when its job's event was lost)."""
        with self.recorder.acting_as(HARNESS):
            client = boto3.client("dynamodb", region_name=REGION)
            key = {"run_id": {"S": run_id}}
            item = client.get_item(TableName=self.table, Key=key)["Item"]
            doc = json.loads(item["doc"]["S"])
            then = _ago(hours).isoformat(timespec="seconds").replace("+00:00", "Z")
            doc["created_at"] = doc["updated_at"] = then
            item["doc"] = {"S": json.dumps(doc)}
            client.put_item(TableName=self.table, Item=item)

    def tuning_job(self, run_id: str) -> str:
        return names.tuning_job_name(self.prefix, run_id)

    def final_job(self, run_id: str) -> str:
        return names.final_training_job_name(self.prefix, run_id)

    def data_job(self, run_id: str) -> str:
        return names.data_job_name(self.prefix, run_id)

    def run_data_job(self, run_id: str, tmp: Path) -> None:
        """The data job's container: training/prepare_data.py's own upload code, run with the
        execution role (so its S3 calls are recorded as that role), then the job completes."""
        from prepare_data import upload  # training/, imported here: it pulls in torch

        request = self.sagemaker.training[self.data_job(run_id)]["request"]
        for channel in ("train", "test"):
            (tmp / channel).mkdir(parents=True, exist_ok=True)
            (tmp / channel / "part-00000.bin").write_bytes(b"cifar")
        with self.recorder.acting_as("SageMakerExecutionRole"):
            assert upload(tmp, request["HyperParameters"]["output"], boto3.client("s3")) == 2
        self.sagemaker.finish_training(self.data_job(run_id), test_acc=None)

    def delete_service_linked_role(self) -> None:
        """An operator deletes Application Auto Scaling's service-linked role: the next
        registration, by whichever function, creates it again."""
        self.recorder.account_change(
            "iam",
            "DeleteServiceLinkedRole",
            RoleName="AWSServiceRoleForApplicationAutoScaling_SageMakerEndpoint",
        )

    def remove_training_data(self) -> None:
        with self.recorder.acting_as(HARNESS):
            s3 = boto3.client("s3", region_name=REGION)
            bucket, _, prefix = (
                self.stack.environment("ApiFunction")["TRAIN_DATA_S3_URI"]
                .removeprefix("s3://")
                .partition("/")
            )
            for item in s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", []):
                s3.delete_object(Bucket=bucket, Key=item["Key"])

    # -- invoking functions ------------------------------------------------------------------

    def _deployment(self, parameters: dict[str, str]) -> Stack:
        if not parameters:
            return self.stack
        variant = self.stack.with_parameters(**parameters)
        key = frozenset(parameters.items())
        if key not in self._checked_variants:
            # The evaluation judges every call by the default deployment's policies.
            for principal in PRINCIPALS:
                assert variant.policies(principal) == self.stack.policies(principal), (
                    f"{parameters} changes {principal}'s policies: evaluate per deployment"
                )
            self._checked_variants.add(key)
        return variant

    def invoke(self, function: str, event: Any, **parameters: str) -> Any:
        """Run ``function``'s template handler on ``event`` the way Lambda would: its template
        environment, clients from retraining.aws.deps_from_env (SageMaker ones answered by the
        fake, the others by moto), every call recorded as ``function``."""
        stack = self._deployment(parameters)
        assert stack.exists(function), f"{parameters} does not deploy {function}"
        module, _, attribute = stack.resource(function)["Properties"]["Handler"].rpartition(".")
        handler = getattr(importlib.import_module(module), attribute)
        name = stack.physical_name(function)
        runtime = dict(zip(_RUNTIME_VARIABLES, (REGION, REGION, name), strict=True))
        context = LambdaContext(
            name, stack.get_att(function, "Arn"), log_group_name=f"/aws/lambda/{name}"
        )
        with (
            _environ({**stack.environment(function), **runtime}),
            self.recorder.acting_as(function),
        ):
            # One warm container per function and deployment: Lambda keeps get_deps()'s
            # clients between invocations too.
            container = (function, frozenset(parameters.items()))
            if container not in self._containers:
                deps = deps_from_env()
                sagemaker, runtime_client = deps.sagemaker_factory, deps.sagemaker_runtime_factory
                deps.sagemaker_factory = lambda: self.sagemaker.attach(sagemaker())
                deps.sagemaker_runtime_factory = lambda: self.sagemaker.attach(runtime_client())
                self._containers[container] = deps
            set_deps(self._containers[container])
            try:
                return handler(event, context)
            finally:
                set_deps(None)

    def custom_resource(self, logical: str, request_type: str) -> dict[str, Any]:
        """CloudFormation's request to the custom resource, built from the template; the
        function's module is deploy/source_bundle (its CodeUri), its answer what it PUTs."""
        props = self.stack.resolve(self.stack.resource(logical)["Properties"])
        function = self.stack.resource(logical)["Properties"]["ServiceToken"]["Fn::GetAtt"][0]
        assert (
            self.stack.resource(function)["Properties"]["Handler"]
            == "source_bundle.handler.handler"
        )
        event = {
            "RequestType": request_type,
            "ResponseURL": "https://cloudformation-custom-resource-response.invalid/presigned",
            "StackId": self.stack.pseudo()["AWS::StackId"],
            "RequestId": str(uuid.uuid4()),
            "ResourceType": self.stack.resource(logical)["Type"],
            "LogicalResourceId": logical,
            "ResourceProperties": props,
        }
        if request_type != "Create":
            event["PhysicalResourceId"] = f"source-bundle-{props['Bucket']}"
        answers: list[dict[str, Any]] = []
        runtime = dict(zip(_RUNTIME_VARIABLES, (REGION, REGION, function), strict=True))
        with (
            _environ({**self.stack.environment(function), **runtime}),
            self.recorder.acting_as(function),
        ):
            # handler.handler(event, context) is handle(event, boto3.client("s3")) with the
            # packaged payload; the test's payload stands in for training/ and model_handler/.
            handle_source_bundle(
                event, boto3.client("s3"), self.payload, lambda url, body: answers.append(body)
            )
        (answer,) = answers
        return answer

    def api(
        self, method: str, path: str, body: Any = None, *, query: str = "", **parameters: str
    ) -> tuple[int, Any]:
        raw = json.dumps(body).encode() if body is not None else None
        event = http_v2_event(method, path, raw, query=query)
        response = self.invoke("ApiFunction", event, **parameters)
        return response["statusCode"], body_of(response) if response.get("body") else None

    def schedule(self, **parameters: str) -> dict[str, Any]:
        """The schedule rule's tick, with the rule's Input from the template."""
        target = {"Fn::GetAtt": ["StartScheduledRunFunction", "Arn"]}
        inputs = [
            json.loads(t["Input"])
            for rule in self.stack.of_type("AWS::Events::Rule")
            for t in self.stack.resource(rule)["Properties"]["Targets"]
            if t["Arn"] == target
        ]
        return self.invoke("StartScheduledRunFunction", inputs[0], **parameters)

    def _event(self, detail_type: str, detail: dict[str, Any]) -> dict[str, Any]:
        return {
            "version": "0",
            "id": str(uuid.uuid4()),
            "detail-type": detail_type,
            "source": "aws.sagemaker",
            "account": ACCOUNT,
            "time": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
            "region": REGION,
            "resources": [],
            "detail": detail,
        }

    def tuning_finished(self, run_id: str, **parameters: str) -> dict[str, Any]:
        name = self.tuning_job(run_id)
        event = self._event(
            TUNING_DETAIL_TYPE,
            {
                "HyperParameterTuningJobName": name,
                "HyperParameterTuningJobStatus": self.sagemaker.tuning[name]["status"],
                "Tags": {"project": self.prefix, "run-id": run_id, "stage": "hpo"},
            },
        )
        return self.invoke("TuningJobStateChangeFunction", event, **parameters)

    def training_finished(self, run_id: str, *, data: bool = False, **parameters: str) -> dict:
        """The final job's (or with ``data``, the data job's) state-change event."""
        name = self.data_job(run_id) if data else self.final_job(run_id)
        event = self._event(
            TRAINING_DETAIL_TYPE,
            {
                "TrainingJobName": name,
                "TrainingJobStatus": self.sagemaker.training[name]["status"],
                "Tags": {
                    "project": self.prefix,
                    "run-id": run_id,
                    "stage": "data" if data else "final",
                },
            },
        )
        return self.invoke("TrainingJobStateChangeFunction", event, **parameters)

    def alarm_changed(self, state: str = "ALARM", **parameters: str) -> dict[str, Any]:
        """The model-confidence alarm's state change, as CloudWatch sends it (the CloudWatch
        User Guide's example event, tests/events/cloudwatch/), to the drift function."""
        stack = self._deployment(parameters)
        alarm = stack.resolve(stack.resource("ModelConfidenceAlarm")["Properties"]["AlarmName"])
        event = json.loads((EVENTS / "cloudwatch" / "alarm_state_change.json").read_text())
        event.update(
            id=str(uuid.uuid4()),
            account=ACCOUNT,
            region=REGION,
            resources=[self.stack.arns.alarm(alarm)],
        )
        event["detail"]["alarmName"] = alarm
        event["detail"]["state"]["value"] = state
        return self.invoke("StartDriftRunFunction", event, **parameters)

    def model_approved(self, run_id: str, **parameters: str) -> dict[str, Any]:
        """The registry's state-change event of the run's version (its detail is the package's
        description, as in tests/events/sagemaker/model_package_state_change.json)."""
        package = self.package(run_id)
        detail = json.loads(json.dumps(package, default=lambda t: t.isoformat()))
        event = {
            **self._event(MODEL_PACKAGE_DETAIL_TYPE, detail),
            "resources": [package["ModelPackageArn"]],
        }
        return self.invoke("ModelApprovedFunction", event, **parameters)

    def reconcile(self, **parameters: str) -> dict[str, Any]:
        """The reconcile schedule's tick (a Scheduled Event; the handler reads none of it)."""
        rule = self.stack.get_att("ReconcileFunctionReconcileSchedule", "Arn")
        event = {**self._event("Scheduled Event", {}), "source": "aws.events", "resources": [rule]}
        return self.invoke("ReconcileFunction", event, **parameters)

    def endpoint_changed(self, **parameters: str) -> dict[str, Any]:
        status = self.sagemaker.endpoints[self.endpoint]["status"]
        detail = {"EndpointName": self.endpoint, "EndpointStatus": status}
        return self.invoke(
            "EndpointStateChangeFunction", self._event(ENDPOINT_DETAIL_TYPE, detail), **parameters
        )

    # -- steps several scenarios share ---------------------------------------------------------

    def start(self, via: str, **parameters: str) -> str:
        if via == "api":
            status, body = self.api("POST", "/jobs/tune", {}, **parameters)
            assert status == 202, body
            return body["run_id"]
        outcome = self.schedule(**parameters)
        assert outcome["action"] == "started", outcome
        return outcome["run_id"]

    def through_tuning(self, via: str, **parameters: str) -> str:
        """Start a run and finish its tuning: the run is TRAINING, its final job running."""
        run = self.start(via, **parameters)
        self.sagemaker.finish_tuning(self.tuning_job(run))
        outcome = self.tuning_finished(run, **parameters)
        assert outcome["action"] == "training", outcome
        return run


# ================================================================================ scenarios


def expect(outcome: dict[str, Any], action: str, *words: str) -> None:
    """The handler's outcome is ``action`` and says ``words`` (the path the scenario means)."""
    assert outcome["action"] == action, outcome
    text = json.dumps(outcome)
    assert all(word in text for word in words), (words, outcome)


def source_bundle_published(cloud: Cloud) -> None:
    """CloudFormation creates SourceBundle (uploads), updates it with the same code (every key
    is found, nothing uploaded) and deletes it (nothing removed)."""
    created = cloud.custom_resource("SourceBundle", "Create")
    assert created["Status"] == "SUCCESS", created
    cloud.stack.attributes["SourceBundle"] = created["Data"]
    updated = cloud.custom_resource("SourceBundle", "Update")
    assert updated["Data"] == created["Data"], updated
    assert cloud.custom_resource("SourceBundle", "Delete")["Status"] == "SUCCESS"


def first_run_prepares_the_data(cloud: Cloud) -> None:
    """The first run finds data/train/ empty: a data job fills it (run as the execution role),
    its event starts tuning."""
    status, body = cloud.api("POST", "/jobs/tune", {})
    assert status == 202, body
    assert body["status"] == "PREPARING_DATA", body
    run = cloud.current = body["run_id"]
    cloud.run_data_job(run, cloud.scratch / "first-data")
    assert cloud.training_finished(run, data=True)["action"] == "tuning"


def api_reads_predicts_and_refuses_a_second_run(cloud: Cloud) -> None:
    """Health, the runs listed and read, a second start refused (409), a schedule tick
    skipped while the active run is fresh, and a prediction."""
    assert cloud.api("GET", "/health")[0] == 200
    assert cloud.api("GET", "/jobs")[0] == 200
    assert cloud.api("GET", f"/jobs/{cloud.current}")[0] == 200
    assert cloud.api("POST", "/jobs/tune", {})[0] == 409
    assert cloud.schedule()["action"] == "skipped"
    status, body = cloud.api("POST", "/predict", {"image": b64(png_bytes())})
    assert status == 200, body


def schedule_releases_a_stuck_tuning_run(cloud: Cloud) -> None:
    stuck = cloud.current
    cloud.sagemaker.finish_tuning(cloud.tuning_job(stuck), hours_ago=1)  # the event was lost
    cloud.age(stuck)
    outcome = cloud.schedule()
    assert outcome["action"] == "started", outcome
    assert cloud.record(stuck).status is RunStatus.FAILED
    cloud.current = outcome["run_id"]


def first_deployment(cloud: Cloud) -> None:
    """Tuning finished -> final training; final training passes the gate -> its statistics
    file written, the version registered and Approved, a model created from the package,
    endpoint config, CreateEndpoint; in service -> DEPLOYED and auto-scaling registered."""
    run = cloud.current
    cloud.sagemaker.finish_tuning(cloud.tuning_job(run))
    assert cloud.tuning_finished(run)["action"] == "training"
    cloud.sagemaker.finish_training(cloud.final_job(run), test_acc=0.70)
    outcome = cloud.training_finished(run)
    expect(outcome, "deploying", "creating endpoint")
    package = cloud.package(run)
    assert package["ModelApprovalStatus"] == "Approved", package
    model = cloud.sagemaker.models[names.model_name(cloud.prefix, run)]
    assert model["PrimaryContainer"] == {"ModelPackageName": package["ModelPackageArn"]}
    statistics = package["ModelMetrics"]["ModelQuality"]["Statistics"]["S3Uri"]
    with cloud.recorder.acting_as(HARNESS):
        bucket, _, key = statistics.removeprefix("s3://").partition("/")
        boto3.client("s3", region_name=REGION).head_object(Bucket=bucket, Key=key)
    cloud.sagemaker.settle(cloud.endpoint)
    outcome = cloud.endpoint_changed()
    expect(outcome, "deployed", "auto-scaling")
    assert cloud.champion()["model_package_arn"] == package["ModelPackageArn"]


def update_that_changes_the_instance_type(cloud: Cloud) -> None:
    """A warm-started run whose deployment changes the instance type: the variant is
    deregistered from auto-scaling, the endpoint updated blue/green, registered again."""
    run = cloud.through_tuning("api", **BIGGER)
    assert cloud.record(run).warm_start_parent
    cloud.sagemaker.finish_training(cloud.final_job(run), test_acc=0.72)
    outcome = cloud.training_finished(run, **BIGGER)
    expect(outcome, "deploying", "deregistered")
    cloud.sagemaker.settle(cloud.endpoint)
    assert cloud.endpoint_changed(**BIGGER)["action"] == "deployed"


def refused_update_restores_auto_scaling(cloud: Cloud) -> None:
    """Back to the default instance type: deregistered, UpdateEndpoint refused, auto-scaling
    registered again by the same function, the run FAILED."""
    run = cloud.through_tuning("schedule")
    cloud.sagemaker.finish_training(cloud.final_job(run), test_acc=0.74)
    cloud.sagemaker.refuse_next_update = Refused("ValidationException", "the update was refused")
    outcome = cloud.training_finished(run)
    assert outcome["action"] == "failed", outcome


def update_rolled_back(cloud: Cloud) -> None:
    """The update rolls back: the run ROLLED_BACK, its version (which never served)
    Rejected by the endpoint-state function."""
    live = cloud.sagemaker.endpoints[cloud.endpoint]["config"]
    run = cloud.through_tuning("api")
    cloud.sagemaker.finish_training(cloud.final_job(run), test_acc=0.75)
    assert cloud.training_finished(run)["action"] == "deploying"
    cloud.sagemaker.settle(cloud.endpoint, serving=live)  # an alarm fired during the bake
    assert cloud.endpoint_changed()["action"] == "rolled_back"
    assert cloud.package(run)["ModelApprovalStatus"] == "Rejected"


def failed_endpoint_recreated(cloud: Cloud) -> None:
    """A Failed endpoint is deleted (the event is retried), the retry creates it afresh; that
    creation fails too and ends the run (the endpoint stays Failed)."""
    run = cloud.through_tuning("schedule")
    cloud.sagemaker.finish_training(cloud.final_job(run), test_acc=0.76)
    cloud.sagemaker.fail(cloud.endpoint, "instance health check failed")
    with pytest.raises(RetryLater):
        cloud.training_finished(run)
    assert cloud.training_finished(run)["action"] == "deploying"
    cloud.sagemaker.fail(cloud.endpoint, "CapacityError: no ml.m5.large capacity")
    assert cloud.endpoint_changed()["action"] == "failed"


def api_releases_a_stuck_training_run(cloud: Cloud) -> None:
    stuck = cloud.through_tuning("api")
    cloud.sagemaker.finish_training(cloud.final_job(stuck), test_acc=0.5, hours_ago=1)
    cloud.age(stuck)
    status, body = cloud.api("POST", "/jobs/tune", {})
    assert status == 202, body
    assert cloud.record(stuck).status is RunStatus.FAILED
    cloud.current = body["run_id"]


def api_releases_a_stuck_tuning_run(cloud: Cloud) -> None:
    stuck = cloud.current
    cloud.sagemaker.finish_tuning(cloud.tuning_job(stuck), hours_ago=1)
    cloud.age(stuck)
    status, body = cloud.api("POST", "/jobs/tune", {})
    assert status == 202, body
    assert cloud.record(stuck).status is RunStatus.FAILED
    cloud.current = body["run_id"]


def schedule_releases_a_stuck_training_run(cloud: Cloud) -> None:
    stuck = cloud.current
    cloud.sagemaker.finish_tuning(cloud.tuning_job(stuck))
    assert cloud.tuning_finished(stuck)["action"] == "training"
    cloud.sagemaker.finish_training(cloud.final_job(stuck), test_acc=0.5, hours_ago=1)
    cloud.age(stuck)
    outcome = cloud.schedule()
    assert outcome["action"] == "started", outcome
    assert cloud.record(stuck).status is RunStatus.FAILED
    cloud.current = outcome["run_id"]


def tuning_without_a_successful_trial(cloud: Cloud) -> None:
    run = cloud.current
    cloud.sagemaker.finish_tuning(cloud.tuning_job(run), best=False)
    assert cloud.tuning_finished(run)["action"] == "failed"


def spot_and_debugger_run_rejected(cloud: Cloud) -> None:
    """Managed spot (checkpoints) and Debugger (hook, rules, profiler; an image with smdebug)
    switched on: the execution role is judged on what those jobs touch; the gate rejects."""
    run = cloud.through_tuning("schedule", **FEATURES)
    request = cloud.sagemaker.training[cloud.final_job(run)]["request"]
    assert {"CheckpointConfig", "DebugRuleConfigurations", "ProfilerRuleConfigurations"} <= set(
        request
    )
    cloud.sagemaker.finish_training(cloud.final_job(run), test_acc=0.10)
    assert cloud.training_finished(run, **FEATURES)["action"] == "rejected"


def reconcile_when_idle(cloud: Cloud) -> None:
    assert cloud.reconcile()["action"] == "idle"


def reconcile_a_run_whose_events_are_all_lost(cloud: Cloud) -> None:
    """Every event lost: the reconciler waits, starts final training, deletes the Failed
    endpoint (waits again), creates it, and settles the run DEPLOYED, registering
    auto-scaling first in the account (its service-linked role was deleted)."""
    cloud.delete_service_linked_role()
    run = cloud.start("schedule")
    assert cloud.reconcile()["action"] == "waiting"
    cloud.sagemaker.finish_tuning(cloud.tuning_job(run))
    assert cloud.reconcile()["action"] == "training"
    cloud.sagemaker.finish_training(cloud.final_job(run), test_acc=0.80)
    assert cloud.reconcile()["action"] == "waiting"  # the Failed endpoint is being deleted
    assert cloud.reconcile()["action"] == "deploying"
    assert cloud.reconcile()["action"] == "waiting"  # still Creating
    cloud.sagemaker.settle(cloud.endpoint)
    assert cloud.reconcile()["action"] == "deployed"


def reconcile_an_update_that_rolls_back(cloud: Cloud) -> None:
    live = cloud.sagemaker.endpoints[cloud.endpoint]["config"]
    run = cloud.start("api", **BIGGER)
    cloud.sagemaker.finish_tuning(cloud.tuning_job(run))
    assert cloud.reconcile(**BIGGER)["action"] == "training"
    cloud.sagemaker.finish_training(cloud.final_job(run), test_acc=0.82)
    outcome = cloud.reconcile(**BIGGER)
    expect(outcome, "deploying", "deregistered")
    cloud.sagemaker.settle(cloud.endpoint, serving=live)
    assert cloud.reconcile(**BIGGER)["action"] == "rolled_back"


def reconcile_a_refused_update(cloud: Cloud) -> None:
    run = cloud.start("schedule", **BIGGER)
    cloud.sagemaker.finish_tuning(cloud.tuning_job(run))
    assert cloud.reconcile(**BIGGER)["action"] == "training"
    cloud.sagemaker.finish_training(cloud.final_job(run), test_acc=0.83)
    cloud.sagemaker.refuse_next_update = Refused("ValidationException", "the update was refused")
    assert cloud.reconcile(**BIGGER)["action"] == "failed"


def reconcile_a_tuning_job_without_a_successful_trial(cloud: Cloud) -> None:
    run = cloud.start("api")
    cloud.sagemaker.finish_tuning(cloud.tuning_job(run), best=False)
    assert cloud.reconcile()["action"] == "failed"


def reconcile_a_lost_data_job_event(cloud: Cloud) -> None:
    """The data is gone again: a scheduled run prepares it, its event is lost, the
    reconciler starts tuning."""
    cloud.remove_training_data()
    run = cloud.current = cloud.start("schedule")
    assert cloud.record(run).status is RunStatus.PREPARING_DATA
    cloud.run_data_job(run, cloud.scratch / "second-data")
    assert cloud.reconcile()["action"] == "tuning"


def reconcile_ends_a_run_whose_job_never_started(cloud: Cloud) -> None:
    """The process died between taking the slot and CreateHyperParameterTuningJob."""
    run = cloud.current
    del cloud.sagemaker.tuning[cloud.tuning_job(run)]
    cloud.age(run)
    assert cloud.reconcile()["action"] == "failed"


def gate_rejects_a_version_not_significantly_better(cloud: Cloud) -> None:
    """Better than the champion on the same images, but McNemar says it could be noise:
    REJECTED, the version registered and Rejected."""
    run = cloud.through_tuning("api")
    job = cloud.final_job(run)
    cloud.sagemaker.finish_training(job, test_acc=0.86, champion_acc=0.85, p_value=0.4)
    expect(cloud.training_finished(run), "rejected", "not significant")
    assert cloud.package(run)["ModelApprovalStatus"] == "Rejected"
    assert cloud.record(run).status is RunStatus.REJECTED


def api_reads_the_registry(cloud: Cloud) -> None:
    """GET /models (pages of versions, newest first, the one in service marked), GET
    /models/current, GET /models/{version} (and an unknown one); approve on an auto stack
    and deploying a Rejected or the serving version are refused."""
    status, page = cloud.api("GET", "/models", query="limit=2")
    assert (status, len(page["models"])) == (200, 2), page
    assert page["next_cursor"], page
    versions = [m["version"] for m in page["models"]]
    assert versions == sorted(versions, reverse=True), versions
    status, rest = cloud.api("GET", "/models", query=f"limit=50&cursor={page['next_cursor']}")
    assert (status, rest["next_cursor"]) == (200, None), rest
    listed = page["models"] + rest["models"]
    assert len(listed) == len(cloud.sagemaker.packages)
    status, current = cloud.api("GET", "/models/current")
    assert (status, current["serving"]) == (200, True), current
    assert [m["version"] for m in listed if m["serving"]] == [current["version"]]
    assert cloud.api("GET", f"/models/{current['version']}")[0] == 200
    assert cloud.api("GET", "/models/9999")[0] == 404
    assert cloud.api("POST", f"/models/{current['version']}/approve")[0] == 409
    rejected = next(m["version"] for m in listed if m["approval_status"] == "Rejected")
    status, body = cloud.api("POST", f"/models/{rejected}/deploy")
    assert (status, body["error"]["code"]) == (409, "model_version_not_approved"), body
    status, body = cloud.api("POST", f"/models/{current['version']}/deploy")
    assert (status, body["error"]["code"]) == (409, "model_version_in_service"), body


def promotion_with_an_instance_type_change(cloud: Cloud) -> None:
    """POST /models/{version}/deploy of an earlier Approved version on bigger instances: the
    variant is deregistered, the update refused, auto-scaling restored by the API function
    (502); asked again, the update starts (202) and the promoted version serves."""
    version = cloud.approved_versions()[-1]  # the oldest: rolling back to the first model
    cloud.sagemaker.refuse_next_update = Refused("ValidationException", "the update was refused")
    status, body = cloud.api("POST", f"/models/{version}/deploy", **BIGGER)
    assert (status, body["error"]["code"]) == (502, "deployment_not_started"), body
    status, body = cloud.api("POST", f"/models/{version}/deploy", **BIGGER)
    assert (status, body["version"]) == (202, version), body
    assert cloud.record(body["run_id"]).trigger == "promote"
    cloud.sagemaker.settle(cloud.endpoint)
    assert cloud.endpoint_changed(**BIGGER)["action"] == "deployed"
    status, current = cloud.api("GET", "/models/current")
    assert (current["version"], current["deployed_by_run_id"]) == (version, body["run_id"])


def promotion_recreates_a_failed_endpoint(cloud: Cloud) -> None:
    """A promotion onto a Failed endpoint deletes it (409, retry) and, asked again, creates it
    afresh with the promoted version."""
    version = cloud.approved_versions()[0]
    cloud.sagemaker.fail(cloud.endpoint, "instance health check failed")
    status, body = cloud.api("POST", f"/models/{version}/deploy")
    assert (status, body["error"]["code"]) == (409, "endpoint_busy"), body
    status, body = cloud.api("POST", f"/models/{version}/deploy")
    assert status == 202, body
    assert cloud.sagemaker.endpoints[cloud.endpoint]["status"] == "Creating"
    cloud.sagemaker.settle(cloud.endpoint)
    assert cloud.endpoint_changed()["action"] == "deployed"


def manual_approval_deploys_what_a_person_approves(cloud: Cloud) -> None:
    """ModelApproval manual: the gate passes, the version waits (AWAITING_APPROVAL); POST
    /models/{version}/approve approves it; its state-change event deploys it as a run (a
    duplicate event is ignored); in service -> DEPLOYED; the reconciler finds nothing left."""
    run = cloud.through_tuning("schedule", **MANUAL)
    cloud.sagemaker.finish_training(cloud.final_job(run), test_acc=0.88)
    expect(cloud.training_finished(run, **MANUAL), "awaiting_approval")
    assert cloud.record(run).status is RunStatus.AWAITING_APPROVAL
    version = cloud.package(run)["ModelPackageVersion"]
    status, body = cloud.api("GET", f"/models/{version}", **MANUAL)
    assert (status, body["approval_status"]) == (200, "PendingManualApproval"), body
    status, body = cloud.api("POST", f"/models/{version}/approve", **MANUAL)
    assert (status, body["approval_status"]) == (202, "Approved"), body
    assert cloud.api("POST", f"/models/{version}/approve", **MANUAL)[0] == 409
    outcome = cloud.model_approved(run, **MANUAL)
    expect(outcome, "deploying", run)
    deployment = outcome["run_id"]
    assert cloud.record(deployment).trigger == "approval"
    assert cloud.model_approved(run, **MANUAL)["action"] == "ignored"
    cloud.sagemaker.settle(cloud.endpoint)
    assert cloud.endpoint_changed(**MANUAL)["action"] == "deployed"
    assert cloud.reconcile(**MANUAL)["action"] == "idle"
    assert cloud.champion()["model_package_arn"] == cloud.package(run)["ModelPackageArn"]


def manual_approval_whose_deployment_is_refused(cloud: Cloud) -> None:
    """An approved version on bigger instances: the approval function deregisters the
    variant, the update is throttled, it restores auto-scaling and the invocation fails (a
    transient error: nothing is decided); the reconciler finds the approved version whose
    deployment never started and deploys it."""
    run = cloud.through_tuning("api", **MANUAL_BIGGER)
    cloud.sagemaker.finish_training(cloud.final_job(run), test_acc=0.90)
    expect(cloud.training_finished(run, **MANUAL_BIGGER), "awaiting_approval")
    version = cloud.package(run)["ModelPackageVersion"]
    assert cloud.api("POST", f"/models/{version}/approve", **MANUAL_BIGGER)[0] == 202
    cloud.sagemaker.refuse_next_update = Refused("ThrottlingException", "Rate exceeded")
    with pytest.raises(ClientError):
        cloud.model_approved(run, **MANUAL_BIGGER)
    expect(cloud.reconcile(**MANUAL_BIGGER), "deploying", run)
    cloud.sagemaker.settle(cloud.endpoint)
    assert cloud.endpoint_changed(**MANUAL_BIGGER)["action"] == "deployed"


def manual_approval_onto_a_failed_endpoint(cloud: Cloud) -> None:
    """The endpoint failed meanwhile: the approval event deletes it and waits; the event's
    second delivery creates it with the approved version."""
    run = cloud.through_tuning("schedule", **MANUAL)
    cloud.sagemaker.finish_training(cloud.final_job(run), test_acc=0.91)
    expect(cloud.training_finished(run, **MANUAL), "awaiting_approval")
    version = cloud.package(run)["ModelPackageVersion"]
    assert cloud.api("POST", f"/models/{version}/approve", **MANUAL)[0] == 202
    cloud.sagemaker.fail(cloud.endpoint, "instance health check failed")
    assert cloud.model_approved(run, **MANUAL)["action"] == "waiting"
    assert cloud.endpoint not in cloud.sagemaker.endpoints
    assert cloud.model_approved(run, **MANUAL)["action"] == "deploying"
    cloud.sagemaker.settle(cloud.endpoint)
    assert cloud.endpoint_changed(**MANUAL)["action"] == "deployed"


def drift_alarm_starts_runs(cloud: Cloud) -> None:
    """The model-confidence alarm (on in this deployment): a state other than ALARM is
    ignored; ALARM starts a run (the data job first, the data being gone), is skipped while
    it is fresh, and releases a stuck tuning run and a stuck training run."""
    assert cloud.alarm_changed("OK")["action"] == "ignored"
    cloud.remove_training_data()
    outcome = cloud.alarm_changed()
    assert outcome["action"] == "started", outcome
    run = outcome["run_id"]
    assert cloud.record(run).status is RunStatus.PREPARING_DATA
    assert cloud.record(run).trigger == "drift"
    assert cloud.alarm_changed()["action"] == "skipped"
    cloud.run_data_job(run, cloud.scratch / "drift-data")
    assert cloud.training_finished(run, data=True)["action"] == "tuning"
    cloud.sagemaker.finish_tuning(cloud.tuning_job(run), hours_ago=1)  # the event was lost
    cloud.age(run)
    outcome = cloud.alarm_changed()
    assert outcome["action"] == "started", outcome
    assert cloud.record(run).status is RunStatus.FAILED
    stuck = outcome["run_id"]
    cloud.sagemaker.finish_tuning(cloud.tuning_job(stuck))
    assert cloud.tuning_finished(stuck)["action"] == "training"
    cloud.sagemaker.finish_training(cloud.final_job(stuck), test_acc=0.5, hours_ago=1)
    cloud.age(stuck)
    assert cloud.alarm_changed()["action"] == "started"
    assert cloud.record(stuck).status is RunStatus.FAILED


#: Another deployment's parameters for some invocations (the policies must not differ).
BIGGER = {"EndpointInstanceType": "ml.m5.xlarge"}
#: A person approves what the gate passed (creates ModelApprovedFunction).
MANUAL = {"ModelApproval": "manual"}
MANUAL_BIGGER = {**MANUAL, **BIGGER}
#: The deployment every scenario runs in unless it says otherwise: the model-confidence
#: alarm on, so that StartDriftRunFunction exists.
DEPLOYMENT = {"ConfidenceAlarmThreshold": "0.5"}
FEATURES = {
    "SpotTraining": "true",
    "DebuggerEnabled": "true",
    # The PyTorch 2.x Deep Learning Containers ship no smdebug (Settings refuses them).
    "TrainingImageUri": f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/cifar100-training-smdebug:1",
}

#: In order: each scenario starts where the one before left the stack.
SCENARIOS: list[Callable[[Cloud], None]] = [
    source_bundle_published,
    first_run_prepares_the_data,
    api_reads_predicts_and_refuses_a_second_run,
    schedule_releases_a_stuck_tuning_run,
    first_deployment,
    update_that_changes_the_instance_type,
    refused_update_restores_auto_scaling,
    update_rolled_back,
    failed_endpoint_recreated,
    api_releases_a_stuck_training_run,
    api_releases_a_stuck_tuning_run,
    schedule_releases_a_stuck_training_run,
    tuning_without_a_successful_trial,
    spot_and_debugger_run_rejected,
    reconcile_when_idle,
    reconcile_a_run_whose_events_are_all_lost,
    reconcile_an_update_that_rolls_back,
    reconcile_a_refused_update,
    reconcile_a_tuning_job_without_a_successful_trial,
    reconcile_a_lost_data_job_event,
    reconcile_ends_a_run_whose_job_never_started,
    gate_rejects_a_version_not_significantly_better,
    api_reads_the_registry,
    promotion_with_an_instance_type_change,
    promotion_recreates_a_failed_endpoint,
    manual_approval_deploys_what_a_person_approves,
    manual_approval_whose_deployment_is_refused,
    manual_approval_onto_a_failed_endpoint,
    drift_alarm_starts_runs,
]


# ================================================================================ fixtures


@pytest.fixture(scope="module")
def stack(transformed: dict[str, Any]) -> Stack:
    return Stack(transformed, parameters=DEPLOYMENT)


@pytest.fixture(scope="module")
def analysis(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Analysis:
    scratch = tmp_path_factory.mktemp("iam")
    for folder, name, text in [
        ("training", "train_model.py", "print('train')\n"),
        ("model_handler", "inference.py", "def model_fn(model_dir): ...\n"),
    ]:
        (scratch / "payload" / folder).mkdir(parents=True)
        (scratch / "payload" / folder / name).write_text(text)
    recorder = Recorder()
    clock = iter(range(10**6))
    start = datetime.now(UTC) - timedelta(days=1)

    def next_run_id(now: datetime | None = None) -> str:
        # Run ids a second apart in creation order, as real runs are: the store lists runs
        # newest first by id, and a burst of runs within one second would shuffle them.
        return real_run_id(start + timedelta(seconds=next(clock)))

    real_run_id = workflow.new_run_id
    with pytest.MonkeyPatch.context() as patch, mock_aws(), recorder.installed():
        patch.setattr(workflow, "new_run_id", next_run_id)
        cloud = Cloud(stack, recorder, scratch)
        cloud.create_stateful_resources()
        for scenario in SCENARIOS:
            with recorder.scenario(scenario.__name__):
                scenario(cloud)
    return analyse(recorder.calls, recorder.invocations, stack)


def _kept(grant: Grant) -> Kept | None:
    return next((k for k in KEPT_GRANTS if k.covers(grant)), None)


# ================================================================================ the checks


def test_every_principal_of_the_template_is_evaluated(stack: Stack) -> None:
    assert sorted(PRINCIPALS) == sorted(stack.principals())


def test_every_call_is_attributed_and_mapped(analysis: Analysis) -> None:
    unattributed = [str(c) for c in analysis.unattributed]
    assert not unattributed, "calls made outside any principal:\n" + "\n".join(unattributed)
    assert not analysis.problems, "\n".join(analysis.problems)


@pytest.mark.parametrize("principal", PRINCIPALS)
def test_the_scenarios_exercise_the_principal(analysis: Analysis, principal: str) -> None:
    assert any(a.principal == principal for a in analysis.accesses), principal


@pytest.mark.parametrize("principal", PRINCIPALS)
def test_no_access_is_denied(analysis: Analysis, principal: str) -> None:
    denied = analysis.denied(principal)
    lines = [f"{d}\n    context: {d.access.context}" for d in denied]
    assert not denied, f"{len(denied)} denied:\n" + "\n".join(lines)


@pytest.mark.parametrize("principal", PRINCIPALS)
def test_every_grant_is_used(analysis: Analysis, principal: str) -> None:
    unused = [g for g in analysis.unused(principal) if not _kept(g)]
    assert not unused, (
        f"{principal} is granted what no recorded call uses (remove it, or add it to "
        "KEPT_GRANTS with the reason):\n" + "\n".join(f"  {g}" for g in unused)
    )


def test_kept_grants_are_still_unused_grants(analysis: Analysis) -> None:
    unused = [g for p in PRINCIPALS for g in analysis.unused(p)]
    stale = [k for k in KEPT_GRANTS if not any(k.covers(g) for g in unused)]
    assert not stale, f"KEPT_GRANTS entries that no longer match an unused grant: {stale}"


def test_a_grant_taken_away_is_caught(analysis: Analysis, transformed: dict[str, Any]) -> None:
    """The same recorded calls judged by a template without the tuning function's
    PassRole statement: every CreateTrainingJob it made is now denied."""
    template = copy.deepcopy(transformed)
    role = template["Resources"]["TuningJobStateChangeFunctionRole"]["Properties"]
    for policy in role["Policies"]:
        statements = policy["PolicyDocument"]["Statement"]
        statements[:] = [s for s in statements if s.get("Sid") != "PassSageMakerRole"]
    stack = Stack(template, attributes=analysis.stack.attributes)
    judged = analyse(analysis.calls, analysis.invocations, stack)
    denied = {
        (d.access.action, d.access.source) for d in judged.denied("TuningJobStateChangeFunction")
    }
    assert denied == {("iam:PassRole", "sagemaker.CreateTrainingJob")}


# ================================================================================ the evaluator


def _access(action: str, resource: str, **context: str) -> Access:
    return Access("P", action, resource, {"aws:SecureTransport": "true", **context}, "test")


class _OneRole(Stack):
    """A stack whose one principal has exactly these statements."""

    def __init__(self, statements: list[dict[str, Any]], resource_policy: list[dict] | None = None):
        resources: dict[str, Any] = {
            "P": {
                "Type": "AWS::IAM::Role",
                "Properties": {
                    "Policies": [{"PolicyName": "p", "PolicyDocument": {"Statement": statements}}]
                },
            }
        }
        if resource_policy:
            resources["BP"] = {
                "Type": "AWS::S3::BucketPolicy",
                "Properties": {"PolicyDocument": {"Statement": resource_policy}},
            }
        super().__init__({"Resources": resources})


LIST_CODE = {
    "Effect": "Allow",
    "Action": "s3:ListBucket",
    "Resource": "arn:aws:s3:::b",
    "Condition": {"StringLike": {"s3:prefix": "code/*"}},
}


def test_moto_alone_passes_a_condition_it_does_not_evaluate() -> None:
    """Why the conditions are evaluated here: moto ignores StringLike, so a list request
    without (or outside) the prefix would pass."""
    moto_policy = IAMPolicy(json.dumps({"Version": "2012-10-17", "Statement": [LIST_CODE]}))
    assert (
        moto_policy.is_action_permitted("s3:ListBucket", "arn:aws:s3:::b")
        is PermissionResult.PERMITTED
    )
    evaluator = PolicyEvaluator(_OneRole([LIST_CODE]))
    assert not evaluator.decide(_access("s3:ListBucket", "arn:aws:s3:::b")).allowed
    assert not evaluator.decide(
        _access("s3:ListBucket", "arn:aws:s3:::b", **{"s3:prefix": "data/"})
    ).allowed
    assert evaluator.decide(
        _access("s3:ListBucket", "arn:aws:s3:::b", **{"s3:prefix": "code/x"})
    ).allowed


def test_head_object_on_a_missing_key_needs_list_bucket_without_a_prefix() -> None:
    """HeadObject on a key not yet uploaded answers 404 only to a caller with s3:ListBucket
    for the request's bucket, and that check carries no s3:prefix."""
    call = Call(
        "P", "s3", "HeadObject", {"Bucket": "b", "Key": "code/x"}, REGION, None, error="404"
    )
    needs = OPERATIONS[("s3", "HeadObject")](call, MappingContext(Arns(), []))
    assert needs == [
        ("s3:GetObject", "arn:aws:s3:::b/code/x", {}),
        ("s3:ListBucket", "arn:aws:s3:::b", {}),
    ]
    assert not conditions_hold(LIST_CODE["Condition"], {})


def test_pass_role_is_checked_with_the_service_it_is_passed_to() -> None:
    passing = {
        "Effect": "Allow",
        "Action": "iam:PassRole",
        "Resource": "arn:aws:iam::123456789012:role/r",
        "Condition": {"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}},
    }
    evaluator = PolicyEvaluator(_OneRole([passing]))
    role = "arn:aws:iam::123456789012:role/r"
    to = "iam:PassedToService"
    assert evaluator.decide(
        _access("iam:PassRole", role, **{to: "sagemaker.amazonaws.com"})
    ).allowed
    assert not evaluator.decide(
        _access("iam:PassRole", role, **{to: "lambda.amazonaws.com"})
    ).allowed


def test_an_explicit_deny_of_a_resource_policy_wins() -> None:
    allow = {"Effect": "Allow", "Action": "s3:*", "Resource": "arn:aws:s3:::b/*"}
    deny = {
        "Effect": "Deny",
        "Principal": "*",
        "Action": "s3:*",
        "Resource": "arn:aws:s3:::b/*",
        "Condition": {"Bool": {"aws:SecureTransport": "false"}},
    }
    evaluator = PolicyEvaluator(_OneRole([allow], [deny]))
    assert evaluator.decide(_access("s3:GetObject", "arn:aws:s3:::b/k")).allowed
    insecure = _access("s3:GetObject", "arn:aws:s3:::b/k", **{"aws:SecureTransport": "false"})
    assert evaluator.decide(insecure).denied_by == ["BP/#0"]


def test_wildcards_are_iam_wildcards_and_actions_ignore_case() -> None:
    statement = {
        "Effect": "Allow",
        "Action": "sagemaker:describe*",
        "Resource": "arn:aws:sagemaker:*:1:model/a.b-*",
    }
    evaluator = PolicyEvaluator(_OneRole([statement]))
    assert evaluator.decide(
        _access("sagemaker:DescribeModel", "arn:aws:sagemaker:r:1:model/a.b-1")
    ).allowed
    assert not evaluator.decide(
        _access("sagemaker:DescribeModel", "arn:aws:sagemaker:r:1:model/aXb-1")
    ).allowed


def test_an_operation_without_a_mapping_is_reported(stack: Stack) -> None:
    call = Call(
        "ApiFunction", "sqs", "SendMessage", {"QueueUrl": "q", "MessageBody": "m"}, REGION, "x"
    )
    assert "no IAM mapping" in analyse([call], [], stack).problems[0]
