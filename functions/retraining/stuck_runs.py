"""Is the run holding the active slot stuck?

A run can hold the single active slot forever when the process died between taking it and
CreateHyperParameterTuningJob, or when the state-change event that would move it on was
dead-lettered: every later POST /jobs/tune answers 409 and every schedule tick skips.
``start_run`` asks :func:`stuck_reason` about the holder before refusing, and ends a stuck
holder FAILED with the reason.
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

_TERMINAL_JOB_STATUSES = {"Completed", "Failed", "Stopped"}


def worst_case_duration(settings: Settings, overrides: dict[str, Any]) -> timedelta:
    """The longest a run can legitimately take: every tuning wave at the job time limit,
    the final job at the limit, then the deployment."""
    max_jobs = overrides.get("max_jobs") or settings.max_jobs
    parallel = overrides.get("max_parallel_jobs") or settings.max_parallel_jobs
    job_s = settings.spot_max_wait_s if settings.spot_training else settings.max_runtime_s
    waves = math.ceil(max_jobs / parallel)
    return timedelta(seconds=(waves + 1) * job_s) + DEPLOYMENT_ALLOWANCE


def stuck_reason(
    run: RunRecord, sagemaker: Any, settings: Settings, now: datetime | None = None
) -> str | None:
    """Why ``run`` (active) is stuck, or None when it may still be making progress."""
    now = now or datetime.now(UTC)
    created, updated = _parse(run.created_at), _parse(run.updated_at)
    bound = worst_case_duration(settings, run.overrides)
    if now - created > bound:
        return (
            f"no progress since {run.updated_at}: still {run.status.value} after the "
            f"worst-case run duration of {bound}"
        )
    awaited = _awaited_job(run)
    if awaited is None or now - updated <= GRACE:  # a delivery may be in flight
        return None
    kind, name = awaited
    try:
        status, ended = _describe(sagemaker, kind, name)
    except Exception as error:
        if isinstance(error, ClientError) and is_not_found(error):
            return f"{kind} {name} does not exist but the run is {run.status.value}"
        log.warning("could not describe %s %s: %s", kind, name, error)
        return None  # throttled, denied, unreachable: do not guess, keep refusing
    if status in _TERMINAL_JOB_STATUSES and ended is not None and now - ended > GRACE:
        return f"{kind} {name} is {status} but no event arrived since {ended:%Y-%m-%dT%H:%M:%SZ}"
    return None


def _awaited_job(run: RunRecord) -> tuple[str, str] | None:
    """The SageMaker job whose state-change event the run waits for (none while DEPLOYING:
    the age bound covers it)."""
    if run.status is RunStatus.TUNING and run.tuning_job_name:
        return "tuning job", run.tuning_job_name
    if run.status is RunStatus.TRAINING and run.training_job_name:
        return "training job", run.training_job_name
    return None


def _describe(sagemaker: Any, kind: str, name: str) -> tuple[str, datetime | None]:
    """(status, end time) of the job."""
    if kind == "tuning job":
        found = sagemaker.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=name)
        status = found["HyperParameterTuningJobStatus"]
        ended = found.get("HyperParameterTuningEndTime")
    else:
        found = sagemaker.describe_training_job(TrainingJobName=name)
        status, ended = found["TrainingJobStatus"], found.get("TrainingEndTime")
    return status, ended or found.get("LastModifiedTime")


def _parse(timestamp: str) -> datetime:
    return datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
