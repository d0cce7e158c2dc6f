from collections.abc import Iterator

import boto3
import pytest
from moto import mock_aws

from retraining.dynamo_store import DynamoRunStore, table_definition
from retraining.records import RunStatus
from tests.unit.orchestration.run_store_contract import RunStoreContract, make_run


class TestDynamoRunStore(RunStoreContract):
    @pytest.fixture
    def store(self) -> Iterator[DynamoRunStore]:
        with mock_aws():
            client = boto3.client("dynamodb", region_name="us-east-1")
            client.create_table(**table_definition("runs"))
            yield DynamoRunStore(client, "runs")


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
