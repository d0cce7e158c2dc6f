"""EventBridge entry points (thin): parse nothing, decide nothing, call the domain.

``start_scheduled_run`` and ``reconcile`` are schedule targets; ``start_drift_run`` is the
target of the rule on the model-confidence alarm's state change; the others are targets of
rules on ``source: aws.sagemaker`` events. Returned dicts end up in the Lambda logs and tests.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aws_lambda_powertools import Logger

from retraining import workflow
from retraining.aws import deps_from_env
from retraining.aws_errors import is_retryable
from retraining.deps import Deps, get_deps, set_default_deps
from retraining.overrides import TuneOverrides
from retraining.records import RunAlreadyActive, Trigger
from retraining.sagemaker import names
from retraining.sagemaker.events import ALARM_DETAIL_TYPE, BadEvent, detail
from retraining.sagemaker.events import tags as event_tags

logger = Logger(service="orchestration")
# The Lambda wiring, built on first use (the local stack and tests install their own).
set_default_deps(deps_from_env)


def _correlate(event: dict[str, Any]) -> None:
    """Use the run id as correlation id, so one run's log lines across four functions join."""
    detail = event.get("detail") if isinstance(event, dict) else None
    detail = detail if isinstance(detail, dict) else {}
    prefix = get_deps().settings.resource_prefix
    run_id = event_tags(detail).get("run-id")
    for key in ("HyperParameterTuningJobName", "TrainingJobName"):
        if run_id is None and isinstance(detail.get(key), str):
            name = detail[key]
            run_id = (
                names.run_id_from_final_job(prefix, name)
                or names.run_id_from_data_job(prefix, name)
                or names.run_id_from_tuning_job(prefix, name)
            )
    logger.set_correlation_id(run_id)


def _start(trigger: Trigger, overrides: TuneOverrides) -> dict[str, Any]:
    """An active run is not an error for a schedule or an alarm: the start is skipped."""
    try:
        run = workflow.start_run(trigger, overrides, get_deps())
    except RunAlreadyActive as busy:
        logger.info(f"{trigger} start skipped: a run is active", active_run_id=busy.active_run_id)
        return {"action": "skipped", "active_run_id": busy.active_run_id}
    logger.set_correlation_id(run.run_id)
    logger.info(f"{trigger} run started", status=run.status.value)
    return {"action": "started", "run_id": run.run_id}


@logger.inject_lambda_context(log_event=False, clear_state=True)
def start_scheduled_run(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Schedule input: the TuneOverrides JSON (``{}`` for the stack's settings)."""
    return _start("schedule", TuneOverrides.model_validate((event or {}).get("overrides") or {}))


@logger.inject_lambda_context(log_event=False, clear_state=True)
def start_drift_run(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """The model-confidence alarm went into ALARM: retrain with the stack's settings, through
    the schedule's start path (one active run; skipped when busy)."""
    try:
        body = detail(event, ALARM_DETAIL_TYPE, "alarmName", "state")
        state = body["state"].get("value") if isinstance(body["state"], dict) else None
    except BadEvent as bad:
        logger.warning("malformed alarm event ignored", error=str(bad))
        return {"action": "ignored", "run_id": None, "reason": f"malformed event: {bad}"}
    if state != "ALARM":  # the rule matches ALARM only; a test event may say otherwise
        return {"action": "ignored", "run_id": None, "reason": f"alarm state {state}"}
    logger.info("model confidence alarm", alarm=body["alarmName"])
    return _start("drift", TuneOverrides())


def _handle(
    event: dict[str, Any], step: Callable[[dict[str, Any], Deps], dict[str, Any]]
) -> dict[str, Any]:
    _correlate(event)
    try:
        outcome: dict[str, Any] = step(event, get_deps())
    except BadEvent as bad:
        # Permanent: raising would only make Lambda retry it, dead-letter it and trip the
        # DLQ alarm. Logged as a warning (the rule's pattern or the event shape changed).
        logger.warning("malformed event ignored", error=str(bad))
        return {"action": "ignored", "run_id": None, "reason": f"malformed event: {bad}"}
    if outcome.get("run_id"):
        logger.set_correlation_id(outcome["run_id"])
    logger.info("event handled", outcome=outcome)
    return outcome


@logger.inject_lambda_context(log_event=False, clear_state=True)
def tuning_job_state_change(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return _handle(event, workflow.on_tuning_job_state_change)


@logger.inject_lambda_context(log_event=False, clear_state=True)
def training_job_state_change(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return _handle(event, workflow.on_training_job_state_change)


@logger.inject_lambda_context(log_event=False, clear_state=True)
def endpoint_state_change(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return _handle(event, workflow.on_endpoint_state_change)


@logger.inject_lambda_context(log_event=False, clear_state=True)
def model_package_state_change(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return _handle(event, workflow.on_model_package_state_change)


@logger.inject_lambda_context(log_event=False, clear_state=True)
def reconcile(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """The reconcile schedule's target, also invoked on demand (any event): takes the step
    a lost SageMaker event would have taken for the active run."""
    try:
        outcome = workflow.reconcile(get_deps())
    except Exception as error:
        if not is_retryable(error):
            raise  # denied, a bug: the failed invocation reaches the dead-letter queue
        # A throttle is not worth an alarm: the next tick takes the same step.
        outcome = {"action": "waiting", "run_id": None, "reason": str(error)}
    if outcome.get("run_id"):
        logger.set_correlation_id(outcome["run_id"])
    logger.info("reconciled", outcome=outcome)
    return outcome
