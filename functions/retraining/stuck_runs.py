"""Is the run holding the active slot stuck?

A run could hold the single active slot forever when the process died between taking it
and the first Create* call, or when a job never ends: every later POST /jobs/tune would
answer 409 and every schedule tick skip. ``workflow.reconcile`` ends such a run FAILED
(:func:`age_reason`, :func:`missing_job_reason`), and ``start_run`` asks
:func:`stuck_reason` about the holder before refusing.
"""

from __future__ import annotations

import logging
import math
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.exceptions import ClientError

from retraining.aws_errors import is_not_found
from retraining.records import RunRecord, RunStatus
from retraining.settings import Settings

#: CreateModel/CreateEndpointConfig/CreateEndpoint or a blue/green update (with canary wait
#: and termination wait) comfortably fit in this.
DEPLOYMENT_ALLOWANCE = timedelta(hours=1)
#: How long a finished job's event, or a just-taken slot's CreateHyperParameterTuningJob, may
#: be in flight before its run counts as stuck (a delivery being processed is not stuck).
GRACE = timedelta(minutes=15)

log = logging.getLogger(__name__)

#: TrainingJobStatus / HyperParameterTuningJobStatus values after which nothing changes
#: (the service model's enums; both spell them the same).
TERMINAL_JOB_STATUSES = frozenset({"Completed", "Failed", "Stopped"})


def worst_case_duration(settings: Settings, overrides: dict[str, Any]) -> timedelta:
    """The longest a run can legitimately take: every tuning wave at the job time limit,
    the final job at the limit, then the deployment."""
    max_jobs = overrides.get("max_jobs") or settings.max_jobs
    parallel = overrides.get("max_parallel_jobs") or settings.max_parallel_jobs
    job_s = settings.spot_max_wait_s if settings.spot_training else settings.max_runtime_s
    waves = math.ceil(max_jobs / parallel)
    data_s = settings.data_max_runtime_s if settings.prepare_data else 0
    return timedelta(seconds=(waves + 1) * job_s + data_s) + DEPLOYMENT_ALLOWANCE


def age_reason(run: RunRecord, settings: Settings, now: datetime) -> str | None:
    """Why ``run`` is stuck by age alone: older than any legitimate run."""
    bound = worst_case_duration(settings, run.overrides)
    if now - _parse(run.created_at) > bound:
        return (
            f"no progress since {run.updated_at}: still {run.status.value} after the "
            f"worst-case run duration of {bound}"
        )
    return None


def missing_job_reason(run: RunRecord, kind: str, name: str, now: datetime) -> str | None:
    """Why ``run`` is stuck when the job it waits for does not exist: past GRACE, its
    Create* call never happened (a job created a moment ago may not be visible yet)."""
    if now - _parse(run.updated_at) <= GRACE:
        return None
    return f"{kind} {name} does not exist but the run is {run.status.value}"


def stuck_reason(
    run: RunRecord, sagemaker: Any, settings: Settings, now: datetime | None = None
) -> str | None:
    """Why ``run`` (active) is stuck, or None when it may still be making progress."""
    now = now or datetime.now(UTC)
    if reason := age_reason(run, settings, now):
        return reason
    awaited = awaited_job(run)
    if awaited is None or now - _parse(run.updated_at) <= GRACE:  # a delivery may be in flight
        return None
    kind, name = awaited
    try:
        found = describe_job(sagemaker, kind, name)
    except Exception as error:
        if isinstance(error, ClientError) and is_not_found(error):
            return missing_job_reason(run, kind, name, now)
        log.warning("could not describe %s %s: %s", kind, name, error)
        return None  # throttled, denied, unreachable: do not guess, keep refusing
    status, ended = job_status(kind, found), job_end(kind, found)
    if status in TERMINAL_JOB_STATUSES and ended is not None and now - ended > GRACE:
        return f"{kind} {name} is {status} but no event arrived since {ended:%Y-%m-%dT%H:%M:%SZ}"
    return None


def awaited_job(run: RunRecord) -> tuple[str, str] | None:
    """The SageMaker job whose state-change event the run waits for (none while DEPLOYING:
    the age bound covers it)."""
    if run.status is RunStatus.PREPARING_DATA and run.data_job_name:
        return "training job", run.data_job_name
    if run.status is RunStatus.TUNING and run.tuning_job_name:
        return "tuning job", run.tuning_job_name
    if run.status is RunStatus.TRAINING and run.training_job_name:
        return "training job", run.training_job_name
    return None


def describe_job(sagemaker: Any, kind: str, name: str) -> dict[str, Any]:
    found: dict[str, Any]
    if kind == "tuning job":
        found = sagemaker.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=name)
    else:
        found = sagemaker.describe_training_job(TrainingJobName=name)
    return found


def job_status(kind: str, found: dict[str, Any]) -> str:
    key = "HyperParameterTuningJobStatus" if kind == "tuning job" else "TrainingJobStatus"
    return str(found[key])


def job_end(kind: str, found: dict[str, Any]) -> datetime | None:
    key = "HyperParameterTuningEndTime" if kind == "tuning job" else "TrainingEndTime"
    return found.get(key) or found.get("LastModifiedTime")


def _parse(timestamp: str) -> datetime:
    return datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
