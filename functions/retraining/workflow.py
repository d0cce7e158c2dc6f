"""The retraining state machine: start -> [PREPARING_DATA ->] TUNING -> TRAINING -> DEPLOYING
-> DEPLOYED, with REJECTED, AWAITING_APPROVAL, FAILED and ROLLED_BACK as the other ends. A
promotion (or an approval in the registry) is a run that starts at DEPLOYING.

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

from retraining.aws_errors import (
    RetryLater,
    error_code,
    error_message,
    is_not_found,
    is_retryable,
)
from retraining.deps import Deps
from retraining.overrides import TuneOverrides
from retraining.quality_gate import MissingMetric, decide, final_metrics
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
from retraining.sagemaker import autoscaling, names, registry, request_bodies
from retraining.sagemaker.best_job import NoBestJob, best_job, first_failure
from retraining.sagemaker.deployment import check_updatable, create_once, deploy
from retraining.sagemaker.events import (
    ENDPOINT_DETAIL_TYPE,
    MODEL_PACKAGE_DETAIL_TYPE,
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
    champion = deps.store.get_champion() or {}
    champion_url = champion.get("model_data_url")  # None: the first model, nothing to beat
    request = request_bodies.final_training_request(
        settings, run.run_id, overrides, best.hyperparameters, champion_url
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
        champion_model_data_url=champion_url,
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
    """Register the final model, let the gate decide its approval status, and deploy it
    from the registry when approved (or leave it for a person, MODEL_APPROVAL=manual).
    Every call is idempotent, so a redelivered event repeats them harmlessly."""
    settings, sagemaker, store = deps.settings, deps.sagemaker, deps.store
    description = sagemaker.describe_training_job(TrainingJobName=training_job)
    metrics = {**run.metrics, **final_metrics(description)}
    run = run.model_copy(update={"metrics": metrics})
    statistics = registry.statistics_uri(settings, run.run_id)
    registry.write_statistics(
        deps.s3, statistics, registry.statistics_document(run, description, metrics)
    )
    package_arn = registry.register(
        sagemaker, registry.package_request(settings, run, description, metrics)
    )
    version = registry.version_of(package_arn)
    registered = {
        "metrics": metrics,
        "model_data_url": description["ModelArtifacts"]["S3ModelArtifacts"],
        "model_package_arn": package_arn,
        "model_version": version,
    }
    try:
        decision = decide(
            metrics,
            run.champion_model_data_url is not None,
            settings.gate_min_accuracy,
            settings.gate_margin,
            settings.gate_significance,
        )
    except MissingMetric as missing:
        registry.set_approval(sagemaker, package_arn, "Rejected", str(missing))
        raise
    if not decision.passed:
        registry.set_approval(sagemaker, package_arn, "Rejected", decision.reason)
        store.transition(
            run.run_id,
            RunStatus.REJECTED,
            expected={RunStatus.TRAINING},
            reason=f"version {version} rejected: {decision.reason}",
            **registered,
        )
        return _outcome("rejected", run.run_id, reason=decision.reason, model_version=version)
    if settings.model_approval == "manual":
        store.transition(
            run.run_id,
            RunStatus.AWAITING_APPROVAL,
            expected={RunStatus.TRAINING},
            reason=f"{decision.reason}; version {version} awaits approval in the registry",
            **registered,
        )
        return _outcome("awaiting_approval", run.run_id, model_version=version)
    registry.set_approval(sagemaker, package_arn, "Approved", decision.reason)
    action = deploy(
        sagemaker,
        settings,
        run.run_id,
        package_arn,
        autoscaling_client=lambda: deps.application_autoscaling,
    )
    store.transition(
        run.run_id,
        RunStatus.DEPLOYING,
        expected={RunStatus.TRAINING},
        reason=f"version {version}: {decision.reason}; {action}",
        **registered,
        **_deployment_names(deps, run.run_id),
    )
    return _outcome("deploying", run.run_id, detail=action, model_version=version)


def _deployment_names(deps: Deps, run_id: str) -> dict[str, str]:
    prefix = deps.settings.resource_prefix
    return {
        "model_name": names.model_name(prefix, run_id),
        "endpoint_config_name": names.endpoint_config_name(prefix, run_id),
        "endpoint_name": deps.settings.endpoint_name,
    }


# -- promote and approve: deploy a registered version ---------------------------------------


class VersionNotApproved(Exception):
    """Only an Approved version may serve (the registry is the source of truth)."""


class AlreadyServing(Exception):
    """The version asked for is the one in service."""


def start_promotion(version: int, deps: Deps, trigger: Trigger = "promote") -> RunRecord:
    """Put a registered, Approved version (back) in service through the same blue/green
    path, as a run that holds the single active slot and starts at DEPLOYING.

    Refused before any record exists: VersionNotFound, VersionNotApproved, AlreadyServing,
    RetryLater (the endpoint is busy); RunAlreadyActive when the slot is taken. If the
    deployment cannot be started the run ends FAILED and the error propagates."""
    package = registry.find(deps.sagemaker, deps.settings, version)
    return _promote(deps, package, trigger)


def _promote(
    deps: Deps,
    package: registry.ModelVersion,
    trigger: Trigger,
    on_created: Callable[[RunRecord], object] = lambda run: None,
) -> RunRecord:
    """``on_created``: told the run once it holds the slot, before the deployment starts."""
    settings, store = deps.settings, deps.store
    if package.approval_status != "Approved":
        raise VersionNotApproved(
            f"version {package.version} is {package.approval_status}: only an Approved "
            "version can be deployed"
        )
    champion = store.get_champion() or {}
    if champion.get("model_package_arn") == package.arn:
        raise AlreadyServing(f"version {package.version} is already in service")
    check_updatable(deps.sagemaker, settings)
    run_id = new_run_id()
    run = store.create(
        RunRecord(
            run_id=run_id,
            trigger=trigger,
            status=RunStatus.DEPLOYING,
            tuning_job_name=package.tuning_job_name,  # the next run's warm-start parent
            training_job_name=package.training_job_name,
            best_hyperparameters=package.hyperparameters,
            metrics=package.metrics,
            model_data_url=package.model_data_url,
            model_package_arn=package.arn,
            model_version=package.version,
            **_deployment_names(deps, run_id),
        )
    )
    on_created(run)
    try:
        action = deploy(
            deps.sagemaker,
            settings,
            run_id,
            package.arn,
            autoscaling_client=lambda: deps.application_autoscaling,
        )
    except Exception as error:
        _fail(deps, run_id, f"could not deploy version {package.version}: {error_message(error)}")
        raise
    _consume_approval(deps, package, run_id)
    log.info("run %s deploys version %s (%s)", run_id, package.version, trigger)
    try:
        return store.transition(
            run_id,
            RunStatus.DEPLOYING,
            expected={RunStatus.DEPLOYING},
            reason=f"version {package.version} ({trigger}); {action}",
        )
    except StaleTransition:  # the endpoint settled already (the local one is quick)
        return store.get(run_id) or run


def _consume_approval(deps: Deps, package: registry.ModelVersion, deployment_run_id: str) -> None:
    """A version that awaited approval is now deployed (a promotion got there first, or this
    is the approval's own deployment): record it on the run that registered it, so neither
    its approval event nor the reconciler deploys it again later over a newer model."""
    awaiting = deps.store.get(package.run_id) if package.run_id else None
    if awaiting and awaiting.status is RunStatus.AWAITING_APPROVAL and not awaiting.approval_run_id:
        deps.store.update(awaiting.run_id, approval_run_id=deployment_run_id)


def on_model_package_state_change(event: dict[str, Any], deps: Deps) -> Outcome:
    """A person approved a version that awaits approval (MODEL_APPROVAL=manual): deploy it.
    Anything else (our own approvals and rejections, other groups) is ignored."""
    body = detail(event, MODEL_PACKAGE_DETAIL_TYPE, "ModelPackageArn", "ModelApprovalStatus")
    if body.get("ModelPackageGroupName") != registry.group_name(deps.settings):
        return _outcome("ignored", reason="not this stack's model package group")
    if body["ModelApprovalStatus"] != "Approved":
        return _outcome("ignored", reason=f"approval status {body['ModelApprovalStatus']}")
    if deps.settings.model_approval != "manual":
        return _outcome("ignored", reason="MODEL_APPROVAL=auto: the gate approves what it deploys")
    return _deploy_approved(deps, registry.describe(deps.sagemaker, body["ModelPackageArn"]))


def _deploy_approved(deps: Deps, package: registry.ModelVersion) -> Outcome:
    """Deploy an approved version once: the run that registered it records the deployment
    run (a duplicate event, or the reconciler, then finds it taken)."""
    run = deps.store.get(package.run_id) if package.run_id else None
    if run is None or run.status is not RunStatus.AWAITING_APPROVAL or run.approval_run_id:
        return _outcome("ignored", package.run_id, reason="no run awaits this approval")
    created: list[RunRecord] = []
    try:
        deployment = _promote(deps, package, "approval", on_created=created.append)
    except (RunAlreadyActive, RetryLater) as busy:
        # Not lost: the reconciler looks for approved versions whenever the slot is free.
        return _outcome("waiting", run.run_id, reason=str(busy))
    except AlreadyServing:
        serving = (deps.store.get_champion() or {}).get("run_id") or "promotion"
        deps.store.update(run.run_id, approval_run_id=str(serving))
        return _outcome("ignored", run.run_id, reason=f"version {package.version} serves")
    except Exception as error:
        if not created or is_retryable(error):
            raise  # nothing was decided: the retried event (or the next tick) tries again
        # SageMaker refused the deployment for good: its run says why (FAILED); trying again
        # at every retry and tick would only repeat the refusal.
        deps.store.update(run.run_id, approval_run_id=created[0].run_id)
        return _outcome("failed", created[0].run_id, reason=error_message(error))
    # _promote recorded the deployment on the approved run (_consume_approval).
    return _outcome("deploying", deployment.run_id, approved_run_id=run.run_id)


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
        _reject_rolled_back(deps, run, reason)
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
        return _approved_meanwhile(deps) or _outcome("idle")
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


def _approved_meanwhile(deps: Deps) -> Outcome | None:
    """MODEL_APPROVAL=manual: the deployment of a version approved while the slot was taken
    (or whose approval event was lost), started now that the slot is free."""
    if deps.settings.model_approval != "manual":
        return None
    runs, _ = deps.store.list(limit=20)
    for run in runs:
        if run.status is RunStatus.AWAITING_APPROVAL and run.model_package_arn:
            if run.approval_run_id:
                continue
            package = registry.describe(deps.sagemaker, run.model_package_arn)
            if package.approval_status == "Approved":
                return _deploy_approved(deps, package)
    return None


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


def _reject_rolled_back(deps: Deps, run: RunRecord, reason: str) -> None:
    """A version the gate (or a person) approved but that never served is Rejected with the
    reason; a promoted one stays Approved (it served before: the rollback may be the
    endpoint's)."""
    if run.model_package_arn and run.trigger != "promote":
        registry.set_approval(deps.sagemaker, run.model_package_arn, "Rejected", reason)


def _champion(run: RunRecord) -> dict[str, Any]:
    return {
        "run_id": run.run_id,
        "model_package_arn": run.model_package_arn,
        "model_version": run.model_version,
        "model_name": run.model_name,
        "endpoint_config_name": run.endpoint_config_name,
        "tuning_job_name": run.tuning_job_name,
        "training_job_name": run.training_job_name,
        "model_data_url": run.model_data_url,
        "hyperparameters": run.best_hyperparameters,
        "metrics": run.metrics,
        "deployed_at": utc_now(),
    }
