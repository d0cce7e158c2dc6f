"""A Failed endpoint only accepts DeleteEndpoint: the next deployment deletes it, is retried
while it is Deleting, and then creates it afresh under the same name. Any other busy status,
and a config or model not visible yet, is retried too, never the end of the run."""

from __future__ import annotations

import pytest

from retraining import workflow
from retraining.aws_errors import RetryLater, is_retryable
from retraining.records import RunStatus
from tests.support.run_flow import ARN, expect_gate, finish_tuning, start
from tests.support.sagemaker_double import endpoint_description, load_event

OLD_CONFIG = "cifar100-r20261101000000aaaa"


def deliver_training_completed(
    deps, sagemaker, run, endpoint: dict | None, created: bool, then=None
):
    """One delivery of the final job's Completed event up to DescribeEndpoint."""
    expect_gate(deps, sagemaker, run, test_acc=0.7)
    if created:
        sagemaker.expect("create_model", {"ModelArn": f"{ARN}:model/x"})
        sagemaker.expect("create_endpoint_config", {"EndpointConfigArn": f"{ARN}:ec/x"})
    else:  # a redelivery: both exist already
        sagemaker.fail("create_model", "ValidationException", "Cannot create already existing")
        sagemaker.fail(
            "create_endpoint_config", "ValidationException", "Cannot create already existing"
        )
    if endpoint is None:
        sagemaker.fail("describe_endpoint", "ValidationException", 'Could not find endpoint "x".')
    else:
        sagemaker.expect("describe_endpoint", endpoint)
    if then is not None:  # what SageMaker answers next
        then()
    event = load_event("training_job_final_completed.json", run.run_id)
    return workflow.on_training_job_state_change(event, deps)


@pytest.fixture
def trained(deps, sagemaker, store):
    store.set_champion({"run_id": "r20261101000000aaaa", "metrics": {"test_acc": 0.6}})
    run = start(deps, sagemaker)
    finish_tuning(deps, sagemaker, run)
    return run


def test_failed_endpoint_is_deleted_and_the_retry_creates_it(deps, sagemaker, store, trained):
    failed = {**endpoint_description("Failed", OLD_CONFIG), "FailureReason": "bad image"}
    with pytest.raises(RetryLater, match="Failed and is being deleted") as raised:
        deliver_training_completed(
            deps,
            sagemaker,
            trained,
            failed,
            created=True,
            then=lambda: sagemaker.expect("delete_endpoint", {}),
        )
    assert is_retryable(raised.value)  # the handler re-raises: EventBridge redelivers
    assert sagemaker.requests("DeleteEndpoint") == [{"EndpointName": "cifar100-classifier"}]
    assert sagemaker.requests("UpdateEndpoint") == []  # SageMaker refuses it on Failed
    assert store.get(trained.run_id).status is RunStatus.TRAINING

    deleting = endpoint_description("Deleting", OLD_CONFIG)
    with pytest.raises(RetryLater, match="being deleted"):
        deliver_training_completed(deps, sagemaker, trained, deleting, created=False)
    assert len(sagemaker.requests("DeleteEndpoint")) == 1
    assert store.get(trained.run_id).status is RunStatus.TRAINING

    outcome = deliver_training_completed(
        deps,
        sagemaker,
        trained,
        None,
        created=False,
        then=lambda: sagemaker.expect("create_endpoint", {"EndpointArn": f"{ARN}:endpoint/x"}),
    )
    assert outcome["action"] == "deploying"
    assert "creating endpoint" in outcome["detail"]
    (create,) = sagemaker.requests("CreateEndpoint")
    assert create["EndpointConfigName"] == trained.tuning_job_name
    assert store.get(trained.run_id).status is RunStatus.DEPLOYING
    sagemaker.assert_all_used()


def test_endpoint_already_gone_when_deleting_still_retries(deps, sagemaker, store, trained):
    with pytest.raises(RetryLater):
        deliver_training_completed(
            deps,
            sagemaker,
            trained,
            endpoint_description("Failed", OLD_CONFIG),
            created=True,
            then=lambda: sagemaker.fail(
                "delete_endpoint", "ValidationException", 'Could not find endpoint "x".'
            ),
        )
    assert store.get(trained.run_id).status is RunStatus.TRAINING


# -- an endpoint that is busy cannot take an update yet: retry, never FAILED ----------------


def update_accepted():
    """SageMaker's answer queued for UpdateEndpoint."""
    return {"EndpointArn": f"{ARN}:endpoint/cifar100-classifier"}


