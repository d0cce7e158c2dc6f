"""Model -> endpoint config -> endpoint: create the first time, blue/green update after."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from botocore.exceptions import ClientError

from retraining import autoscaling, names, sagemaker_requests
from retraining.aws_errors import is_already_exists, is_not_found
from retraining.settings import Settings


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


def describe_endpoint(sagemaker: Any, endpoint_name: str) -> dict[str, Any] | None:
    try:
        return sagemaker.describe_endpoint(EndpointName=endpoint_name)
    except ClientError as error:
        if is_not_found(error):
            return None
        raise


def targets(endpoint: dict[str, Any], config_name: str) -> bool:
    """The endpoint serves, or is already moving to, ``config_name``."""
    pending = (endpoint.get("PendingDeploymentSummary") or {}).get("EndpointConfigName")
    return config_name in (endpoint.get("EndpointConfigName"), pending)


def deploy(
    sagemaker: Any,
    settings: Settings,
    run_id: str,
    model_data_url: str,
    autoscaling_client: Callable[[], Any] | None = None,
) -> str:
    """Start rolling the run's model out; returns what was done (for the run history).
    ``autoscaling_client`` (lazy: only built when auto-scaling is on and an update runs)
    lets an update that changes the instance type deregister the variant first."""
    create_once(
        sagemaker.create_model,
        sagemaker_requests.model_request(settings, run_id, model_data_url),
    )
    create_once(
        sagemaker.create_endpoint_config,
        sagemaker_requests.endpoint_config_request(settings, run_id),
    )
    config_name = names.endpoint_config_name(settings.resource_prefix, run_id)
    endpoint = describe_endpoint(sagemaker, settings.endpoint_name)
    if endpoint is None:
        create_once(
            sagemaker.create_endpoint,
            sagemaker_requests.create_endpoint_request(settings, run_id),
        )
        return f"creating endpoint {settings.endpoint_name} with {config_name}"
    if targets(endpoint, config_name):
        return f"endpoint {settings.endpoint_name} already moving to {config_name}"
    deregistered = False
    if autoscaling_client is not None and autoscaling.enabled(settings):
        live = endpoint["EndpointConfigName"]
        deregistered = autoscaling.prepare_update(autoscaling_client(), sagemaker, settings, live)
    try:
        sagemaker.update_endpoint(**sagemaker_requests.update_endpoint_request(settings, run_id))
    except ClientError:
        # A duplicate delivery may have started the same update a moment ago.
        again = describe_endpoint(sagemaker, settings.endpoint_name)
        if again is not None and targets(again, config_name):
            return f"endpoint {settings.endpoint_name} already moving to {config_name}"
        raise
    done = f"blue/green update of {settings.endpoint_name} to {config_name}"
    return done + (
        "; auto-scaling deregistered for the instance type change" if deregistered else ""
    )
