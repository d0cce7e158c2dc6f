"""The Lambda handlers end to end: EventBridge events in, DynamoDB (moto) run store, SageMaker
through a Stubber (the calls moto fakes wrongly or not at all) or through moto itself."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from orchestration import handlers
from retraining.deps import Deps, set_deps
from retraining.records import RunRecord, RunStatus
from retraining.sagemaker.events import ENDPOINT_DETAIL_TYPE as ENDPOINT
from retraining.sagemaker.events import TUNING_DETAIL_TYPE as TUNING
from retraining.settings import Settings
from retraining.stores.dynamo import DynamoRunStore, table_definition
from tests.support.run_flow import ARN, best_trial, final_job
from tests.support.sagemaker_double import (
    endpoint_description,
    load_event,
    make_settings,
    model_package_event,
    package_arn,
    package_description,
    training_description,
    tuning_description,
    wire,
)


@dataclass
class Context:
    function_name: str = "cifar100-orchestration"
    function_version: str = "$LATEST"
    invoked_function_arn: str = (
        "arn:aws:lambda:us-east-1:123456789012:function:cifar100-orchestration"
    )
    memory_limit_in_mb: int = 256
    aws_request_id: str = "52fdfc07-2182-154f-163f-5f0f9a621d72"
    log_group_name: str = "/aws/lambda/cifar100-orchestration"
    log_stream_name: str = "2026/11/28/[$LATEST]abc"


@pytest.fixture
def settings() -> Settings:
    return make_settings()


@pytest.fixture
def dynamo_deps(sagemaker, s3_double, settings) -> Iterator[Deps]:
    with mock_aws():
        dynamodb = boto3.client("dynamodb", region_name="us-east-1")
        dynamodb.create_table(**table_definition("cifar100-runs"))
        wired = wire(settings, sagemaker, DynamoRunStore(dynamodb, "cifar100-runs"), s3_double)
        set_deps(wired)
        yield wired
        set_deps(None)


@pytest.fixture
def log_stream() -> Iterator[io.StringIO]:
    """Powertools' handler holds the stdout of import time: point it at a buffer."""
    buffer = io.StringIO()
    handler = handlers.logger.registered_handler
    previous = handler.setStream(buffer)
    yield buffer
    handler.setStream(previous)


def log_lines(buffer: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in buffer.getvalue().splitlines() if line.startswith("{")]


def test_happy_path_through_all_four_handlers(dynamo_deps, sagemaker, log_stream):
    sagemaker.expect(
        "create_hyper_parameter_tuning_job", {"HyperParameterTuningJobArn": f"{ARN}:x"}
    )
    started = handlers.start_scheduled_run({"overrides": {"max_jobs": 4}}, Context())
    assert started["action"] == "started"
    run_id = started["run_id"]
    store = dynamo_deps.store
    run = store.get(run_id)
    assert run.trigger == "schedule"
    assert run.overrides == {"max_jobs": 4}
    limits = sagemaker.requests("CreateHyperParameterTuningJob")[0]["HyperParameterTuningJobConfig"]
    assert limits["ResourceLimits"]["MaxNumberOfTrainingJobs"] == 4

    sagemaker.expect(
        "describe_hyper_parameter_tuning_job",
        tuning_description(run.tuning_job_name, best=best_trial(run)),
    )
    sagemaker.expect("create_training_job", {"TrainingJobArn": f"{ARN}:x"})
    out = handlers.tuning_job_state_change(
        load_event("tuning_job_completed.json", run_id), Context()
    )
    assert out["action"] == "training"

    # An HPO trial's completion reaches the same function and is dropped.
    trial = handlers.training_job_state_change(
        load_event("training_job_hpo_trial_completed.json", run_id), Context()
    )
    assert trial["action"] == "ignored"

    sagemaker.expect("describe_training_job", training_description(final_job(run), run_id, 0.71))
    sagemaker.expect("create_model_package", {"ModelPackageArn": package_arn(1)})
    sagemaker.expect("update_model_package", {"ModelPackageArn": package_arn(1)})
    sagemaker.expect("create_model", {"ModelArn": f"{ARN}:x"})
    sagemaker.expect("create_endpoint_config", {"EndpointConfigArn": f"{ARN}:x"})
    sagemaker.fail("describe_endpoint", "ValidationException", "Could not find endpoint")
    sagemaker.expect("create_endpoint", {"EndpointArn": f"{ARN}:x"})
    out = handlers.training_job_state_change(
        load_event("training_job_final_completed.json", run_id), Context()
    )
    assert out["action"] == "deploying"

    sagemaker.expect("describe_endpoint", endpoint_description("InService", run.tuning_job_name))
    out = handlers.endpoint_state_change(load_event("endpoint_in_service.json", run_id), Context())
    assert out["action"] == "deployed"

    assert store.get(run_id).status is RunStatus.DEPLOYED
    assert store.get_champion()["run_id"] == run_id
    assert store.get_champion()["model_package_arn"] == package_arn(1)
    assert store.get(run_id).model_version == 1  # the registry fields survive DynamoDB
    lines = log_lines(log_stream)
    handled = [line for line in lines if line.get("message") == "event handled"]
    assert len(handled) == 4
    assert {line["correlation_id"] for line in handled} == {run_id}
    sagemaker.assert_all_used()