@pytest.mark.parametrize(
    "status", ["Updating", "SystemUpdating", "Creating", "RollingBack", "OutOfService"]
)
def test_a_busy_endpoint_is_retried_until_it_can_take_the_update(
    deps, sagemaker, store, trained, status
):
    busy = endpoint_description(status, OLD_CONFIG)
    with pytest.raises(RetryLater, match=status) as raised:
        deliver_training_completed(deps, sagemaker, trained, busy, created=True)
    assert is_retryable(raised.value)
    assert sagemaker.requests("UpdateEndpoint") == []  # it would answer ValidationException
    assert sagemaker.requests("DeleteEndpoint") == []
    assert store.get(trained.run_id).status is RunStatus.TRAINING

    outcome = deliver_training_completed(
        deps,
        sagemaker,
        trained,
        endpoint_description("InService", OLD_CONFIG),
        created=False,
        then=lambda: sagemaker.expect("update_endpoint", update_accepted()),
    )
    assert outcome["action"] == "deploying"
    (update,) = sagemaker.requests("UpdateEndpoint")
    assert update["EndpointConfigName"] == trained.tuning_job_name
    assert store.get(trained.run_id).status is RunStatus.DEPLOYING
    sagemaker.assert_all_used()


def test_an_endpoint_already_updating_to_our_config_is_a_duplicate(deps, sagemaker, store, trained):
    ours = endpoint_description("Updating", OLD_CONFIG, pending=trained.tuning_job_name)
    outcome = deliver_training_completed(deps, sagemaker, trained, ours, created=True)
    assert outcome["action"] == "deploying"
    assert "already moving" in outcome["detail"]
    assert sagemaker.requests("UpdateEndpoint") == []
    assert store.get(trained.run_id).status is RunStatus.DEPLOYING


def test_update_rollback_failed_is_resolved_by_updating_again(deps, sagemaker, store, trained):
    mixed = endpoint_description("UpdateRollbackFailed", OLD_CONFIG)
    outcome = deliver_training_completed(
        deps,
        sagemaker,
        trained,
        mixed,
        created=True,
        then=lambda: sagemaker.expect("update_endpoint", update_accepted()),
    )
    assert outcome["action"] == "deploying"
    assert len(sagemaker.requests("UpdateEndpoint")) == 1


# -- a config or model created a moment ago may not be visible yet ---------------------------


def test_create_endpoint_before_its_config_is_visible_is_retried(deps, sagemaker, store, trained):
    not_yet = "Could not find endpoint configuration " + f'"{trained.tuning_job_name}".'
    with pytest.raises(RetryLater, match="not visible yet") as raised:
        deliver_training_completed(
            deps,
            sagemaker,
            trained,
            None,
            created=True,
            then=lambda: sagemaker.fail("create_endpoint", "ValidationException", not_yet),
        )
    assert is_retryable(raised.value)
    assert store.get(trained.run_id).status is RunStatus.TRAINING

    outcome = deliver_training_completed(
        deps,
        sagemaker,
        trained,
        None,
        created=False,
        then=lambda: sagemaker.expect("create_endpoint", {"EndpointArn": f"{ARN}:endpoint/x"}),
    )
    assert outcome["action"] == "deploying"
    assert len(sagemaker.requests("CreateEndpoint")) == 2
    sagemaker.assert_all_used()


def test_update_endpoint_before_its_config_is_visible_is_retried(deps, sagemaker, store, trained):
    not_yet = "Could not find endpoint configuration " + f'"{trained.tuning_job_name}".'

    def refused():
        sagemaker.fail("update_endpoint", "ValidationException", not_yet)
        # the duplicate-delivery check looks again: still on the old config
        sagemaker.expect("describe_endpoint", endpoint_description("InService", OLD_CONFIG))

    live = endpoint_description("InService", OLD_CONFIG)
    with pytest.raises(RetryLater, match="not visible yet"):
        deliver_training_completed(deps, sagemaker, trained, live, created=True, then=refused)
    assert store.get(trained.run_id).status is RunStatus.TRAINING
    sagemaker.assert_all_used()


def test_endpoint_config_before_its_model_is_visible_is_retried(deps, sagemaker, store, trained):
    expect_gate(deps, sagemaker, trained, test_acc=0.7)
    sagemaker.expect("create_model", {"ModelArn": f"{ARN}:model/x"})
    sagemaker.fail(
        "create_endpoint_config",
        "ValidationException",
        f'Could not find model "{trained.tuning_job_name}".',
    )
    event = load_event("training_job_final_completed.json", trained.run_id)
    with pytest.raises(RetryLater, match="not visible yet"):
        workflow.on_training_job_state_change(event, deps)
    assert store.get(trained.run_id).status is RunStatus.TRAINING
    assert sagemaker.requests("CreateEndpoint") == []


def test_other_validation_errors_still_end_the_run(deps, sagemaker, store, trained):
    def refused():
        sagemaker.fail("update_endpoint", "ValidationException", "Invalid DeploymentConfig")
        sagemaker.expect("describe_endpoint", endpoint_description("InService", OLD_CONFIG))

    live = endpoint_description("InService", OLD_CONFIG)
    outcome = deliver_training_completed(deps, sagemaker, trained, live, created=True, then=refused)
    assert outcome["action"] == "failed"
    assert "Invalid DeploymentConfig" in store.get(trained.run_id).error
    assert store.get(trained.run_id).status is RunStatus.FAILED
