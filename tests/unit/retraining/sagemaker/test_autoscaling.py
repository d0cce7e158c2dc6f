"""Endpoint auto-scaling: registered when a deployment ends in service, off when max <= min,
idempotent under redelivery, and kept out of the way of blue/green updates.

Application Auto Scaling is a real botocore client behind a Stubber with the exact expected
parameters, so a wrong field, a missing call or an extra call fails the test.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from retraining import workflow
from retraining.deps import Deps
from retraining.records import RunStatus
from retraining.sagemaker import autoscaling
from retraining.settings import Settings
from tests.support.run_flow import (
    ARN,
    expect_gate,
    finish_training,
    finish_tuning,
    settle,
    start,
)
from tests.support.sagemaker_double import (
    ACCOUNT,
    RecordingSageMaker,
    T,
    endpoint_description,
    load_event,
    make_settings,
)

RESOURCE_ID = "endpoint/cifar100-classifier/variant/AllTraffic"
DIMENSION = "sagemaker:variant:DesiredInstanceCount"
OLD_CONFIG = "cifar100-r20261101000000aaaa"

TARGET = {
    "ServiceNamespace": "sagemaker",
    "ResourceId": RESOURCE_ID,
    "ScalableDimension": DIMENSION,
    "MinCapacity": 1,
    "MaxCapacity": 4,
}
POLICY = {
    "PolicyName": "cifar100-invocations-per-instance",
    "ServiceNamespace": "sagemaker",
    "ResourceId": RESOURCE_ID,
    "ScalableDimension": DIMENSION,
    "PolicyType": "TargetTrackingScaling",
    "TargetTrackingScalingPolicyConfiguration": {
        "TargetValue": 250.0,
        "PredefinedMetricSpecification": {
            "PredefinedMetricType": "SageMakerVariantInvocationsPerInstance"
        },
        "ScaleOutCooldown": 60,
        "ScaleInCooldown": 300,
    },
}


class StubbedAutoScaling:
    def __init__(self) -> None:
        self.client = boto3.client("application-autoscaling", region_name="us-east-1")
        self.stubber = Stubber(self.client)
        self.stubber.activate()

    def expect_registration(self, target: dict[str, Any] = TARGET) -> None:
        self.stubber.add_response(
            "register_scalable_target",
            {"ScalableTargetARN": f"arn:aws:application-autoscaling:us-east-1:{ACCOUNT}:x"},
            target,
        )
        self.stubber.add_response(
            "put_scaling_policy",
            {"PolicyARN": f"arn:aws:autoscaling:us-east-1:{ACCOUNT}:scalingPolicy:x", "Alarms": []},
            POLICY,
        )

    def expect_deregistration(self) -> None:
        self.stubber.add_response(
            "deregister_scalable_target",
            {},
            {
                "ServiceNamespace": "sagemaker",
                "ResourceId": RESOURCE_ID,
                "ScalableDimension": DIMENSION,
            },
        )

    def fail(self, operation: str, code: str, status: int = 400) -> None:
        self.stubber.add_client_error(
            operation, service_error_code=code, service_message=code, http_status_code=status
        )


@pytest.fixture
def settings() -> Settings:
    return make_settings(
        endpoint_min_capacity=1, endpoint_max_capacity=4, endpoint_target_invocations=250
    )


@pytest.fixture
def scaling() -> Iterator[StubbedAutoScaling]:
    double = StubbedAutoScaling()
    yield double
    double.stubber.assert_no_pending_responses()
    double.stubber.deactivate()


@pytest.fixture
def deps(settings, sagemaker, store, scaling, s3_double) -> Deps:
    return Deps(
        settings_factory=lambda: settings,
        sagemaker_factory=lambda: sagemaker.client,
        sagemaker_runtime_factory=lambda: None,
        store_factory=lambda: store,
        application_autoscaling_factory=lambda: scaling.client,
        s3_factory=lambda: s3_double.client,
    )


def first_deployment(deps: Deps, sagemaker: RecordingSageMaker) -> Any:
    run = start(deps, sagemaker)
    finish_tuning(deps, sagemaker, run)
    finish_training(deps, sagemaker, run, test_acc=0.7)
    return run


def update_to(
    deps: Deps,
    sagemaker: RecordingSageMaker,
    run: Any,
    live_instance_type: str,
    refused: str | None = None,
) -> dict[str, Any]:
    """Final job completed, a champion is serving OLD_CONFIG on ``live_instance_type``;
    ``refused``: UpdateEndpoint fails with that message (and the endpoint stays as it was)."""
    expect_gate(deps, sagemaker, run, test_acc=0.7)
    sagemaker.expect("create_model", {"ModelArn": f"{ARN}:model/x"})
    sagemaker.expect("create_endpoint_config", {"EndpointConfigArn": f"{ARN}:endpoint-config/x"})
    sagemaker.expect("describe_endpoint", endpoint_description("InService", OLD_CONFIG))
    sagemaker.expect(
        "describe_endpoint_config",
        {
            "EndpointConfigName": OLD_CONFIG,
            "EndpointConfigArn": f"{ARN}:endpoint-config/{OLD_CONFIG}",
            "ProductionVariants": [
                {
                    "VariantName": "AllTraffic",
                    "ModelName": OLD_CONFIG,
                    "InitialInstanceCount": 1,
                    "InstanceType": live_instance_type,
                }
            ],
            "CreationTime": T,
        },
    )
    if refused is None:
        sagemaker.expect("update_endpoint", {"EndpointArn": f"{ARN}:endpoint/cifar100-classifier"})
    else:
        sagemaker.fail("update_endpoint", "ValidationException", refused)
        sagemaker.expect("describe_endpoint", endpoint_description("InService", OLD_CONFIG))
    event = load_event("training_job_final_completed.json", run.run_id)
    return workflow.on_training_job_state_change(event, deps)


def test_deployed_registers_the_variant_with_target_tracking(deps, sagemaker, store, scaling):
    run = first_deployment(deps, sagemaker)
    scaling.expect_registration()
    outcome = settle(deps, sagemaker, run, "InService", run.tuning_job_name)
    assert outcome["action"] == "deployed"
    assert outcome["autoscaling"] == "auto-scaling 1-4 instances at 250 invocations/instance"
    deployed = store.get(run.run_id)
    assert deployed.status is RunStatus.DEPLOYED
    assert "auto-scaling 1-4" in deployed.history[-1].reason
    sagemaker.assert_all_used()


def test_duplicate_in_service_event_registers_once(deps, sagemaker, store, scaling):
    run = first_deployment(deps, sagemaker)
    scaling.expect_registration()
    settle(deps, sagemaker, run, "InService", run.tuning_job_name)
    # The redelivery finds no deploying run: no DescribeEndpoint, no scaling call (the
    # Stubber has nothing queued, so any call would raise).
    again = workflow.on_endpoint_state_change(
        load_event("endpoint_in_service.json", run.run_id), deps
    )
    assert again["action"] == "ignored"
    assert store.get(run.run_id).status is RunStatus.DEPLOYED


def test_throttled_registration_is_retried_and_the_run_waits(deps, sagemaker, store, scaling):
    run = first_deployment(deps, sagemaker)
    scaling.fail("register_scalable_target", "ThrottlingException")
    sagemaker.expect("describe_endpoint", endpoint_description("InService", run.tuning_job_name))
    event = load_event("endpoint_in_service.json", run.run_id)
    with pytest.raises(Exception, match="ThrottlingException"):
        workflow.on_endpoint_state_change(event, deps)
    assert store.get(run.run_id).status is RunStatus.DEPLOYING  # so the retry finds it
    scaling.expect_registration()  # upserts: the retry simply applies both again
    outcome = settle(deps, sagemaker, run, "InService", run.tuning_job_name)
    assert outcome["action"] == "deployed"
    assert store.get_champion()["run_id"] == run.run_id


def test_concurrent_update_on_the_target_is_retried(deps, sagemaker, store, scaling):
    run = first_deployment(deps, sagemaker)
    scaling.stubber.add_response("register_scalable_target", {}, TARGET)
    scaling.fail("put_scaling_policy", "ConcurrentUpdateException")
    sagemaker.expect("describe_endpoint", endpoint_description("InService", run.tuning_job_name))
    with pytest.raises(Exception, match="ConcurrentUpdateException"):
        workflow.on_endpoint_state_change(load_event("endpoint_in_service.json", run.run_id), deps)
    assert store.get(run.run_id).status is RunStatus.DEPLOYING


def test_failed_registration_does_not_undo_the_deployment(deps, sagemaker, store, scaling, capsys):
    run = first_deployment(deps, sagemaker)
    scaling.fail("register_scalable_target", "AccessDeniedException")
    outcome = settle(deps, sagemaker, run, "InService", run.tuning_job_name)
    assert outcome["action"] == "deployed"
    assert outcome["autoscaling"].startswith("auto-scaling NOT registered: ClientError")
    assert store.get(run.run_id).status is RunStatus.DEPLOYED
    assert store.get_champion()["run_id"] == run.run_id
    emf = [json.loads(line) for line in capsys.readouterr().out.splitlines() if "_aws" in line]
    (metric,) = [m for m in emf if autoscaling.FAILURE_METRIC in m]
    assert metric[autoscaling.FAILURE_METRIC] in (1.0, [1.0])
    assert metric["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "cifar100"
    assert metric["endpoint"] == "cifar100-classifier"


def test_rolled_back_update_keeps_the_old_variant_scaled(deps, sagemaker, store, scaling):
    store.set_champion({"run_id": "r20261101000000aaaa", "metrics": {"test_acc": 0.6}})
    run = start(deps, sagemaker)
    finish_tuning(deps, sagemaker, run)
    update_to(deps, sagemaker, run, live_instance_type="ml.m5.large")
    scaling.expect_registration()
    outcome = settle(deps, sagemaker, run, "InService", OLD_CONFIG, reject_package=True)
    assert outcome["action"] == "rolled_back"
    assert outcome["autoscaling"].startswith("auto-scaling 1-4")


def test_update_keeping_the_instance_type_keeps_the_registration(deps, sagemaker, store, scaling):
    store.set_champion({"run_id": "r20261101000000aaaa", "metrics": {"test_acc": 0.6}})
    run = start(deps, sagemaker)
    finish_tuning(deps, sagemaker, run)
    outcome = update_to(deps, sagemaker, run, live_instance_type="ml.m5.large")
    assert outcome["action"] == "deploying"
    assert "deregistered" not in outcome["detail"]
    (update,) = sagemaker.requests("UpdateEndpoint")
    assert update["RetainAllVariantProperties"] is True  # keep the scaled-out instance count
    assert update["EndpointConfigName"] == run.tuning_job_name
    (described,) = sagemaker.requests("DescribeEndpointConfig")
    assert described == {"EndpointConfigName": OLD_CONFIG}
    scaling.expect_registration()
    assert settle(deps, sagemaker, run, "InService", run.tuning_job_name)["action"] == "deployed"
    sagemaker.assert_all_used()


def test_instance_type_change_deregisters_before_the_update(deps, sagemaker, store, scaling):
    store.set_champion({"run_id": "r20261101000000aaaa", "metrics": {"test_acc": 0.6}})
    run = start(deps, sagemaker)
    finish_tuning(deps, sagemaker, run)
    scaling.expect_deregistration()
    outcome = update_to(deps, sagemaker, run, live_instance_type="ml.c5.xlarge")
    assert "auto-scaling deregistered" in outcome["detail"]
    scaling.stubber.assert_no_pending_responses()  # deregistered before UpdateEndpoint ran
    scaling.expect_registration()
    assert settle(deps, sagemaker, run, "InService", run.tuning_job_name)["action"] == "deployed"


def test_failed_update_after_deregistering_registers_the_variant_again(
    deps, sagemaker, store, scaling
):
    store.set_champion({"run_id": "r20261101000000aaaa", "metrics": {"test_acc": 0.6}})
    run = start(deps, sagemaker)
    finish_tuning(deps, sagemaker, run)
    scaling.expect_deregistration()
    scaling.expect_registration()  # the old variant keeps serving: it must keep scaling
    outcome = update_to(
        deps, sagemaker, run, live_instance_type="ml.c5.xlarge", refused="Quota exceeded"
    )
    assert outcome["action"] == "failed"
    assert "Quota exceeded" in store.get(run.run_id).error
    scaling.stubber.assert_no_pending_responses()
    sagemaker.assert_all_used()


def test_failed_re_registration_does_not_hide_the_update_error(deps, sagemaker, store, scaling):
    store.set_champion({"run_id": "r20261101000000aaaa", "metrics": {"test_acc": 0.6}})
    run = start(deps, sagemaker)
    finish_tuning(deps, sagemaker, run)
    scaling.expect_deregistration()
    scaling.fail("register_scalable_target", "AccessDeniedException")
    update_to(deps, sagemaker, run, live_instance_type="ml.c5.xlarge", refused="Quota exceeded")
    assert store.get(run.run_id).error == "ClientError: Quota exceeded"


def test_instance_type_change_with_no_registered_target_goes_on(deps, sagemaker, store, scaling):
    store.set_champion({"run_id": "r20261101000000aaaa", "metrics": {"test_acc": 0.6}})
    run = start(deps, sagemaker)
    finish_tuning(deps, sagemaker, run)
    scaling.fail("deregister_scalable_target", "ObjectNotFoundException")
    outcome = update_to(deps, sagemaker, run, live_instance_type="ml.c5.xlarge")
    assert outcome["action"] == "deploying"
    assert "deregistered" not in outcome["detail"]
    assert len(sagemaker.requests("UpdateEndpoint")) == 1


@pytest.mark.parametrize(("low", "high"), [(1, 1), (3, 3), (4, 2)])
def test_off_when_max_is_not_above_min(sagemaker, store, s3_double, low, high):
    def no_client() -> Any:
        raise AssertionError("auto-scaling is off: no client may be built")

    deps = Deps(
        settings_factory=lambda: make_settings(
            endpoint_min_capacity=low, endpoint_max_capacity=high
        ),
        sagemaker_factory=lambda: sagemaker.client,
        sagemaker_runtime_factory=lambda: None,
        store_factory=lambda: store,
        application_autoscaling_factory=no_client,
        s3_factory=lambda: s3_double.client,
    )
    store.set_champion({"run_id": "r20261101000000aaaa", "metrics": {"test_acc": 0.6}})
    run = start(deps, sagemaker)
    finish_tuning(deps, sagemaker, run)
    finish_training(deps, sagemaker, run, test_acc=0.7, live_config=OLD_CONFIG)
    (update,) = sagemaker.requests("UpdateEndpoint")
    assert "RetainAllVariantProperties" not in update
    assert sagemaker.requests("DescribeEndpointConfig") == []
    outcome = settle(deps, sagemaker, run, "InService", run.tuning_job_name)
    assert outcome == {"action": "deployed", "run_id": run.run_id}
    assert not autoscaling.enabled(deps.settings)


def test_settings_read_the_template_variables(monkeypatch):
    monkeypatch.setenv("ENDPOINT_MIN_CAPACITY", "2")
    monkeypatch.setenv("ENDPOINT_MAX_CAPACITY", "6")
    monkeypatch.setenv("ENDPOINT_TARGET_INVOCATIONS", "150")
    settings = Settings(_env_file=None)
    assert autoscaling.scalable_target_request(settings)["MinCapacity"] == 2
    assert autoscaling.scalable_target_request(settings)["MaxCapacity"] == 6
    policy = autoscaling.scaling_policy_request(settings)
    assert policy["TargetTrackingScalingPolicyConfiguration"]["TargetValue"] == 150.0


def test_settings_defaults_leave_auto_scaling_off(monkeypatch):
    for name in ("ENDPOINT_MIN_CAPACITY", "ENDPOINT_MAX_CAPACITY", "ENDPOINT_TARGET_INVOCATIONS"):
        monkeypatch.delenv(name, raising=False)
    settings = Settings(_env_file=None)
    assert (settings.endpoint_min_capacity, settings.endpoint_max_capacity) == (1, 1)
    assert not autoscaling.enabled(settings)


def test_capacity_below_one_is_refused():
    with pytest.raises(ValueError, match="endpoint_min_capacity"):
        make_settings(endpoint_min_capacity=0)


def test_without_a_factory_no_real_client_is_built(monkeypatch):
    """The local stack's call shape: no auto-scaling factory given. It must fail clearly,
    never fall back to real AWS with whatever credentials the shell holds."""
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    deps = Deps(
        settings_factory=make_settings,
        sagemaker_factory=lambda: None,
        sagemaker_runtime_factory=lambda: None,
        store_factory=lambda: None,
    )
    with pytest.raises(RuntimeError, match="no application-autoscaling client is wired"):
        _ = deps.application_autoscaling


def test_lambda_wiring_builds_retrying_clients_within_the_function_budget(monkeypatch):
    from retraining.aws import deps_from_env

    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    monkeypatch.setenv("FUNCTION_TIMEOUT_S", "60")
    deps = deps_from_env()
    client = deps.application_autoscaling
    assert client.meta.service_model.service_name == "application-autoscaling"
    assert client.meta.region_name == "eu-west-1"
    assert client.meta.config.retries == {"mode": "standard", "total_max_attempts": 3}
    assert (client.meta.config.connect_timeout, client.meta.config.read_timeout) == (2.0, 5.0)
    assert deps.application_autoscaling is client  # built once
    assert deps.sagemaker.meta.config.read_timeout == 5.0
    assert deps.s3.meta.service_model.service_name == "s3"
