"""AWS behaviours the orchestration relies on (docs/aws-behaviour.md), pinned offline.

Each test drives the real code against what AWS documents: S3 requests checked by botocore's
Stubber against the service model, SageMaker names and hyperparameters against the limits of
the API reference, and error responses parsed by botocore from the bytes a service sends (a
``before-send`` hook answers in place of the network), so the shapes are botocore's, not ours.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml
from botocore.awsrequest import AWSResponse
from botocore.exceptions import ClientError
from botocore.stub import Stubber

from deploy.source_bundle import bundle
from local.rules import _TemplateLoader
from retraining import workflow
from retraining.aws_errors import is_retryable
from retraining.deps import Deps
from retraining.overrides import TuneOverrides
from retraining.records import RunRecord, RunStatus, new_run_id
from retraining.sagemaker import autoscaling, names, request_bodies
from retraining.stores.dynamo import DynamoRunStore
from retraining.stores.memory import InMemoryRunStore
from tests.support.run_flow import ARN, best_trial, final_job, start
from tests.support.run_store_contract import make_run
from tests.support.sagemaker_double import (
    RecordingSageMaker,
    load_event,
    make_settings,
    training_description,
    tuning_description,
    wire,
)

REPO = Path(__file__).resolve().parents[3]
BUCKET = "cifar100-artifacts"


def _template() -> dict[str, Any]:
    return yaml.load((REPO / "template.yaml").read_text(), Loader=_TemplateLoader)


# -- botocore parsing real wire responses -----------------------------------------------------


class _Body:
    """The raw stream botocore reads an HTTP body from."""

    def __init__(self, data: bytes) -> None:
        self._data = data

    def stream(self, *_: Any, **__: Any) -> Iterator[bytes]:
        yield self._data


class WireAnswers:
    """Answers a client's calls with JSON bodies as the service sends them: botocore parses
    them (errors, modelled exception fields, omitted members) exactly as it would AWS's."""

    def __init__(self, client: Any, content_type: str) -> None:
        self._client, self._content_type = client, content_type
        self._queued: dict[str, list[tuple[int, dict[str, Any]]]] = {}
        self.sent: list[tuple[str, dict[str, Any]]] = []
        service = client.meta.service_model.service_id.hyphenize()
        client.meta.events.register(f"before-send.{service}", self._answer)

    def add(self, operation: str, status: int, body: dict[str, Any]) -> None:
        self._queued.setdefault(operation, []).append((status, body))

    def _answer(self, request: Any, **_: Any) -> AWSResponse:
        operation = request.headers["X-Amz-Target"].decode().rpartition(".")[2]
        self.sent.append((operation, json.loads(request.body)))
        status, body = self._queued[operation].pop(0)
        headers = {"x-amzn-RequestId": "req-1", "Content-Type": self._content_type}
        return AWSResponse(request.url, status, headers, _Body(json.dumps(body).encode()))

    def assert_all_used(self) -> None:
        assert not any(self._queued.values()), self._queued


# -- S3: start_run asks for the training data with a Prefix -----------------------------------


@pytest.fixture
def stubbed_s3() -> Iterator[tuple[Any, Stubber]]:
    client = boto3.client("s3", region_name="us-east-1")
    with Stubber(client) as stubber:
        yield client, stubber
        stubber.assert_no_pending_responses()


def _data_deps(sagemaker: RecordingSageMaker, store: InMemoryRunStore, s3: Any) -> Deps:
    return wire(make_settings(prepare_data=True), sagemaker, store, s3)