def test_schedule_skips_while_a_run_is_active(dynamo_deps, sagemaker):
    sagemaker.expect(
        "create_hyper_parameter_tuning_job", {"HyperParameterTuningJobArn": f"{ARN}:x"}
    )
    first = handlers.start_scheduled_run({}, Context())
    second = handlers.start_scheduled_run({}, Context())
    assert second == {"action": "skipped", "active_run_id": first["run_id"]}
    assert len(sagemaker.requests("CreateHyperParameterTuningJob")) == 1


def test_schedule_with_bad_overrides_is_refused_before_anything_starts(dynamo_deps, sagemaker):
    with pytest.raises(ValueError, match="max_parallel_jobs"):
        handlers.start_scheduled_run(
            {"overrides": {"max_jobs": 1, "max_parallel_jobs": 2}}, Context()
        )
    assert dynamo_deps.store.list() == ([], None)


def test_start_against_motos_sagemaker():
    """moto implements CreateHyperParameterTuningJob: the request it stores is ours."""
    with mock_aws():
        dynamodb = boto3.client("dynamodb", region_name="us-east-1")
        dynamodb.create_table(**table_definition("runs"))
        sagemaker = boto3.client("sagemaker", region_name="us-east-1")
        settings = make_settings()
        set_deps(
            Deps(
                settings_factory=lambda: settings,
                sagemaker_factory=lambda: sagemaker,
                sagemaker_runtime_factory=lambda: None,
                store_factory=lambda: DynamoRunStore(dynamodb, "runs"),
            )
        )
        try:
            started = handlers.start_scheduled_run({}, Context())
        finally:
            set_deps(None)
        job = sagemaker.describe_hyper_parameter_tuning_job(
            HyperParameterTuningJobName=f"cifar100-{started['run_id']}"
        )
        config = job["HyperParameterTuningJobConfig"]
        assert config["HyperParameterTuningJobObjective"]["MetricName"] == "val_acc"
        assert config["Strategy"] == "Bayesian"
        assert (
            job["TrainingJobDefinition"]["StaticHyperParameters"]["sagemaker_program"] == "hpo.py"
        )
        tags = sagemaker.list_tags(ResourceArn=job["HyperParameterTuningJobArn"])["Tags"]
        assert {"Key": "run-id", "Value": started["run_id"]} in tags


@pytest.mark.parametrize(
    ("handler", "event"),
    [
        (handlers.training_job_state_change, load_event("tuning_job_completed.json")),
        (handlers.tuning_job_state_change, {"detail-type": TUNING, "detail": "not an object"}),
        (handlers.endpoint_state_change, {"detail-type": ENDPOINT, "detail": {}}),
    ],
    ids=["wrong-type", "detail-not-an-object", "missing-field"],
)
def test_malformed_event_is_ignored_with_a_warning_not_retried(
    dynamo_deps, sagemaker, log_stream, handler, event
):
    # Raising would have Lambda retry a permanently bad event and dead-letter it.
    outcome = handler(event, Context())
    assert outcome["action"] == "ignored"
    assert outcome["reason"].startswith("malformed event: ")
    (warning,) = [line for line in log_lines(log_stream) if line["level"] == "WARNING"]
    assert warning["message"] == "malformed event ignored"
    assert warning["error"] in outcome["reason"]
    assert sagemaker.calls == []


