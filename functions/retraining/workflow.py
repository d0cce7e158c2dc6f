"""The retraining state machine: start -> TUNING -> TRAINING -> DEPLOYING -> DEPLOYED, with
REJECTED, FAILED and ROLLED_BACK as the other ends.

Each function is one EventBridge delivery (or one API call). Delivery is at least once and
in any order, so every step: finds its run from deterministic names/tags, acts only if the
run is in the state the step expects, treats "already exists" as done, and moves the run on
with a conditional write (a lost write is a duplicate: StaleTransition -> done). Transient
AWS errors are re-raised so EventBridge retries; anything else ends the run as FAILED.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from retraining.aws_errors import error_code, error_message, is_not_found, is_retryable
from retraining.deps import Deps
from retraining.overrides import TuneOverrides
from retraining.quality_gate import decide, final_metrics
from retraining.records import (
    ACTIVE_STATUSES,
    DataMissing,
    RunAlreadyActive,
    RunRecord,
    RunStatus,
    StaleTransition,
    Trigger,
    new_run_id,
    utc_now,
)
from retraining.sagemaker import autoscaling, names, request_bodies
from retraining.sagemaker.best_job import NoBestJob, best_job, first_failure
from retraining.sagemaker.deployment import create_once, deploy
from retraining.sagemaker.events import (
    ENDPOINT_DETAIL_TYPE,
    TRAINING_DETAIL_TYPE,
    TUNING_DETAIL_TYPE,
    detail,
    normalised_status,
    tags,
)
from retraining.stuck_runs import (
    TERMINAL_JOB_STATUSES,
    age_reason,
    awaited_job,
    describe_job,
    job_status,
    missing_job_reason,
    stuck_reason,
)

log = logging.getLogger(__name__)

Outcome = dict[str, Any]


def _outcome(action: str, run_id: str | None = None, **extra: Any) -> Outcome:
    return {"action": action, "run_id": run_id, **extra}


def _fail(deps: Deps, run_id: str, reason: str) -> Outcome:
    try:
        deps.store.transition(
            run_id, RunStatus.FAILED, expected=ACTIVE_STATUSES, reason=reason, error=reason
        )
    except StaleTransition:
        return _outcome("stale", run_id)
    return _outcome("failed", run_id, reason=reason)


def _guarded(deps: Deps, run_id: str, step: Callable[[], Outcome]) -> Outcome:
    """Run one step: retryable errors propagate (EventBridge retries the event), a lost
    conditional write is a duplicate, any other error ends the run as FAILED."""
    try:
        return step()
    except StaleTransition:
        return _outcome("stale", run_id)
    except Exception as error:
        if is_retryable(error):
            raise
        log.exception("run %s failed", run_id)
        return _fail(deps, run_id, f"{type(error).__name__}: {error_message(error)}")


# -- start ----------------------------------------------------------------------------------


def start_run(trigger: Trigger, overrides: TuneOverrides, deps: Deps) -> RunRecord:
    """Take the single active slot (conditional write; RunAlreadyActive when taken), then
    start the first job: the data-preparation job when the training-data prefix is empty
    (first run after a deploy), else the tuning job. If SageMaker refuses, the run ends
    FAILED (freeing the slot) and the error propagates to the caller."""
    settings, store = deps.settings, deps.store
    overrides.check_allowed(settings.allowed_instance_types)
    run_id = new_run_id()
    champion = store.get_champion() if settings.warm_start else None
    parent = (champion or {}).get("tuning_job_name")
    data_output = _data_to_prepare(deps)
    prefix = settings.resource_prefix
    record = RunRecord(
        run_id=run_id,
        trigger=trigger,
        status=RunStatus.PREPARING_DATA if data_output else RunStatus.TUNING,
        overrides=overrides.model_dump(mode="json", exclude_none=True),
        data_job_name=names.data_job_name(prefix, run_id) if data_output else None,
        tuning_job_name=names.tuning_job_name(prefix, run_id),
        warm_start_parent=parent,
        endpoint_name=settings.endpoint_name,
    )
    try:
        run = store.create(record)
    except RunAlreadyActive as busy:
        if not _release_if_stuck(deps, busy.active_run_id):
            raise
        run = store.create(record)  # once: a concurrent start may have taken the slot
    try:
        if data_output:
            request = request_bodies.data_job_request(settings, run_id, data_output)
            create_once(deps.sagemaker.create_training_job, request)
            log.info("run %s started data job %s", run_id, run.data_job_name)
            return run
        run = _create_tuning_job(deps, run, overrides, parent)
    except Exception as error:
        _fail(deps, run_id, f"could not start {run.status.value.lower()}: {error_message(error)}")
        raise
    log.info("run %s started tuning job %s", run_id, run.tuning_job_name)
    return run


def _data_to_prepare(deps: Deps) -> str | None:
    """Where the data job must write, when the training-data prefix holds no object and the
    stack prepares data itself (PREPARE_DATA); None when there is data (or it is off)."""
    settings = deps.settings
    if not settings.prepare_data:
        return None
    bucket, _, key = settings.train_data_s3_uri.removeprefix("s3://").partition("/")
    listed = deps.s3.list_objects_v2(Bucket=bucket, Prefix=key, MaxKeys=1)
    if listed.get("KeyCount", len(listed.get("Contents", []))):
        return None
    output = request_bodies.data_location(settings)
    if output is None:
        raise DataMissing(
            f"no training data under {settings.train_data_s3_uri}, and it cannot be prepared "
            "there (TRAIN_DATA_S3_URI and TEST_DATA_S3_URI must be <prefix>/train/ and "
            "<prefix>/test/): upload it with training/prepare_data.py --output s3://..."
        )
    return output


def _create_tuning_job(
    deps: Deps, run: RunRecord, overrides: TuneOverrides, parent: str | None
) -> RunRecord:
    """CreateHyperParameterTuningJob, warm-started from ``parent`` when there is one. If
    SageMaker refuses the parent (e.g. the static hyperparameters changed since the
    champion's search), every later run would be refused too: tune from scratch instead,
    once, and say so in the run's history."""
    settings, create = deps.settings, deps.sagemaker.create_hyper_parameter_tuning_job
    request = request_bodies.tuning_job_request(settings, run.run_id, overrides, parent)
    try:
        create_once(create, request)
        return run
    except Exception as error:
        if parent is None or not _warm_start_refused(error):
            raise
        refusal = error_message(error)
    log.warning("run %s: warm start from %s refused, tuning cold: %s", run.run_id, parent, refusal)
    create_once(create, request_bodies.tuning_job_request(settings, run.run_id, overrides))
    return deps.store.transition(
        run.run_id,
        run.status,
        expected={run.status},
        reason=f"warm start from {parent} refused ({refusal}); tuning without warm start",
        warm_start_parent=None,
    )


def _warm_start_refused(error: BaseException) -> bool:
    message = error_message(error).lower()
    return error_code(error) == "ValidationException" and ("warm" in message or "parent" in message)


def _release_if_stuck(deps: Deps, run_id: str | None) -> bool:
    """End the slot's holder FAILED when it is stuck (see stuck_runs); True when it did, or
    when the holder moved on meanwhile (the slot may be free)."""
    holder = deps.store.get(run_id) if run_id else None
    if holder is None or not holder.active:
        return holder is not None
    reason = stuck_reason(holder, deps.sagemaker, deps.settings)
    if reason is None:
        return False
    _end_if(deps, holder, reason)
    return True


# -- data prepared -------------------------------------------------------------------------


def _start_tuning(deps: Deps, run: RunRecord) -> Outcome:
    overrides = TuneOverrides.model_validate(run.overrides)
    _create_tuning_job(deps, run, overrides, run.warm_start_parent)
    deps.store.transition(
        run.run_id,
        RunStatus.TUNING,
        expected={RunStatus.PREPARING_DATA},
        reason=f"data prepared by {run.data_job_name}",
    )
    return _outcome("tuning", run.run_id, tuning_job_name=run.tuning_job_name)


# -- tuning finished ------------------------------------------------------------------------


def on_tuning_job_state_change(event: dict[str, Any], deps: Deps) -> Outcome:
    body = detail(
        event, TUNING_DETAIL_TYPE, "HyperParameterTuningJobName", "HyperParameterTuningJobStatus"
    )
    name, status = body["HyperParameterTuningJobName"], body["HyperParameterTuningJobStatus"]
    prefix = deps.settings.resource_prefix
    run_id = names.run_id_from_tuning_job(prefix, name)
    if run_id is None:
        return _outcome("ignored", reason=f"{name} is not a {prefix} tuning job")
    return _on_job_finished(deps, _AWAITED[RunStatus.TUNING], run_id, name, status, body)


@dataclass(frozen=True)
class _AwaitedJob:
    """A status in which the run waits for one SageMaker job, and the step its end takes."""

    status: RunStatus
    job_field: str  # the RunRecord field naming the job
    kind: str
    proceed: Callable[[Deps, RunRecord, str], Outcome]  # (deps, run, job name)


_AWAITED = {
    awaited.status: awaited
    for awaited in (
        _AwaitedJob(
            RunStatus.PREPARING_DATA,
            "data_job_name",
            "data job",
            lambda deps, run, _: _start_tuning(deps, run),
        ),
        _AwaitedJob(
            RunStatus.TUNING,
            "tuning_job_name",
            "tuning job",
            lambda deps, run, name: _start_final_training(deps, run, name),
        ),
        _AwaitedJob(
            RunStatus.TRAINING,
            "training_job_name",
            "training job",
            lambda deps, run, name: _gate_and_deploy(deps, run, name),
        ),
    )
}


def _on_job_finished(
    deps: Deps, awaited: _AwaitedJob, run_id: str, name: str, status: str, body: dict[str, Any]
) -> Outcome:
    """What a job's state change (an event's detail or a Describe* answer) means for its
    run: nothing (unknown run, or a duplicate or late event), the run's failure, a wait, or
    the next step."""
    run = deps.store.get(run_id)
    if run is None:
        return _outcome("ignored", run_id, reason="no such run")
    if run.status is not awaited.status or getattr(run, awaited.job_field) != name:
        return _outcome("stale", run_id, status=run.status.value)
    if status in ("Failed", "Stopped"):
        reason = body.get("FailureReason") or f"{awaited.kind} {name} {status.lower()}"
        return _fail(deps, run_id, reason)
    if status != "Completed":
        return _outcome("waiting", run_id, status=status)
    return _guarded(deps, run_id, lambda: awaited.proceed(deps, run, name))


def _start_final_training(deps: Deps, run: RunRecord, tuning_job: str) -> Outcome:
    settings, sagemaker = deps.settings, deps.sagemaker
    description = sagemaker.describe_hyper_parameter_tuning_job(
        HyperParameterTuningJobName=tuning_job
    )
    try:
        best = best_job(description)
    except NoBestJob as error:
        trials = sagemaker.list_training_jobs_for_hyper_parameter_tuning_job(
            HyperParameterTuningJobName=tuning_job, StatusEquals="Failed", MaxResults=10
        ).get("TrainingJobSummaries", [])
        example = first_failure(trials)
        return _fail(deps, run.run_id, f"{error}" + (f"; e.g. {example}" if example else ""))
    overrides = TuneOverrides.model_validate(run.overrides)
    request = request_bodies.final_training_request(
        settings, run.run_id, overrides, best.hyperparameters
    )
    create_once(sagemaker.create_training_job, request)
    metrics = (
        {best.objective_metric: best.objective_value}
        if best.objective_metric and best.objective_value is not None
        else {}
    )
    deps.store.transition(
        run.run_id,
        RunStatus.TRAINING,
        expected={RunStatus.TUNING},
        reason=f"best trial {best.training_job_name}",
        training_job_name=request["TrainingJobName"],
        best_training_job_name=best.training_job_name,
        best_hyperparameters=best.hyperparameters,
        metrics=metrics,
    )
    return _outcome("training", run.run_id, training_job_name=request["TrainingJobName"])


# -- final training finished ----------------------------------------------------------------


def on_training_job_state_change(event: dict[str, Any], deps: Deps) -> Outcome:
    body = detail(event, TRAINING_DETAIL_TYPE, "TrainingJobName", "TrainingJobStatus")
    name, status = body["TrainingJobName"], body["TrainingJobStatus"]
    prefix = deps.settings.resource_prefix
    stage = tags(body).get("stage")  # both documented Tags shapes (events.tags)
    # HPO trials emit the same event: only the run's final and data jobs (name and, when
    # the event carries it, tag) go on.
    if (run_id := names.run_id_from_data_job(prefix, name)) and stage in (None, "data"):
        awaited = _AWAITED[RunStatus.PREPARING_DATA]
        return _on_job_finished(deps, awaited, run_id, name, status, body)
    run_id = names.run_id_from_final_job(prefix, name)
    if run_id is None or stage not in (None, "final"):
        return _outcome("ignored", reason=f"{name} is not a final or data training job")
    return _on_job_finished(deps, _AWAITED[RunStatus.TRAINING], run_id, name, status, body)


def _gate_and_deploy(deps: Deps, run: RunRecord, training_job: str) -> Outcome:
    settings, sagemaker, store = deps.settings, deps.sagemaker, deps.store
    description = sagemaker.describe_training_job(TrainingJobName=training_job)
    metrics = {**run.metrics, **final_metrics(description)}
    model_data_url = description["ModelArtifacts"]["S3ModelArtifacts"]
    decision = decide(
        metrics, store.get_champion(), settings.gate_min_accuracy, settings.gate_margin
    )
    if not decision.passed:
        store.transition(
            run.run_id,
            RunStatus.REJECTED,
            expected={RunStatus.TRAINING},
            reason=decision.reason,
            metrics=metrics,
            model_data_url=model_data_url,
        )
        return _outcome("rejected", run.run_id, reason=decision.reason)
    action = deploy(
        sagemaker,
        settings,
        run.run_id,
        model_data_url,
        autoscaling_client=lambda: deps.application_autoscaling,
    )
    prefix = settings.resource_prefix
    store.transition(
        run.run_id,
        RunStatus.DEPLOYING,
        expected={RunStatus.TRAINING},
        reason=f"{decision.reason}; {action}",
        metrics=metrics,
        model_data_url=model_data_url,
        model_name=names.model_name(prefix, run.run_id),
        endpoint_config_name=names.endpoint_config_name(prefix, run.run_id),
        endpoint_name=settings.endpoint_name,
    )
    return _outcome("deploying", run.run_id, detail=action)


# -- endpoint state -------------------------------------------------------------------------


def on_endpoint_state_change(event: dict[str, Any], deps: Deps) -> Outcome:
    body = detail(event, ENDPOINT_DETAIL_TYPE, "EndpointName")
    endpoint_name = body["EndpointName"]
    if endpoint_name != deps.settings.endpoint_name:
        return _outcome("ignored", reason=f"{endpoint_name} is not this stack's endpoint")
    run = _deploying_run(deps, endpoint_name)
    if run is None:
        return _outcome("ignored", reason="no run is deploying")
    return _guarded(deps, run.run_id, lambda: _settle_deployment(deps, run))


def _deploying_run(deps: Deps, endpoint_name: str) -> RunRecord | None:
    run = _active_run(deps)
    if run and run.status is RunStatus.DEPLOYING and run.endpoint_name == endpoint_name:
        return run
    return None


def _settle_deployment(deps: Deps, run: RunRecord) -> Outcome:
    """Decide from DescribeEndpoint, not from the event: events arrive late and out of order,
    and a rolled-back blue/green update also ends InService, on the old config."""
    endpoint = deps.sagemaker.describe_endpoint(EndpointName=run.endpoint_name)
    status = normalised_status(endpoint["EndpointStatus"])
    live = endpoint.get("EndpointConfigName")
    failure = endpoint.get("FailureReason")
    if status == "inservice":
        # Before the transition: a throttled registration re-raises while the run is still
        # DEPLOYING, so the retried event finds it and registers again (both calls upsert).
        # After a rollback the old variant serves under the same name: it scales too.
        scaling = _register_autoscaling(deps)
        note = f"; {scaling}" if scaling else ""
        extra = {"autoscaling": scaling} if scaling else {}
        if live == run.endpoint_config_name:
            deps.store.set_champion(_champion(run))  # first: a retry re-sets it harmlessly
            deps.store.transition(
                run.run_id,
                RunStatus.DEPLOYED,
                expected={RunStatus.DEPLOYING},
                reason=f"{run.endpoint_name} in service with {live}{note}",
            )
            return _outcome("deployed", run.run_id, **extra)
        reason = f"{run.endpoint_name} rolled back to {live}" + (f": {failure}" if failure else "")
        deps.store.transition(
            run.run_id,
            RunStatus.ROLLED_BACK,
            expected={RunStatus.DEPLOYING},
            reason=reason + note,
            error=reason,
        )
        return _outcome("rolled_back", run.run_id, reason=reason, **extra)
    if status in ("failed", "updaterollbackfailed", "outofservice"):
        return _fail(
            deps, run.run_id, failure or f"{run.endpoint_name} {endpoint['EndpointStatus']}"
        )
    return _outcome("waiting", run.run_id, status=endpoint["EndpointStatus"])


# -- reconcile (level-triggered) -------------------------------------------------------------


def reconcile(deps: Deps, now: datetime | None = None) -> Outcome:
    """Take the step the active run's lost event would have taken.

    Events are the fast path; this is the guarantee. Run on a schedule (and on demand), it
    reads the active run and SageMaker's own state (Describe*) and goes through the same
    step functions and conditional writes as the event handlers, so racing a duplicate or
    late event changes nothing: one of them wins the write, the other finds it stale.
    """
    run = _active_run(deps)
    if run is None:
        return _outcome("idle")
    now = now or datetime.now(UTC)
    if run.status is RunStatus.DEPLOYING:
        return _settle_later(deps, run, lambda: _settle_deployment(deps, run))
    awaited = awaited_job(run)
    if awaited is None:  # an active status without its job name: only the age bound helps
        return _end_if(deps, run, age_reason(run, deps.settings, now))
    kind, name = awaited
    try:
        description = describe_job(deps.sagemaker, kind, name)
    except Exception as error:
        if is_retryable(error):  # throttled, unreachable: the next tick asks again
            return _outcome("waiting", run.run_id, reason=error_message(error))
        if not is_not_found(error):
            raise  # denied, a bug: fails the invocation (dead-letter queue, alarm)
        # The process died before Create*, or the job is not visible yet.
        reason = age_reason(run, deps.settings, now) or missing_job_reason(run, kind, name, now)
        return _end_if(deps, run, reason)
    status = job_status(kind, description)
    if status not in TERMINAL_JOB_STATUSES:
        return _end_if(deps, run, age_reason(run, deps.settings, now), status=status)
    step = _AWAITED[run.status]
    return _settle_later(
        deps, run, lambda: _on_job_finished(deps, step, run.run_id, name, status, description)
    )


def _settle_later(deps: Deps, run: RunRecord, step: Callable[[], Outcome]) -> Outcome:
    """A step that cannot finish yet (the endpoint is busy, throttling) is simply taken
    again at the next reconcile: no retry budget to exhaust, nothing dead-lettered."""
    try:
        return step()
    except Exception as error:
        if not is_retryable(error):
            raise
        log.info("run %s: not yet (%s)", run.run_id, error_message(error))
        return _outcome("waiting", run.run_id, reason=error_message(error))


def _end_if(deps: Deps, run: RunRecord, reason: str | None, **extra: Any) -> Outcome:
    """End the run FAILED when there is a reason to, else report that it waits."""
    if reason is None:
        return _outcome("waiting", run.run_id, **extra)
    log.warning("run %s is stuck, ending it: %s", run.run_id, reason)
    with contextlib.suppress(StaleTransition):  # lost: it moved on by itself
        deps.store.transition(
            run.run_id, RunStatus.FAILED, expected={run.status}, reason=reason, error=reason
        )
    return _outcome("failed", run.run_id, reason=reason)


def _active_run(deps: Deps) -> RunRecord | None:
    # One active run at a time, and it is the newest: a short page is enough.
    runs, _ = deps.store.list(limit=5)
    return next((run for run in runs if run.active), None)


def _register_autoscaling(deps: Deps) -> str | None:
    """What auto-scaling registration did; None when it is off (and no client is built:
    the local stack has none)."""
    if not autoscaling.enabled(deps.settings):
        return None
    return autoscaling.register(deps.application_autoscaling, deps.settings)


def _champion(run: RunRecord) -> dict[str, Any]:
    return {
        "run_id": run.run_id,
        "model_name": run.model_name,
        "endpoint_config_name": run.endpoint_config_name,
        "tuning_job_name": run.tuning_job_name,
        "training_job_name": run.training_job_name,
        "model_data_url": run.model_data_url,
        "hyperparameters": run.best_hyperparameters,
        "metrics": run.metrics,
        "deployed_at": utc_now(),
    }
