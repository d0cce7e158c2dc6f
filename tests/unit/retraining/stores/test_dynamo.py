import threading
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from botocore.stub import Stubber
from moto import mock_aws

from retraining.aws_errors import RetryLater, is_retryable
from retraining.records import RunStatus
from retraining.stores.dynamo import DynamoRunStore, table_definition
from tests.support.run_store_contract import RunStoreContract, make_run


class SerialisedClient:
    """A client whose calls reach in-process moto one at a time. DynamoDB's transactions are
    serializable (DynamoDB Developer Guide, "Isolation levels for DynamoDB transactions");
    moto checks a transaction's conditions and then writes, so threads calling it at once can
    both pass a condition (seen once in CI). One lock gives moto the isolation the service has."""

    def __init__(self, client: Any) -> None:
        self._client, self._lock = client, threading.Lock()

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._client, name)
        if not callable(attribute):
            return attribute

        def call(*args: Any, **kwargs: Any) -> Any:
            with self._lock:
                return attribute(*args, **kwargs)

        return call


class TestDynamoRunStore(RunStoreContract):
    @pytest.fixture
    def store(self) -> Iterator[DynamoRunStore]:
        with mock_aws():
            client = boto3.client("dynamodb", region_name="us-east-1")
            client.create_table(**table_definition("runs"))
            yield DynamoRunStore(SerialisedClient(client), "runs")


def test_lock_item_is_held_by_the_active_run_and_released_on_finish() -> None:
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        client.create_table(**table_definition("runs"))
        store = DynamoRunStore(client, "runs")
        run = store.create(make_run())
        lock = client.get_item(TableName="runs", Key={"run_id": {"S": "#active"}})["Item"]
        assert lock["holder"] == {"S": run.run_id}
        store.transition(run.run_id, RunStatus.REJECTED, expected={RunStatus.TUNING})
        assert "Item" not in client.get_item(TableName="runs", Key={"run_id": {"S": "#active"}})


# -- two deliveries writing the same run at once: DynamoDB cancels one with TransactionConflict


def _conflict(stubber: Stubber) -> None:
    stubber.add_client_error(
        "transact_write_items",
        service_error_code="TransactionCanceledException",
        service_message="Transaction cancelled, please refer cancellation reasons for specific "
        "reasons [TransactionConflict]",
        modeled_fields={
            "CancellationReasons": [
                {"Code": "TransactionConflict", "Message": "Transaction is ongoing for the item"}
            ]
        },
    )


def _stubbed_store() -> tuple[DynamoRunStore, Stubber, dict]:
    client = boto3.client("dynamodb", region_name="us-east-1")
    store = DynamoRunStore(client, "runs")
    run = make_run(status=RunStatus.TRAINING)
    item = store._run_item(run, 3)
    return store, Stubber(client), item


def test_a_transaction_conflict_is_re_read_and_retried() -> None:
    store, stubber, item = _stubbed_store()
    run_id = item["run_id"]["S"]
    stubber.add_response("get_item", {"Item": item})
    _conflict(stubber)
    stubber.add_response("get_item", {"Item": item})  # the other writer left it unchanged
    stubber.add_response("transact_write_items", {})
    with stubber:
        new = store.update(run_id, metrics={"test_acc": 0.7})
        stubber.assert_no_pending_responses()
    assert new.metrics == {"test_acc": 0.7}


def test_endless_transaction_conflicts_are_bounded_and_retryable() -> None:
    store, stubber, item = _stubbed_store()
    for _ in range(5):
        stubber.add_response("get_item", {"Item": item})
        _conflict(stubber)
    with stubber, pytest.raises(RetryLater, match="too many concurrent writers") as raised:
        store.transition(item["run_id"]["S"], RunStatus.DEPLOYING, expected={RunStatus.TRAINING})
    assert is_retryable(raised.value)  # EventBridge delivers the event again, run not FAILED


def test_other_cancellations_are_not_retried() -> None:
    store, stubber, item = _stubbed_store()
    stubber.add_response("get_item", {"Item": item})
    stubber.add_client_error(
        "transact_write_items",
        service_error_code="TransactionCanceledException",
        modeled_fields={"CancellationReasons": [{"Code": "ValidationError"}]},
    )
    with stubber, pytest.raises(ClientError, match="TransactionCanceledException"):
        store.update(item["run_id"]["S"], metrics={"test_acc": 0.7})