def test_schedule_ends_a_stuck_run_on_dynamodb_and_starts(dynamo_deps, sagemaker):
    # The lock item and the run's terminal status are released in one transaction.
    old = "2020-01-01T00:00:00Z"
    stuck = RunRecord(
        run_id="r20200101000000aaaa",
        trigger="schedule",
        status=RunStatus.TUNING,
        created_at=old,
        updated_at=old,
        tuning_job_name="cifar100-r20200101000000aaaa",
    )
    dynamo_deps.store.create(stuck)
    sagemaker.expect(
        "create_hyper_parameter_tuning_job",
        {"HyperParameterTuningJobArn": f"{ARN}:hyper-parameter-tuning-job/x"},
    )
    outcome = handlers.start_scheduled_run({}, Context())
    assert outcome["action"] == "started"
    ended = dynamo_deps.store.get(stuck.run_id)
    assert ended.status is RunStatus.FAILED
    assert ended.error.startswith(f"no progress since {old}")
    assert dynamo_deps.store.get(outcome["run_id"]).status is RunStatus.TUNING


def _scheduled_event() -> dict[str, Any]:
    """What an EventBridge schedule delivers (the reconcile rule has no Input)."""
    return {
        "version": "0",
        "id": "89d1a02d-5ec7-412e-82f5-13505f849b41",
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": "123456789012",
        "time": "2026-11-28T04:05:00Z",
        "region": "us-east-1",
        "resources": ["arn:aws:events:us-east-1:123456789012:rule/cifar100-reconcile"],
        "detail": {},
    }


def test_reconcile_handler_moves_a_run_whose_event_was_lost_on_dynamodb(
    dynamo_deps, sagemaker, log_stream
):
    sagemaker.expect(
        "create_hyper_parameter_tuning_job",
        {"HyperParameterTuningJobArn": f"{ARN}:hyper-parameter-tuning-job/x"},
    )
    started = handlers.start_scheduled_run({"overrides": {}}, Context())
    run = dynamo_deps.store.get(started["run_id"])
    description = tuning_description(run.tuning_job_name, best=best_trial(run))
    sagemaker.expect("describe_hyper_parameter_tuning_job", description)
    sagemaker.expect("describe_hyper_parameter_tuning_job", description)
    sagemaker.expect("create_training_job", {"TrainingJobArn": f"{ARN}:training-job/x"})
    outcome = handlers.reconcile(_scheduled_event(), Context())
    assert outcome["action"] == "training"
    assert dynamo_deps.store.get(run.run_id).status is RunStatus.TRAINING
    reconciled = [line for line in log_lines(log_stream) if line["message"] == "reconciled"]
    assert reconciled[-1]["correlation_id"] == run.run_id
    # A throttled tick is an ordinary wait, not a failed invocation (no dead letter, no alarm).
    sagemaker.fail("describe_training_job", "ThrottlingException", "Rate exceeded", 400)
    assert handlers.reconcile(_scheduled_event(), Context())["action"] == "waiting"
    sagemaker.assert_all_used()


# -- the model-confidence alarm starts a drift run -------------------------------------------

ALARMS = Path(__file__).resolve().parents[2] / "events" / "cloudwatch"


def alarm_event(state: str = "ALARM", name: str = "alarm_state_change.json") -> dict[str, Any]:
    event = json.loads((ALARMS / name).read_text())
    event["detail"]["alarmName"] = "cifar100-model-confidence"
    event["detail"]["state"]["value"] = state
    return event


@pytest.mark.parametrize(
    "fixture", ["alarm_state_change.json", "alarm_state_change_metric_math_first.json"]
)
def test_an_alarm_going_into_alarm_starts_a_drift_run(dynamo_deps, sagemaker, log_stream, fixture):
    sagemaker.expect(
        "create_hyper_parameter_tuning_job", {"HyperParameterTuningJobArn": f"{ARN}:x"}
    )
    outcome = handlers.start_drift_run(alarm_event(name=fixture), Context())
    assert outcome["action"] == "started"
    run = dynamo_deps.store.get(outcome["run_id"])
    assert run.trigger == "drift"
    assert run.status is RunStatus.TUNING
    assert run.overrides == {}  # the stack's settings
    (tuning,) = sagemaker.requests("CreateHyperParameterTuningJob")
    assert tuning["HyperParameterTuningJobName"] == run.tuning_job_name
    logged = [line for line in log_lines(log_stream) if line["message"] == "model confidence alarm"]
    assert logged[0]["alarm"] == "cifar100-model-confidence"
    sagemaker.assert_all_used()


@pytest.mark.parametrize("state", ["OK", "INSUFFICIENT_DATA"])
def test_other_alarm_states_start_nothing(dynamo_deps, sagemaker, state):
    outcome = handlers.start_drift_run(alarm_event(state), Context())
    assert outcome == {"action": "ignored", "run_id": None, "reason": f"alarm state {state}"}
    assert sagemaker.calls == []
    assert dynamo_deps.store.list() == ([], None)


