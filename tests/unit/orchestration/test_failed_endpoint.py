"""A Failed endpoint only accepts DeleteEndpoint: the next deployment deletes it, is retried
while it is Deleting, and then creates it afresh under the same name."""

from __future__ import annotations

import pytest

from retraining import workflow
from retraining.aws_errors import RetryLater, is_retryable
from retraining.records import RunStatus
from tests.unit.orchestration.conftest import endpoint_description, load_event
from tests.unit.orchestration.flow import ARN, expect_describe_final, finish_tuning, start

OLD_CONFIG = "cifar100-r20261101000000aaaa"


def deliver_training_completed(
    deps, sagemaker, run, endpoint: dict | None, created: bool, then=None
):
    """One delivery of the final job's Completed event up to DescribeEndpoint."""
    expect_describe_final(sagemaker, run, test_acc=0.7)
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
