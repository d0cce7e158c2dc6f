"""Model -> endpoint config -> endpoint: create the first time, blue/green update after.

A Failed endpoint accepts only DeleteEndpoint (SageMaker refuses UpdateEndpoint on it), and
the endpoint name is fixed: left alone it would fail every later run. So deploy deletes it and
raises RetryLater; the redelivered event finds it Deleting (RetryLater again) or gone, and
takes the CreateEndpoint path. Any other status but InService (Updating, Creating,
RollingBack, SystemUpdating, ...) refuses UpdateEndpoint too: the event is retried until the
endpoint settles. A config or model created a moment ago may not be visible yet to the next
call (SageMaker is eventually consistent): that answer is retried as well.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from botocore.exceptions import ClientError

from retraining.aws_errors import RetryLater, is_already_exists, is_not_found, is_not_yet_visible
from retraining.sagemaker import autoscaling, names, request_bodies
from retraining.settings import Settings

log = logging.getLogger(__name__)


def create_once(call: Callable[..., Any], request: dict[str, Any]) -> bool:
    """Call a SageMaker Create* operation; False when the resource already exists (a
    redelivered event already did this step)."""
    try:
        call(**request)
    except ClientError as error:
        if is_already_exists(error):
            return False
        raise
    return True


def create_when_visible(call: Callable[..., Any], request: dict[str, Any]) -> bool:
    """create_once for a resource that references one created just before: 'Could not find
    endpoint configuration / model' means not visible yet, so RetryLater."""
    try:
        return create_once(call, request)
    except ClientError as error:
        if is_not_yet_visible(error):
            raise RetryLater(f"not visible yet: {error}") from error
        raise


def describe_endpoint(sagemaker: Any, endpoint_name: str) -> dict[str, Any] | None:
    try:
        found: dict[str, Any] = sagemaker.describe_endpoint(EndpointName=endpoint_name)
    except ClientError as error:
        if is_not_found(error):
            return None
        raise
    return found


def targets(endpoint: dict[str, Any], config_name: str) -> bool:
    """The endpoint serves, or is already moving to, ``config_name``."""
    pending = (endpoint.get("PendingDeploymentSummary") or {}).get("EndpointConfigName")
    return config_name in (endpoint.get("EndpointConfigName"), pending)


def deploy(
    sagemaker: Any,
    settings: Settings,
    run_id: str,
    model_package_arn: str,
    autoscaling_client: Callable[[], Any] | None = None,
) -> str:
    """Start rolling a registered version out under the run's model and config names;
    returns what was done (for the run history).
    ``autoscaling_client`` (lazy: only built when auto-scaling is on and an update runs)
    lets an update that changes the instance type deregister the variant first."""
    create_once(
        sagemaker.create_model,
        request_bodies.model_request(settings, run_id, model_package_arn),
    )
    create_when_visible(
        sagemaker.create_endpoint_config,
        request_bodies.endpoint_config_request(settings, run_id),
    )
    config_name = names.endpoint_config_name(settings.resource_prefix, run_id)
    endpoint = describe_endpoint(sagemaker, settings.endpoint_name)
    if endpoint is None:
        create_when_visible(
            sagemaker.create_endpoint,
            request_bodies.create_endpoint_request(settings, run_id),
        )
        return f"creating endpoint {settings.endpoint_name} with {config_name}"
    if targets(endpoint, config_name):
        return f"endpoint {settings.endpoint_name} already moving to {config_name}"
    clear_failed_endpoint(sagemaker, endpoint)
    scaling = None
    deregistered = False
    if autoscaling_client is not None and autoscaling.enabled(settings):
        scaling = autoscaling_client()
        live = endpoint["EndpointConfigName"]
        deregistered = autoscaling.prepare_update(scaling, sagemaker, settings, live)
    try:
        sagemaker.update_endpoint(**request_bodies.update_endpoint_request(settings, run_id))
    except Exception as error:
        # A duplicate delivery may have started the same update a moment ago.
        if isinstance(error, ClientError):
            again = describe_endpoint(sagemaker, settings.endpoint_name)
            if again is not None and targets(again, config_name):
                return f"endpoint {settings.endpoint_name} already moving to {config_name}"
        if deregistered:
            restore_scaling(scaling, settings)
        if is_not_yet_visible(error):
            raise RetryLater(f"not visible yet: {error}") from error
        raise
    done = f"blue/green update of {settings.endpoint_name} to {config_name}"
    return done + (
        "; auto-scaling deregistered for the instance type change" if deregistered else ""
    )


#: Statuses in which SageMaker accepts UpdateEndpoint. UpdateRollbackFailed is documented as
#: serving a mix of old and new configs, resolved by calling UpdateEndpoint again.
UPDATABLE_STATUSES = frozenset({"InService", "UpdateRollbackFailed"})


def check_updatable(sagemaker: Any, settings: Settings) -> None:
    """RetryLater unless the endpoint is absent or can take an update now (a promotion checks
    this before it takes the run slot)."""
    endpoint = describe_endpoint(sagemaker, settings.endpoint_name)
    status = endpoint.get("EndpointStatus") if endpoint else None
    if endpoint is not None and status not in UPDATABLE_STATUSES | {"Failed"}:
        raise RetryLater(
            f"endpoint {settings.endpoint_name} is {status}; try again once it is InService"
        )


def clear_failed_endpoint(sagemaker: Any, endpoint: dict[str, Any]) -> None:
    """Raise RetryLater unless the endpoint can take an update: a Failed one is deleted first
    (the retry then creates it afresh); any other status (Creating, Updating, SystemUpdating,
    RollingBack, OutOfService, Deleting) is waited for, as UpdateEndpoint would refuse it
    with a ValidationException that would end the run."""
    name, status = endpoint["EndpointName"], endpoint.get("EndpointStatus")
    if status == "Failed":
        try:
            sagemaker.delete_endpoint(EndpointName=name)
        except ClientError as error:
            if not is_not_found(error):
                raise
        log.warning("deleted failed endpoint %s: %s", name, endpoint.get("FailureReason"))
        raise RetryLater(f"endpoint {name} was Failed and is being deleted; retry to create it")
    if status == "Deleting":
        raise RetryLater(f"endpoint {name} is being deleted; retry to create it")
    if status not in UPDATABLE_STATUSES:
        raise RetryLater(f"endpoint {name} is {status}; retry once it can take an update")


def restore_scaling(scaling: Any, settings: Settings) -> None:
    """The update failed after the variant was deregistered: register it again, so the
    endpoint keeps scaling as before. Never masks the update's own error."""
    try:
        log.warning("update failed; %s", autoscaling.register(scaling, settings))
    except Exception:
        log.exception("could not re-register %s", autoscaling.resource_id(settings))
