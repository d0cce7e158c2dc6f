"""A run that can no longer make progress must not hold the single active slot forever:
start_run ends it FAILED (with the reason) and starts the new run; a run that is genuinely
active still refuses the start."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from retraining import workflow
from retraining.overrides import TuneOverrides
from retraining.records import RunAlreadyActive, RunRecord, RunStatus
from retraining.stuck_runs import worst_case_duration
from tests.support.run_flow import ARN
from tests.support.sagemaker_double import training_description, tuning_description

HOLDER = "r20261101000000aaaa"
TUNING_JOB = f"cifar100-{HOLDER}"
FINAL_JOB = f"{TUNING_JOB}-final"


def ago(age: timedelta) -> datetime:
    """``age`` before the moment of the call: a module-level "now" would be taken at collection,
    and a long suite reaches these tests many minutes later, past the GRACE they probe."""
    return datetime.now(UTC) - age


def iso(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


def holder(store, status: RunStatus, age: timedelta) -> RunRecord:
    """The slot's holder as a process that died (or lost its event) left it ``age`` ago."""
    at = iso(ago(age))
    return store.create(
        RunRecord(
            run_id=HOLDER,
            trigger="schedule",
            status=status,
            created_at=at,
            updated_at=at,
            tuning_job_name=TUNING_JOB,
            training_job_name=FINAL_JOB if status is RunStatus.TRAINING else None,
        )
    )


def start_new(deps, sagemaker):
    sagemaker.expect(
        "create_hyper_parameter_tuning_job",
        {"HyperParameterTuningJobArn": f"{ARN}:hyper-parameter-tuning-job/x"},
    )
    return workflow.start_run("api", TuneOverrides(), deps)


def tuning_job(status: str, ended_ago: timedelta | None = None) -> dict:
    response = {
        **tuning_description(TUNING_JOB, best=None),
        "HyperParameterTuningJobStatus": status,
    }
    if ended_ago is not None:
        response["HyperParameterTuningEndTime"] = ago(ended_ago)
    return response


def test_worst_case_duration_counts_tuning_waves_final_job_and_deployment(settings):
    # 8 trials, 2 at a time: 4 waves + the final job, 4 h each, + 1 h to deploy.
    assert worst_case_duration(settings, {}) == timedelta(hours=21)
    assert worst_case_duration(settings, {"max_jobs": 3, "max_parallel_jobs": 3}) == timedelta(
        hours=9
    )


def test_run_older_than_the_worst_case_is_failed_and_the_start_goes_on(deps, sagemaker, store):
    holder(store, RunStatus.TUNING, age=timedelta(hours=22))
    run = start_new(deps, sagemaker)
    assert store.get(run.run_id).status is RunStatus.TUNING
    stuck = store.get(HOLDER)
    assert stuck.status is RunStatus.FAILED
    assert stuck.error.startswith("no progress since ")
    assert "worst-case run duration of 21:00:00" in stuck.error
    assert sagemaker.operations() == ["CreateHyperParameterTuningJob"]  # age alone decides


def test_tuning_job_failed_without_its_event_frees_the_slot(deps, sagemaker, store):
    holder(store, RunStatus.TUNING, age=timedelta(hours=3))
    sagemaker.expect(
        "describe_hyper_parameter_tuning_job", tuning_job("Failed", timedelta(hours=1))
    )
    run = start_new(deps, sagemaker)
    assert store.get(run.run_id).status is RunStatus.TUNING
    error = store.get(HOLDER).error
    assert error.startswith(f"tuning job {TUNING_JOB} is Failed but no event arrived since ")
    assert sagemaker.requests("DescribeHyperParameterTuningJob") == [
        {"HyperParameterTuningJobName": TUNING_JOB}
    ]


def test_tuning_job_never_created_frees_the_slot(deps, sagemaker, store):
    # The process died between taking the slot and CreateHyperParameterTuningJob.
    holder(store, RunStatus.TUNING, age=timedelta(minutes=30))
    sagemaker.fail(
        "describe_hyper_parameter_tuning_job",
        "ResourceNotFound",
        f"Amazon SageMaker can't find a tuning job with name {TUNING_JOB}",
    )
    start_new(deps, sagemaker)
    assert store.get(HOLDER).error == (
        f"tuning job {TUNING_JOB} does not exist but the run is TUNING"
    )


def test_final_training_job_completed_without_its_event_frees_the_slot(deps, sagemaker, store):
    holder(store, RunStatus.TRAINING, age=timedelta(hours=5))
    finished = {
        **training_description(FINAL_JOB, HOLDER, test_acc=0.7),
        "TrainingEndTime": ago(timedelta(hours=2)),
    }
    sagemaker.expect("describe_training_job", finished)
    start_new(deps, sagemaker)
    assert store.get(HOLDER).status is RunStatus.FAILED
    assert f"training job {FINAL_JOB} is Completed but no event arrived" in store.get(HOLDER).error


@pytest.mark.parametrize(
    ("status", "ended_ago"),
    [
        pytest.param("InProgress", None, id="job-in-progress"),
        # Just finished: its event may be being handled right now.
        pytest.param("Completed", timedelta(minutes=2), id="event-in-flight"),
    ],
)
def test_genuinely_active_run_still_refuses_the_start(deps, sagemaker, store, status, ended_ago):
    holder(store, RunStatus.TUNING, age=timedelta(hours=3))
    sagemaker.expect("describe_hyper_parameter_tuning_job", tuning_job(status, ended_ago))
    with pytest.raises(RunAlreadyActive) as refused:
        workflow.start_run("api", TuneOverrides(), deps)
    assert refused.value.active_run_id == HOLDER
    assert store.get(HOLDER).status is RunStatus.TUNING
    assert sagemaker.requests("CreateHyperParameterTuningJob") == []


def test_describe_failing_keeps_refusing(deps, sagemaker, store):
    holder(store, RunStatus.TUNING, age=timedelta(hours=3))
    sagemaker.fail("describe_hyper_parameter_tuning_job", "ThrottlingException", "Rate exceeded")
    with pytest.raises(RunAlreadyActive):
        workflow.start_run("api", TuneOverrides(), deps)
    assert store.get(HOLDER).status is RunStatus.TUNING


def test_just_taken_slot_is_not_described(deps, sagemaker, store):
    # CreateHyperParameterTuningJob of a concurrent start may be milliseconds away.
    holder(store, RunStatus.TUNING, age=timedelta(seconds=5))
    with pytest.raises(RunAlreadyActive):
        workflow.start_run("api", TuneOverrides(), deps)
    assert sagemaker.calls == []