@pytest.mark.parametrize(
    ("listed", "status"),
    [
        ({"KeyCount": 1, "Contents": [{"Key": "data/train/cifar-100-python/train"}]}, "TUNING"),
        ({"KeyCount": 0}, "PREPARING_DATA"),  # S3 omits Contents when nothing matched
    ],
)
def test_start_run_lists_the_training_data_with_an_explicit_prefix(
    sagemaker: RecordingSageMaker,
    store: InMemoryRunStore,
    stubbed_s3: tuple[Any, Stubber],
    listed: dict[str, Any],
    status: str,
) -> None:
    """Without Prefix the request would carry no ``s3:prefix`` and a ``StringLike``-scoped
    ListBucket grant might deny it (the disputed empty-prefix reading): always send it."""
    s3, stubber = stubbed_s3
    expected = {"Bucket": BUCKET, "Prefix": "data/train/", "MaxKeys": 1}
    stubber.add_response("list_objects_v2", {"Name": BUCKET, **listed}, expected)
    deps = _data_deps(sagemaker, store, s3)
    if status == "TUNING":
        run = start(deps, sagemaker)
    else:
        sagemaker.expect("create_training_job", {"TrainingJobArn": f"{ARN}:training-job/x"})
        run = workflow.start_run("api", TuneOverrides(), deps)
    assert run.status.value == status
    sagemaker.assert_all_used()


# -- SageMaker names at the longest prefix the template allows -------------------------------

#: The API reference's name pattern (botocore checks neither it nor the maximum length).
NAME = re.compile(r"[a-zA-Z0-9](-*[a-zA-Z0-9])*")


def _longest_prefixes() -> list[str]:
    spec = _template()["Parameters"]["ResourcePrefix"]
    allowed = re.compile(spec["AllowedPattern"])
    # The longest prefixes the pattern admits, hyphens wherever it lets them be.
    candidates = ["abcdefghij", "a-b-c-d-e-", "a---------", "z999999999"]
    assert all(allowed.fullmatch(p) for p in candidates)
    longest = max(len(p) for p in candidates)
    assert not allowed.fullmatch("a" * (longest + 1)), "a longer prefix is allowed: test it"
    assert not allowed.fullmatch("Cifar100"), "upper case is allowed: ARNs would not match"
    return candidates


@pytest.mark.parametrize("prefix", _longest_prefixes())
def test_every_name_fits_sagemakers_limits_at_the_longest_prefix(prefix: str) -> None:
    """Tuning job <= 32 characters, training job (final and data), model and endpoint config
    <= 63, all matching the API pattern; all lower case, because SageMaker lower-cases names
    in ARNs and the template's IAM resources and rule filters spell them as given."""
    for run_id in (new_run_id(), new_run_id(datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC))):
        limits = {
            names.tuning_job_name(prefix, run_id): 32,
            names.final_training_job_name(prefix, run_id): 63,
            names.data_job_name(prefix, run_id): 63,
            names.model_name(prefix, run_id): 63,
            names.endpoint_config_name(prefix, run_id): 63,
        }
        for name, limit in limits.items():
            assert len(name) <= limit, (name, limit)
            assert NAME.fullmatch(name), name
            assert name == name.lower(), name
        # HPO trials are named <tuning job>-<nnn>-<8 hex>: still within a training job name.
        trial = f"{names.tuning_job_name(prefix, run_id)}-001-4f1c2a9b"
        assert len(trial) <= 63
        assert NAME.fullmatch(trial)
        # The names still parse back to the run (events are routed by them).
        assert names.run_id_from_tuning_job(prefix, names.tuning_job_name(prefix, run_id))
        assert names.run_id_from_final_job(prefix, names.final_training_job_name(prefix, run_id))
        assert names.run_id_from_data_job(prefix, names.data_job_name(prefix, run_id))


# -- hyperparameters: at most 100, each key and value at most 256 characters ------------------

#: CreateTrainingJob documentation: "a maximum of 100 hyperparameters ... Each key and value
#: is limited to 256 characters" (the model's HyperParameterValue allows 2500).
MAX_HYPERPARAMETERS = 100
MAX_HYPERPARAMETER_CHARS = 256


