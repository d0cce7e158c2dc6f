"""Endpoint auto-scaling: target tracking on invocations per instance for the production variant.

Off unless ``endpoint_max_capacity > endpoint_min_capacity`` (configuration, not a mode switch:
with max == min there is nothing to scale). Both calls are upserts - RegisterScalableTarget on
an existing target updates its capacities, PutScalingPolicy with the same name replaces the
policy - so duplicate deliveries and every later deployment simply re-apply them.

Blue/green updates and scaling (AWS, "Update endpoints that use auto scaling",
https://docs.aws.amazon.com/sagemaker/latest/dg/endpoint-scaling-update.html): an
UpdateEndpoint that changes the *instance type* of (or removes) a variant registered for
auto scaling fails; changing the *model* is allowed. Deployment guardrails further require the
new endpoint config to keep the variant name
(https://docs.aws.amazon.com/sagemaker/latest/dg/deployment-guardrails-exclusions.html).
So every config uses the same variant name (``endpoint_variant_name``), the target is
deregistered before an update only when the instance type changes (deregistering also deletes
its policies, per the DeregisterScalableTarget API reference), the update retains the
variant's scaled instance count (``RetainAllVariantProperties``, step 6 of the same page), and
the target is (re-)registered once the endpoint is in service again.
"""

from __future__ import annotations

import logging
from typing import Any

from botocore.exceptions import ClientError

from retraining.aws_errors import error_code, error_message, is_retryable
from retraining.settings import Settings

log = logging.getLogger(__name__)

NAMESPACE = "sagemaker"
DIMENSION = "sagemaker:variant:DesiredInstanceCount"
METRIC = "SageMakerVariantInvocationsPerInstance"


#: CloudWatch metric (Embedded Metric Format, namespace = resource prefix) to alarm on.
FAILURE_METRIC = "AutoScalingRegistrationFailed"


def _emit_failure_metric(settings: Settings) -> None:
    from aws_lambda_powertools.metrics import MetricUnit, single_metric

    with single_metric(
        name=FAILURE_METRIC,
        unit=MetricUnit.Count,
        value=1,
        namespace=settings.resource_prefix,
        default_dimensions={"endpoint": settings.endpoint_name},
    ):
        pass  # flushed as one EMF line to stdout (CloudWatch Logs) on exit


def enabled(settings: Settings) -> bool:
    """A provisioned endpoint whose max capacity exceeds its min (a serverless one scales by
    itself: nothing to register)."""
    return (
        settings.endpoint_type == "provisioned"
        and settings.endpoint_max_capacity > settings.endpoint_min_capacity
    )


def resource_id(settings: Settings) -> str:
    return f"endpoint/{settings.endpoint_name}/variant/{settings.endpoint_variant_name}"


def policy_name(settings: Settings) -> str:
    return f"{settings.resource_prefix}-invocations-per-instance"


def scalable_target_request(settings: Settings) -> dict[str, Any]:
    return {
        "ServiceNamespace": NAMESPACE,
        "ResourceId": resource_id(settings),
        "ScalableDimension": DIMENSION,
        "MinCapacity": settings.endpoint_min_capacity,
        "MaxCapacity": settings.endpoint_max_capacity,
    }


def scaling_policy_request(settings: Settings) -> dict[str, Any]:
    return {
        "PolicyName": policy_name(settings),
        "ServiceNamespace": NAMESPACE,
        "ResourceId": resource_id(settings),
        "ScalableDimension": DIMENSION,
        "PolicyType": "TargetTrackingScaling",
        "TargetTrackingScalingPolicyConfiguration": {
            "TargetValue": settings.endpoint_target_invocations,
            "PredefinedMetricSpecification": {"PredefinedMetricType": METRIC},
            # Out fast, in slowly: a new instance takes minutes to serve, and scaling in
            # right after a burst would only pay that again.
            "ScaleOutCooldown": settings.endpoint_scale_out_cooldown_s,
            "ScaleInCooldown": settings.endpoint_scale_in_cooldown_s,
        },
    }


def register(autoscaling: Any, settings: Settings) -> str:
    """Upsert the scalable target and its policy; returns what was done, for the run history.

    Throttling and other transient errors propagate (the event is retried); any other
    error is logged and reported in the result: scaling is an add-on to a model that is
    already serving, never a reason to undo its deployment.
    """
    if not enabled(settings):
        return "auto-scaling off (max capacity <= min capacity)"
    try:
        autoscaling.register_scalable_target(**scalable_target_request(settings))
        autoscaling.put_scaling_policy(**scaling_policy_request(settings))
    except Exception as error:
        if is_retryable(error):
            raise
        log.exception("auto-scaling registration for %s failed", resource_id(settings))
        _emit_failure_metric(settings)
        return f"auto-scaling NOT registered: {type(error).__name__}: {error_message(error)}"
    return (
        f"auto-scaling {settings.endpoint_min_capacity}-{settings.endpoint_max_capacity} "
        f"instances at {settings.endpoint_target_invocations:g} invocations/instance"
    )


def live_instance_type(sagemaker: Any, config_name: str, variant_name: str) -> str | None:
    config = sagemaker.describe_endpoint_config(EndpointConfigName=config_name)
    for variant in config.get("ProductionVariants", []):
        if variant.get("VariantName") == variant_name:
            instance_type = variant.get("InstanceType")  # absent on serverless variants
            return str(instance_type) if instance_type else None
    return None


def prepare_update(autoscaling: Any, sagemaker: Any, settings: Settings, live_config: str) -> bool:
    """Before UpdateEndpoint: deregister the variant when the update changes its instance
    type (AWS rejects that update otherwise). True when it deregistered; the endpoint-state
    step registers it again once the endpoint is in service."""
    if not enabled(settings):
        return False
    current = live_instance_type(sagemaker, live_config, settings.endpoint_variant_name)
    if current is None or current == settings.endpoint_instance_type:
        return False
    try:
        autoscaling.deregister_scalable_target(
            ServiceNamespace=NAMESPACE,
            ResourceId=resource_id(settings),
            ScalableDimension=DIMENSION,
        )
    except ClientError as error:
        if error_code(error) != "ObjectNotFoundException":  # not registered: nothing to do
            raise
        return False
    log.info(
        "deregistered %s: instance type %s -> %s",
        resource_id(settings),
        current,
        settings.endpoint_instance_type,
    )
    return True