def test_a_drift_alarm_while_a_run_is_active_is_skipped(dynamo_deps, sagemaker):
    sagemaker.expect(
        "create_hyper_parameter_tuning_job", {"HyperParameterTuningJobArn": f"{ARN}:x"}
    )
    first = handlers.start_scheduled_run({}, Context())
    outcome = handlers.start_drift_run(alarm_event(), Context())
    assert outcome == {"action": "skipped", "active_run_id": first["run_id"]}
    assert len(sagemaker.requests("CreateHyperParameterTuningJob")) == 1
    (run,), _ = dynamo_deps.store.list()
    assert run.trigger == "schedule"


def _without_state() -> dict[str, Any]:
    event = alarm_event()
    del event["detail"]["state"]
    return event


def _state_not_an_object() -> dict[str, Any]:
    event = alarm_event()
    event["detail"]["state"] = "ALARM"
    return event


@pytest.mark.parametrize(
    "event",
    [
        load_event("endpoint_in_service.json"),  # another detail-type
        {"detail-type": "CloudWatch Alarm State Change", "detail": "ALARM"},
        _without_state(),
        _state_not_an_object(),
        {},
    ],
    ids=["wrong-type", "detail-not-an-object", "no-state", "state-not-an-object", "empty"],
)
def test_a_malformed_alarm_event_is_ignored_not_raised(dynamo_deps, sagemaker, event):
    outcome = handlers.start_drift_run(event, Context())
    assert outcome["action"] == "ignored"
    assert outcome["run_id"] is None
    assert sagemaker.calls == []
    assert dynamo_deps.store.list() == ([], None)


# -- a person approves a version in the registry ---------------------------------------------


def test_model_package_events_are_ignored_when_the_gate_approves(dynamo_deps, sagemaker):
    """MODEL_APPROVAL=auto: the gate's own UpdateModelPackage emits this event too."""
    event = model_package_event(package_arn(2))
    outcome = handlers.model_package_state_change(event, Context())
    assert outcome["action"] == "ignored"
    assert "MODEL_APPROVAL=auto" in outcome["reason"]
    assert sagemaker.calls == []


@pytest.mark.parametrize("settings", [make_settings(model_approval="manual")], ids=["manual"])
def test_an_approval_deploys_the_waiting_version_on_dynamodb(dynamo_deps, sagemaker, settings):
    store = dynamo_deps.store
    waiting = RunRecord(
        run_id="r20261128030512ab12",
        trigger="schedule",
        status=RunStatus.TRAINING,
        tuning_job_name="cifar100-r20261128030512ab12",
        training_job_name="cifar100-r20261128030512ab12-final",
    )
    store.create(waiting)
    store.transition(
        waiting.run_id,
        RunStatus.AWAITING_APPROVAL,
        expected={RunStatus.TRAINING},
        model_package_arn=package_arn(2),
        model_version=2,
    )
    description = package_description(2, "Approved", run_id=waiting.run_id)
    sagemaker.expect("describe_model_package", description)
    sagemaker.fail("describe_endpoint", "ValidationException", "Could not find endpoint")
    sagemaker.expect("create_model", {"ModelArn": f"{ARN}:x"})
    sagemaker.expect("create_endpoint_config", {"EndpointConfigArn": f"{ARN}:x"})
    sagemaker.fail("describe_endpoint", "ValidationException", "Could not find endpoint")
    sagemaker.expect("create_endpoint", {"EndpointArn": f"{ARN}:x"})
    outcome = handlers.model_package_state_change(model_package_event(package_arn(2)), Context())
    assert outcome["action"] == "deploying"
    assert outcome["approved_run_id"] == waiting.run_id
    deployment = store.get(outcome["run_id"])
    assert (deployment.trigger, deployment.status) == ("approval", RunStatus.DEPLOYING)
    assert deployment.model_version == 2
    assert store.get(waiting.run_id).approval_run_id == deployment.run_id
    (model,) = sagemaker.requests("CreateModel")
    assert model["PrimaryContainer"] == {"ModelPackageName": package_arn(2)}

    # The same event again: the waiting run has its deployment, nothing starts.
    sagemaker.expect("describe_model_package", description)
    again = handlers.model_package_state_change(model_package_event(package_arn(2)), Context())
    assert again["action"] == "ignored"
    assert len(sagemaker.requests("CreateModel")) == 1
    sagemaker.assert_all_used()