def _long_settings() -> Any:
    """The longest URIs a deployed stack produces: CloudFormation's generated bucket name
    is at most 63 characters, the source bundle key is <Prefix>training/<digest>/<name>."""
    bucket = "cifar100-prod-eu-central-1-artifactbucket-1a2b3c4d5e6f7g8h9i0jk"
    assert len(bucket) == 63
    prefix = str(_template()["Resources"]["SourceBundle"]["Properties"]["Prefix"])
    digest = "f" * bundle.DIGEST_CHARS
    return make_settings(
        resource_prefix="abcdefghij",
        artifact_bucket=bucket,
        training_source_s3_uri=f"s3://{bucket}/{prefix}training/{digest}/{bundle.SOURCEDIR_NAME}",
        inference_source_s3_uri=f"s3://{bucket}/{prefix}inference/{digest}/",
        train_data_s3_uri=f"s3://{bucket}/data/train/",
        test_data_s3_uri=f"s3://{bucket}/data/test/",
        aws_region="ap-southeast-2",
        debugger_enabled=False,
    )


def _assert_fits(hyperparameters: dict[str, str], extra: int = 0) -> None:
    assert hyperparameters
    assert len(hyperparameters) + extra <= MAX_HYPERPARAMETERS
    for key, value in hyperparameters.items():
        assert isinstance(value, str), key
        assert len(key) <= MAX_HYPERPARAMETER_CHARS, key
        assert len(value) <= MAX_HYPERPARAMETER_CHARS, (key, value)


def test_every_hyperparameter_of_every_job_fits_the_documented_limits() -> None:
    settings = _long_settings()
    run_id = new_run_id()
    tuning = request_bodies.tuning_job_request(
        settings, run_id, TuneOverrides(batch_sizes=[16, 32, 64, 128, 256, 512])
    )
    static = tuning["TrainingJobDefinition"]["StaticHyperParameters"]
    ranges = tuning["HyperParameterTuningJobConfig"]["ParameterRanges"]
    tuned = [r for kind in ranges.values() for r in kind]
    _assert_fits(static, extra=len(tuned))  # SageMaker adds the tuned ones to every trial
    for parameter in tuned:
        values = [parameter.get(k) for k in ("MinValue", "MaxValue")] + parameter.get("Values", [])
        assert all(len(v) <= MAX_HYPERPARAMETER_CHARS for v in values if v), parameter

    # The final job: the best trial's values as DescribeHyperParameterTuningJob returns them
    # (the objective metric key included; the request drops "_" keys).
    best = tuning_description(names.tuning_job_name(settings.resource_prefix, run_id), "x")
    found = {**best["BestTrainingJob"]["TunedHyperParameters"], "_tuning_objective_metric": "a"}
    final = request_bodies.final_training_request(settings, run_id, TuneOverrides(), found)
    _assert_fits(final["HyperParameters"])
    assert final["HyperParameters"]["sagemaker_submit_directory"] == (
        settings.training_source_s3_uri
    )

    output = request_bodies.data_location(settings)
    assert output is not None
    data = request_bodies.data_job_request(settings, run_id, output)
    _assert_fits(data["HyperParameters"])


# -- the data job downloads CIFAR-100: it must have internet access ---------------------------


def test_the_data_job_keeps_internet_access() -> None:
    """Training jobs reach the internet unless EnableNetworkIsolation is true or a VpcConfig
    (without NAT) places them in a VPC: the data job sets neither, whatever the settings."""
    for settings in (make_settings(), _long_settings(), make_settings(spot_training=True)):
        request = request_bodies.data_job_request(settings, new_run_id(), "s3://b/data")
        assert "EnableNetworkIsolation" not in request
        assert "VpcConfig" not in request
        # And the request is one botocore accepts for CreateTrainingJob.
        client = boto3.client("sagemaker", region_name="us-east-1")
        with Stubber(client) as stubber:
            stubber.add_response("create_training_job", {"TrainingJobArn": "arn"}, request)
            client.create_training_job(**request)


# -- Deleting / DeleteFailed: neither success nor failure, the run waits ----------------------


