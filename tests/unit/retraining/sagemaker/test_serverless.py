"""EndpointType=serverless: the endpoint config, the update and what is turned off."""

from __future__ import annotations

import boto3
import pytest
from botocore.validate import validate_parameters
from pydantic import ValidationError

from retraining.sagemaker import autoscaling, request_bodies
from tests.support.sagemaker_double import make_settings

RUN_ID = "r20261202000000abcd"
MODEL = boto3.client("sagemaker", region_name="us-east-1").meta.service_model


def valid(operation: str, request: dict) -> dict:
    validate_parameters(request, MODEL.operation_model(operation).input_shape)
    return request


def test_a_serverless_config_has_memory_and_concurrency_and_no_instances() -> None:
    settings = make_settings(endpoint_type="serverless", serverless_memory_mb=4096)
    request = valid(
        "CreateEndpointConfig", request_bodies.endpoint_config_request(settings, RUN_ID)
    )
    (variant,) = request["ProductionVariants"]
    assert variant["ServerlessConfig"] == {"MemorySizeInMB": 4096, "MaxConcurrency": 5}
    assert not {"InstanceType", "InitialInstanceCount", "InitialVariantWeight"} & set(variant)
    assert variant["VariantName"] == settings.endpoint_variant_name  # the same name every time


def test_provisioned_concurrency_is_sent_only_when_asked_for() -> None:
    settings = make_settings(
        endpoint_type="serverless",
        serverless_max_concurrency=10,
        serverless_provisioned_concurrency=2,
    )
    request = valid(
        "CreateEndpointConfig", request_bodies.endpoint_config_request(settings, RUN_ID)
    )
    assert request["ProductionVariants"][0]["ServerlessConfig"]["ProvisionedConcurrency"] == 2


def test_a_serverless_update_takes_sagemakers_default_deployment() -> None:
    """Deployment guardrails (traffic shifting, baking, alarm rollback) apply to real-time
    endpoints on instances: no DeploymentConfig, and no auto-scaling to retain or register."""
    settings = make_settings(
        endpoint_type="serverless", endpoint_min_capacity=1, endpoint_max_capacity=4
    )
    request = valid("UpdateEndpoint", request_bodies.update_endpoint_request(settings, RUN_ID))
    assert set(request) == {"EndpointName", "EndpointConfigName"}
    assert not autoscaling.enabled(settings)
    provisioned = make_settings(endpoint_min_capacity=1, endpoint_max_capacity=4)
    assert autoscaling.enabled(provisioned)
    assert "DeploymentConfig" in request_bodies.update_endpoint_request(provisioned, RUN_ID)


def test_provisioned_stays_the_default_with_instances() -> None:
    request = request_bodies.endpoint_config_request(make_settings(), RUN_ID)
    (variant,) = request["ProductionVariants"]
    assert variant["InstanceType"] == "ml.m5.large"
    assert "ServerlessConfig" not in variant


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"deployment_strategy": "canary"}, "needs ENDPOINT_TYPE=provisioned"),
        (
            {"serverless_max_concurrency": 2, "serverless_provisioned_concurrency": 3},
            "must not exceed SERVERLESS_MAX_CONCURRENCY",
        ),
        ({"serverless_memory_mb": 1500}, "multiple of 1024"),
        ({"serverless_memory_mb": 8192}, "less than or equal to 6144"),
    ],
)
def test_settings_refuse_what_a_serverless_endpoint_cannot_do(changes: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        make_settings(endpoint_type="serverless", **changes)
