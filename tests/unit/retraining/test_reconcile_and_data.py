"""Convergence without events (workflow.reconcile) and the first run's data preparation.

SageMaker answers through a Stubber (every request validated against the service model);
S3 is moto. The reconciler must take exactly the step the lost event would have taken,
through the same conditional writes, so a duplicate event racing it changes nothing.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from retraining import workflow
from retraining.deps import Deps
from retraining.overrides import TuneOverrides
from retraining.records import DataMissing, RunRecord, RunStatus
from retraining.stores.memory import InMemoryRunStore
from tests.support.run_flow import ARN, best_trial, expect_registration, final_job, start
from tests.support.sagemaker_double import (
    ACCOUNT,
    RecordingSageMaker,
    endpoint_description,
    load_event,
    make_settings,
    training_description,
    tuning_description,
    wire,
)

BUCKET = "cifar100-artifacts"


def _in_progress(description: dict[str, Any], key: str) -> dict[str, Any]:
    return {**description, key: "InProgress"}


def _training_in_progress(name: str, run_id: str) -> dict[str, Any]:
    return _in_progress(training_description(name, run_id, None), "TrainingJobStatus")


def _later(minutes: int) -> datetime:
    return datetime.now(UTC) + timedelta(minutes=minutes)


# -- every event lost -----------------------------------------------------------------------


def test_a_run_whose_events_are_all_lost_reaches_deployed_through_reconcile_alone(
    deps: Deps, sagemaker: RecordingSageMaker, store: InMemoryRunStore
) -> None:
    run = start(deps, sagemaker)
    tuning = run.tuning_job_name
    # Tuning still running: nothing to do.
    sagemaker.expect(
        "describe_hyper_parameter_tuning_job",
        _in_progress(tuning_description(tuning, best_trial(run)), "HyperParameterTuningJobStatus"),
    )
    assert workflow.reconcile(deps)["action"] == "waiting"
    # Tuning finished (its event lost): best trial -> final training job.
    description = tuning_description(tuning, best=best_trial(run))
    sagemaker.expect("describe_hyper_parameter_tuning_job", description)
    sagemaker.expect("describe_hyper_parameter_tuning_job", description)
    sagemaker.expect("create_training_job", {"TrainingJobArn": f"{ARN}:training-job/x"})
    assert workflow.reconcile(deps)["action"] == "training"
    # Final job running, then finished (event lost): gate, model, config, first endpoint.
    sagemaker.expect("describe_training_job", _training_in_progress(final_job(run), run.run_id))
    assert workflow.reconcile(deps) == {
        "action": "waiting",
        "run_id": run.run_id,
        "status": "InProgress",
    }
    finished = training_description(final_job(run), run.run_id, 0.71)
    sagemaker.expect("describe_training_job", finished)
    sagemaker.expect("describe_training_job", finished)
    expect_registration(sagemaker, run)
    sagemaker.expect("create_model", {"ModelArn": f"{ARN}:model/x"})
    sagemaker.expect("create_endpoint_config", {"EndpointConfigArn": f"{ARN}:endpoint-config/x"})
    sagemaker.fail("describe_endpoint", "ValidationException", 'Could not find endpoint "x".')
    sagemaker.expect("create_endpoint", {"EndpointArn": f"{ARN}:endpoint/cifar100-classifier"})
    assert workflow.reconcile(deps)["action"] == "deploying"
    # Endpoint creating, then in service (events lost).
    config = store.get(run.run_id).endpoint_config_name
    sagemaker.expect("describe_endpoint", endpoint_description("Creating", config))
    assert workflow.reconcile(deps)["action"] == "waiting"
    sagemaker.expect("describe_endpoint", endpoint_description("InService", config))
    assert workflow.reconcile(deps)["action"] == "deployed"

    final = store.get(run.run_id)
    assert final.status is RunStatus.DEPLOYED
    assert [c.status for c in final.history] == [
        RunStatus.TUNING,
        RunStatus.TRAINING,
        RunStatus.DEPLOYING,
        RunStatus.DEPLOYED,
    ]
    assert store.get_champion()["run_id"] == run.run_id
    assert workflow.reconcile(deps) == {"action": "idle", "run_id": None}
    sagemaker.assert_all_used()


def test_a_busy_endpoint_keeps_the_run_waiting_not_failed_until_it_settles(
    deps: Deps, sagemaker: RecordingSageMaker, store: InMemoryRunStore
) -> None:
    """Lambda retries a failed asynchronous invocation at most twice (about 3 minutes in
    all): an endpoint Updating for longer dead-letters the event. The reconciler asks again
    at every tick, for as long as the endpoint stays busy."""
    run = _training_run(deps, sagemaker, store)
    finished = training_description(final_job(run), run.run_id, 0.71)
    for _ in range(3):  # three ticks: the endpoint is still updating (someone else's update)
        sagemaker.expect("describe_training_job", finished)
        sagemaker.expect("describe_training_job", finished)
        expect_registration(sagemaker, run)  # the same version again: same ClientToken
        sagemaker.expect("create_model", {"ModelArn": f"{ARN}:model/x"})
        sagemaker.expect("create_endpoint_config", {"EndpointConfigArn": f"{ARN}:c/x"})
        sagemaker.expect("describe_endpoint", endpoint_description("Updating", "older-config"))
        outcome = workflow.reconcile(deps)
        assert outcome["action"] == "waiting"
        assert "Updating" in outcome["reason"]
        assert store.get(run.run_id).status is RunStatus.TRAINING
    sagemaker.expect("describe_training_job", finished)
    sagemaker.expect("describe_training_job", finished)
    expect_registration(sagemaker, run)
    sagemaker.fail("create_model", "ValidationException", "Cannot create already existing model")
    sagemaker.fail(
        "create_endpoint_config", "ValidationException", "Cannot create already existing"
    )
    sagemaker.expect("describe_endpoint", endpoint_description("InService", "older-config"))
    sagemaker.expect("update_endpoint", {"EndpointArn": f"{ARN}:endpoint/cifar100-classifier"})
    assert workflow.reconcile(deps)["action"] == "deploying"
    assert store.get(run.run_id).status is RunStatus.DEPLOYING
    # Four registrations of one run: one ClientToken, one version.
    tokens = {r["ClientToken"] for r in sagemaker.requests("CreateModelPackage")}
    assert tokens == {run.run_id}
    assert store.get(run.run_id).model_version == 1
    sagemaker.assert_all_used()


def _training_run(deps: Deps, sagemaker: RecordingSageMaker, store: InMemoryRunStore) -> RunRecord:
    run = start(deps, sagemaker)
    sagemaker.expect(
        "describe_hyper_parameter_tuning_job",
        tuning_description(run.tuning_job_name, best=best_trial(run)),
    )
    sagemaker.expect("create_training_job", {"TrainingJobArn": f"{ARN}:training-job/x"})
    workflow.on_tuning_job_state_change(load_event("tuning_job_completed.json", run.run_id), deps)
    return store.get(run.run_id)


# -- racing a duplicate event ---------------------------------------------------------------


class _StaleReads:
    """A run store whose next reads return a snapshot taken before an event's write: the
    reconciler read the run, then the event handler moved it on, then the reconciler acts."""

    def __init__(self, store: InMemoryRunStore, snapshot: RunRecord, reads: int) -> None:
        self._store, self._snapshot, self._reads = store, snapshot, reads

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    def _stale(self) -> bool:
        self._reads -= 1
        return self._reads >= 0

    def list(self, **kwargs: Any) -> Any:
        return ([self._snapshot], None) if self._stale() else self._store.list(**kwargs)

    def get(self, run_id: str) -> RunRecord | None:
        return self._snapshot if self._stale() else self._store.get(run_id)


def test_reconcile_racing_the_event_it_replaces_changes_nothing(
    deps: Deps, sagemaker: RecordingSageMaker, store: InMemoryRunStore, settings: Any
) -> None:
    run = start(deps, sagemaker)
    before = store.get(run.run_id)
    # The (late) event wins: final training started, run TRAINING.
    after = _finish_tuning_by_event(deps, sagemaker, store, run)
    # The reconciler read the run while it was TUNING and now takes the same step.
    racing = wire(settings, sagemaker, _StaleReads(store, before, reads=2))
    description = tuning_description(run.tuning_job_name, best=best_trial(run))
    sagemaker.expect("describe_hyper_parameter_tuning_job", description)
    sagemaker.expect("describe_hyper_parameter_tuning_job", description)
    sagemaker.fail("create_training_job", "ResourceInUse", "Training job names must be unique")
    assert workflow.reconcile(racing) == {"action": "stale", "run_id": run.run_id}
    assert store.get(run.run_id) == after  # same status, same history, same fields
    sagemaker.assert_all_used()


def test_a_duplicate_event_after_reconcile_moved_the_run_on_changes_nothing(
    deps: Deps, sagemaker: RecordingSageMaker, store: InMemoryRunStore
) -> None:
    run = start(deps, sagemaker)
    description = tuning_description(run.tuning_job_name, best=best_trial(run))
    sagemaker.expect("describe_hyper_parameter_tuning_job", description)
    sagemaker.expect("describe_hyper_parameter_tuning_job", description)
    sagemaker.expect("create_training_job", {"TrainingJobArn": f"{ARN}:training-job/x"})
    assert workflow.reconcile(deps)["action"] == "training"
    after = store.get(run.run_id)
    calls = len(sagemaker.calls)
    event = load_event("tuning_job_completed.json", run.run_id)
    assert workflow.on_tuning_job_state_change(event, deps)["action"] == "stale"
    assert len(sagemaker.calls) == calls  # not even a Describe
    assert store.get(run.run_id) == after


def _finish_tuning_by_event(
    deps: Deps, sagemaker: RecordingSageMaker, store: InMemoryRunStore, run: RunRecord
) -> RunRecord:
    sagemaker.expect(
        "describe_hyper_parameter_tuning_job",
        tuning_description(run.tuning_job_name, best=best_trial(run)),
    )
    sagemaker.expect("create_training_job", {"TrainingJobArn": f"{ARN}:training-job/x"})
    event = load_event("tuning_job_completed.json", run.run_id)
    assert workflow.on_tuning_job_state_change(event, deps)["action"] == "training"
    return store.get(run.run_id)


# -- runs that cannot progress --------------------------------------------------------------


def test_a_tuning_job_that_was_never_created_ends_the_run_after_the_grace_period(
    deps: Deps, sagemaker: RecordingSageMaker, store: InMemoryRunStore
) -> None:
    run = start(deps, sagemaker)
    missing = "Amazon SageMaker can't find a tuning job with name x"
    sagemaker.fail("describe_hyper_parameter_tuning_job", "ResourceNotFound", missing)
    assert workflow.reconcile(deps)["action"] == "waiting"  # may not be visible yet
    sagemaker.fail("describe_hyper_parameter_tuning_job", "ResourceNotFound", missing)
    outcome = workflow.reconcile(deps, now=_later(16))
    assert outcome["action"] == "failed"
    assert "does not exist" in outcome["reason"]
    assert store.get(run.run_id).status is RunStatus.FAILED


def test_a_job_running_past_the_worst_case_duration_ends_the_run(
    deps: Deps, sagemaker: RecordingSageMaker, store: InMemoryRunStore
) -> None:
    run = start(deps, sagemaker)
    sagemaker.expect(
        "describe_hyper_parameter_tuning_job",
        _in_progress(
            tuning_description(run.tuning_job_name, None), "HyperParameterTuningJobStatus"
        ),
    )
    outcome = workflow.reconcile(deps, now=_later(60 * 24 * 7))
    assert outcome["action"] == "failed"
    assert "worst-case run duration" in outcome["reason"]


def test_throttling_waits_for_the_next_tick_and_moves_nothing(
    deps: Deps, sagemaker: RecordingSageMaker, store: InMemoryRunStore
) -> None:
    """Not raised: a failed tick would go to the dead-letter queue and page someone for a
    throttle the next tick gets past."""
    run = start(deps, sagemaker)
    sagemaker.fail("describe_hyper_parameter_tuning_job", "ThrottlingException", "Rate", 400)
    assert workflow.reconcile(deps) == {"action": "waiting", "run_id": run.run_id, "reason": "Rate"}
    assert store.get(run.run_id).status is RunStatus.TUNING


def test_a_denied_describe_fails_the_tick_loudly_and_moves_nothing(
    deps: Deps, sagemaker: RecordingSageMaker, store: InMemoryRunStore
) -> None:
    run = start(deps, sagemaker)
    sagemaker.fail("describe_hyper_parameter_tuning_job", "AccessDeniedException", "no", 400)
    with pytest.raises(ClientError, match="AccessDeniedException"):
        workflow.reconcile(deps)
    assert store.get(run.run_id).status is RunStatus.TUNING


# -- the first run prepares its data --------------------------------------------------------


@pytest.fixture
def s3() -> Iterator[Any]:
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        yield client


@pytest.fixture
def data_deps(sagemaker: RecordingSageMaker, store: InMemoryRunStore, s3: Any) -> Deps:
    return wire(make_settings(prepare_data=True), sagemaker, store, s3)


def _start_with_data_job(deps: Deps, sagemaker: RecordingSageMaker) -> RunRecord:
    sagemaker.expect("create_training_job", {"TrainingJobArn": f"{ARN}:training-job/x"})
    return workflow.start_run("api", TuneOverrides(), deps)


def test_an_empty_data_prefix_starts_a_data_job_first(
    data_deps: Deps, sagemaker: RecordingSageMaker, store: InMemoryRunStore
) -> None:
    run = _start_with_data_job(data_deps, sagemaker)
    assert run.status is RunStatus.PREPARING_DATA
    assert run.data_job_name == f"cifar100-{run.run_id}-data"
    (request,) = sagemaker.requests("CreateTrainingJob")
    assert request["TrainingJobName"] == run.data_job_name
    assert request["HyperParameters"] == {
        "output": f"s3://{BUCKET}/data",  # prepare_data.py fills data/train and data/test
        "layout": "cifar",
        "sagemaker_program": "prepare_data.py",
        "sagemaker_submit_directory": "s3://cifar100-artifacts/source/training/sourcedir.tar.gz",
        "sagemaker_region": "us-east-1",
    }
    assert request["RoleArn"] == f"arn:aws:iam::{ACCOUNT}:role/cifar100-sagemaker"
    assert {"Key": "stage", "Value": "data"} in request["Tags"]
    assert "create_hyper_parameter_tuning_job" not in sagemaker.operations()

    # Its completion event (Tags as a list of Key/Value) starts the tuning job.
    sagemaker.expect(
        "create_hyper_parameter_tuning_job",
        {"HyperParameterTuningJobArn": f"{ARN}:hyper-parameter-tuning-job/x"},
    )
    event = load_event("training_job_data_completed_list_tags.json", run.run_id)
    assert workflow.on_training_job_state_change(event, data_deps)["action"] == "tuning"
    tuned = store.get(run.run_id)
    assert tuned.status is RunStatus.TUNING
    assert [c.status for c in tuned.history] == [RunStatus.PREPARING_DATA, RunStatus.TUNING]
    assert tuned.history[-1].reason == f"data prepared by {run.data_job_name}"
    # A duplicate of that event changes nothing.
    assert workflow.on_training_job_state_change(event, data_deps)["action"] == "stale"
    sagemaker.assert_all_used()


def test_a_lost_data_job_event_is_taken_by_reconcile(
    data_deps: Deps, sagemaker: RecordingSageMaker, store: InMemoryRunStore
) -> None:
    run = _start_with_data_job(data_deps, sagemaker)
    name = run.data_job_name
    sagemaker.expect("describe_training_job", _training_in_progress(name, run.run_id))
    assert workflow.reconcile(data_deps)["action"] == "waiting"
    sagemaker.expect("describe_training_job", training_description(name, run.run_id, None))
    sagemaker.expect(
        "create_hyper_parameter_tuning_job",
        {"HyperParameterTuningJobArn": f"{ARN}:hyper-parameter-tuning-job/x"},
    )
    assert workflow.reconcile(data_deps)["action"] == "tuning"
    assert store.get(run.run_id).status is RunStatus.TUNING


def test_a_failed_data_job_ends_the_run_with_its_reason(
    data_deps: Deps, sagemaker: RecordingSageMaker, store: InMemoryRunStore
) -> None:
    run = _start_with_data_job(data_deps, sagemaker)
    event = load_event("training_job_data_completed_list_tags.json", run.run_id)
    event["detail"]["TrainingJobStatus"] = "Failed"
    event["detail"]["FailureReason"] = "AlgorithmError: could not download CIFAR-100"
    assert workflow.on_training_job_state_change(event, data_deps)["action"] == "failed"
    failed = store.get(run.run_id)
    assert failed.status is RunStatus.FAILED
    assert failed.error == "AlgorithmError: could not download CIFAR-100"


def test_data_present_goes_straight_to_tuning(
    data_deps: Deps, sagemaker: RecordingSageMaker, s3: Any
) -> None:
    s3.put_object(Bucket=BUCKET, Key="data/train/cifar-100-python/train", Body=b"x")
    run = start(data_deps, sagemaker)
    assert run.status is RunStatus.TUNING
    assert run.data_job_name is None
    assert sagemaker.operations() == ["CreateHyperParameterTuningJob"]


def test_data_that_cannot_be_prepared_in_place_is_refused_before_a_run_exists(
    sagemaker: RecordingSageMaker, store: InMemoryRunStore, s3: Any
) -> None:
    settings = make_settings(
        prepare_data=True,
        train_data_s3_uri=f"s3://{BUCKET}/mine/training/",
        test_data_s3_uri=f"s3://{BUCKET}/mine/eval/",
    )
    deps = Deps(
        settings_factory=lambda: settings,
        sagemaker_factory=lambda: sagemaker.client,
        sagemaker_runtime_factory=lambda: None,
        store_factory=lambda: store,
        s3_factory=lambda: s3,
    )
    with pytest.raises(DataMissing, match=r"prepare_data\.py"):
        workflow.start_run("api", TuneOverrides(), deps)
    assert store.list(limit=5)[0] == []
    assert sagemaker.operations() == []


# -- the Tags field's two documented shapes -------------------------------------------------


@pytest.mark.parametrize("shape", ["map", "list"])
def test_final_job_events_are_handled_whatever_the_tags_shape(
    deps: Deps, sagemaker: RecordingSageMaker, store: InMemoryRunStore, shape: str
) -> None:
    run = _training_run(deps, sagemaker, store)
    event = load_event("training_job_final_completed.json", run.run_id)
    if shape == "list":
        tags = event["detail"]["Tags"]
        event["detail"]["Tags"] = [{"Key": k, "Value": v} for k, v in tags.items()]
    sagemaker.expect("describe_training_job", training_description(final_job(run), run.run_id, 0.2))
    expect_registration(sagemaker, run, approval="Rejected")
    assert workflow.on_training_job_state_change(event, deps)["action"] == "rejected"
    # An HPO trial's event, in the same shape, is never taken for the final job.
    trial = json.loads(json.dumps(event))
    trial["detail"]["TrainingJobName"] = best_trial(run)
    assert workflow.on_training_job_state_change(trial, deps)["action"] == "ignored"


def test_a_missing_training_job_in_either_documented_error_shape_is_not_found(
    data_deps: Deps, sagemaker: RecordingSageMaker, store: InMemoryRunStore
) -> None:
    """The service model gives DescribeTrainingJob a ResourceNotFound error; the service has
    been seen answering ValidationException "Requested resource not found." instead
    (docs/aws-behaviour.md). Both mean "not there": the run waits, then ends after GRACE."""
    run = _start_with_data_job(data_deps, sagemaker)
    sagemaker.fail("describe_training_job", "ValidationException", "Requested resource not found.")
    assert workflow.reconcile(data_deps)["action"] == "waiting"
    sagemaker.fail("describe_training_job", "ResourceNotFound", "Training job not found")
    outcome = workflow.reconcile(data_deps, now=_later(16))
    assert outcome["action"] == "failed"
    assert f"training job {run.data_job_name} does not exist" in outcome["reason"]
    assert store.get(run.run_id).status is RunStatus.FAILED