def _training_run(deps: Deps, sagemaker: RecordingSageMaker) -> RunRecord:
    run = start(deps, sagemaker)
    sagemaker.expect(
        "describe_hyper_parameter_tuning_job",
        tuning_description(run.tuning_job_name, best=best_trial(run)),
    )
    sagemaker.expect("create_training_job", {"TrainingJobArn": f"{ARN}:training-job/x"})
    event = load_event("tuning_job_completed.json", run.run_id)
    assert workflow.on_tuning_job_state_change(event, deps)["action"] == "training"
    return deps.store.get(run.run_id)


def _status_enum(shape: str) -> list[str]:
    model = boto3.client("sagemaker", region_name="us-east-1").meta.service_model
    return list(model.shape_for(shape).enum)


@pytest.mark.parametrize("status", ["Deleting", "DeleteFailed"])
def test_a_tuning_job_being_deleted_keeps_the_run_waiting(
    deps: Deps, sagemaker: RecordingSageMaker, store: InMemoryRunStore, status: str
) -> None:
    assert status in _status_enum("HyperParameterTuningJobStatus")
    run = start(deps, sagemaker)
    description = tuning_description(run.tuning_job_name, best=best_trial(run))
    sagemaker.expect(
        "describe_hyper_parameter_tuning_job",
        {**description, "HyperParameterTuningJobStatus": status},
    )
    outcome = workflow.reconcile(deps)
    assert outcome == {"action": "waiting", "run_id": run.run_id, "status": status}
    assert store.get(run.run_id).status is RunStatus.TUNING
    assert sagemaker.operations() == [
        "CreateHyperParameterTuningJob",
        "DescribeHyperParameterTuningJob",
    ]
    sagemaker.assert_all_used()


@pytest.mark.parametrize("status", ["Deleting", "DeleteFailed"])
def test_a_final_job_being_deleted_keeps_the_run_waiting(
    deps: Deps, sagemaker: RecordingSageMaker, store: InMemoryRunStore, status: str
) -> None:
    """TrainingJobStatus has Deleting but no DeleteFailed in the model; the Stubber (which
    checks no enum) accepts both, and the code must wait on either rather than guess."""
    if status == "DeleteFailed":
        assert status not in _status_enum("TrainingJobStatus")
    else:
        assert status in _status_enum("TrainingJobStatus")
    run = _training_run(deps, sagemaker)
    calls = len(sagemaker.calls)
    description = training_description(final_job(run), run.run_id, 0.9)
    sagemaker.expect("describe_training_job", {**description, "TrainingJobStatus": status})
    outcome = workflow.reconcile(deps)
    assert outcome == {"action": "waiting", "run_id": run.run_id, "status": status}
    assert store.get(run.run_id).status is RunStatus.TRAINING
    assert [name for name, _ in sagemaker.calls[calls:]] == ["DescribeTrainingJob"]
    sagemaker.assert_all_used()


# -- Application Auto Scaling's InternalServiceException --------------------------------------


def _autoscaling_at_the_wire() -> tuple[Any, WireAnswers]:
    client = boto3.client("application-autoscaling", region_name="us-east-1")
    return client, WireAnswers(client, "application/x-amz-json-1.1")


def test_internal_service_exception_without_a_5xx_status_is_retryable() -> None:
    """The model gives InternalServiceException no httpStatusCode: botocore neither retries
    it (not a throttle, not a 5xx) nor would the >= 500 rule. Parsed from a 400, it must still
    count as transient, or a passing AWS fault leaves the endpoint without auto-scaling."""
    model = boto3.client("application-autoscaling", region_name="us-east-1").meta.service_model
    shape = model.shape_for("InternalServiceException")
    assert "httpStatusCode" not in shape.metadata.get("error", {})
    for operation in ("RegisterScalableTarget", "PutScalingPolicy"):
        errors = model.operation_model(operation).error_shapes
        assert shape.name in [error.name for error in errors], operation

    client, wire = _autoscaling_at_the_wire()
    wire.add("RegisterScalableTarget", 400, {"__type": "InternalServiceException", "Message": "x"})
    with pytest.raises(ClientError) as raised:
        client.register_scalable_target(**autoscaling.scalable_target_request(_scaled()))
    error = raised.value
    assert error.response["Error"]["Code"] == "InternalServiceException"
    assert error.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert len(wire.sent) == 1  # botocore did not retry it: our classification is all there is
    assert is_retryable(error)


def _scaled() -> Any:
    return make_settings(endpoint_min_capacity=1, endpoint_max_capacity=4)


def test_registration_failing_with_internal_service_exception_is_retried_not_dropped() -> None:
    client, wire = _autoscaling_at_the_wire()
    wire.add("RegisterScalableTarget", 400, {"__type": "InternalServiceException", "Message": "x"})
    with pytest.raises(ClientError, match="InternalServiceException"):
        autoscaling.register(client, _scaled())  # raised: the event/tick is taken again
    wire.assert_all_used()


# -- DynamoDB: a cancellation reason without a Code -------------------------------------------

#: Three spellings of "this item had no error": the TransactionCanceledException documentation
#: (Code "None"), the CancellationReason documentation (a null Code and Message), and a reason
#: with the member left out. botocore turns the last two into the same empty dict.
NO_ERROR = [
    pytest.param({"Code": "None"}, id="code-None"),
    pytest.param({"Code": None, "Message": None}, id="code-null"),
    pytest.param({}, id="code-omitted"),
]


def _cancelled(*reasons: dict[str, Any]) -> dict[str, Any]:
    return {
        "__type": "com.amazonaws.dynamodb.v20120810#TransactionCanceledException",
        "Message": "Transaction cancelled, please refer cancellation reasons for specific "
        "reasons [None, ConditionalCheckFailed]",
        "CancellationReasons": list(reasons),
    }


def _dynamo_at_the_wire() -> tuple[DynamoRunStore, WireAnswers]:
    client = boto3.client("dynamodb", region_name="us-east-1")
    return DynamoRunStore(client, "runs"), WireAnswers(client, "application/x-amz-json-1.0")


@pytest.mark.parametrize("no_error", NO_ERROR)
def test_finishing_a_run_whose_lock_item_had_no_error_writes_the_run_alone(
    no_error: dict[str, Any],
) -> None:
    """A terminal transition writes the run (version check) and deletes the lock item. When
    the lock's condition fails (reason 2) the run's reason has no error; however it is spelt,
    the store writes the run alone instead of failing with a KeyError or the raw error."""
    store, wire = _dynamo_at_the_wire()
    run = make_run(status=RunStatus.TRAINING)
    item = store._run_item(run, 3)
    failed = {"Code": "ConditionalCheckFailed", "Message": "The conditional request failed"}
    wire.add("GetItem", 200, {"Item": item})
    wire.add("TransactWriteItems", 400, _cancelled(no_error, failed))
    wire.add("TransactWriteItems", 200, {})
    new = store.transition(run.run_id, RunStatus.REJECTED, expected={RunStatus.TRAINING})
    assert new.status is RunStatus.REJECTED
    wire.assert_all_used()
    writes = [body for operation, body in wire.sent if operation == "TransactWriteItems"]
    assert [len(w["TransactItems"]) for w in writes] == [2, 1]  # run + lock, then the run
    assert "Put" in writes[1]["TransactItems"][0]


@pytest.mark.parametrize("no_error", NO_ERROR)
def test_a_second_create_of_the_same_run_is_told_apart_from_a_held_slot(
    no_error: dict[str, Any],
) -> None:
    """create() takes the lock item then puts the run: lock without error + run condition
    failed means the run exists already (not that another run holds the slot)."""
    store, wire = _dynamo_at_the_wire()
    failed = {"Code": "ConditionalCheckFailed", "Message": "The conditional request failed"}
    wire.add("TransactWriteItems", 400, _cancelled(no_error, failed))
    run = make_run()
    with pytest.raises(ValueError, match=f"run {run.run_id} already exists"):
        store.create(run)
    wire.assert_all_used()
