"""RunStore on one DynamoDB table (``RUNS_TABLE``).

Table: partition key ``run_id`` (S), no sort key, on-demand billing. Three kinds of item:

* a run: ``run_id=<run id>``, ``entity="run"``, ``status``, ``version`` (optimistic lock)
  and ``doc`` (the RunRecord as JSON, so floats need no Decimal round trip);
* the active-slot lock: ``run_id="#active"``, ``holder=<run id>``: created with
  ``attribute_not_exists`` in the same transaction as the run item, deleted in the same
  transaction as the run's terminal transition. "One active run" is therefore a conditional
  write, never a read-then-write;
* the champion: ``run_id="#champion"``, ``doc``.

Listing uses a sparse GSI ``by-time`` (partition ``entity``, sort ``run_id``, projection ALL):
only run items carry ``entity``, and run ids start with their creation time, so a
descending query is newest first and pages with DynamoDB's own LastEvaluatedKey. A scan would
read every item on every page; the index reads one page. Runs are created a few times a day,
so the single ``entity`` partition is nowhere near a hot-partition limit. The index is
eventually consistent: a run created a moment ago may be missing from a list for well under
a second (``get`` is strongly consistent).
"""

from __future__ import annotations

import base64
import binascii
import json
import random
import time
from collections.abc import Callable
from typing import Any

from botocore.exceptions import ClientError

from retraining.aws_errors import RetryLater
from retraining.records import (
    TERMINAL_STATUSES,
    RunAlreadyActive,
    RunNotFound,
    RunRecord,
    RunStatus,
)
from retraining.stores.changes import initial, transitioned, updated

LOCK_KEY = "#active"
CHAMPION_KEY = "#champion"
RUN_ENTITY = "run"
LIST_INDEX = "by-time"
#: Optimistic-lock retries when another writer updated the same run in between.
_MAX_ATTEMPTS = 5
#: Cancellation codes that mean "another writer got there first": re-read and re-decide.
#: TransactionConflict is DynamoDB's answer when two transactions touch the same item at
#: once (two deliveries of one event); ConditionalCheckFailed when the other one committed.
_LOST_RACE = frozenset({"ConditionalCheckFailed", "TransactionConflict"})
#: Upper bound of the jittered pause before retrying a TransactionConflict (seconds).
_CONFLICT_PAUSE_S = 0.05


def table_definition(table_name: str) -> dict[str, Any]:
    """CreateTable arguments for this schema (tests and the local stack; the template
    declares the same table)."""
    return {
        "TableName": table_name,
        "BillingMode": "PAY_PER_REQUEST",
        "AttributeDefinitions": [
            {"AttributeName": "run_id", "AttributeType": "S"},
            {"AttributeName": "entity", "AttributeType": "S"},
        ],
        "KeySchema": [{"AttributeName": "run_id", "KeyType": "HASH"}],
        "GlobalSecondaryIndexes": [
            {
                "IndexName": LIST_INDEX,
                "KeySchema": [
                    {"AttributeName": "entity", "KeyType": "HASH"},
                    {"AttributeName": "run_id", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "ALL"},
            }
        ],
    }


def _error_code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def _cancel_codes(error: ClientError) -> list[str]:
    """Per-item reasons of a cancelled transaction, in request order."""
    reasons = error.response.get("CancellationReasons") or []
    return [str(reason.get("Code", "None")) for reason in reasons]


class DynamoRunStore:
    def __init__(self, client: Any, table_name: str) -> None:
        self._client = client
        self._table = table_name

    # -- items -----------------------------------------------------------------------------

    def _run_item(self, record: RunRecord, version: int) -> dict[str, Any]:
        return {
            "run_id": {"S": record.run_id},
            "entity": {"S": RUN_ENTITY},
            "status": {"S": record.status.value},
            "version": {"N": str(version)},
            "doc": {"S": record.model_dump_json()},
        }

    @staticmethod
    def _record(item: dict[str, Any]) -> RunRecord:
        return RunRecord.model_validate_json(item["doc"]["S"])

    def _read(self, run_id: str) -> tuple[RunRecord, int] | None:
        item = self._client.get_item(
            TableName=self._table, Key={"run_id": {"S": run_id}}, ConsistentRead=True
        ).get("Item")
        if item is None or item.get("entity", {}).get("S") != RUN_ENTITY:
            return None
        return self._record(item), int(item["version"]["N"])

    def _lock_holder(self) -> str | None:
        item = self._client.get_item(
            TableName=self._table, Key={"run_id": {"S": LOCK_KEY}}, ConsistentRead=True
        ).get("Item")
        return item["holder"]["S"] if item else None

    # -- RunStore --------------------------------------------------------------------------

    def create(self, record: RunRecord) -> RunRecord:
        stored = initial(record)
        run_put = {
            "Put": {
                "TableName": self._table,
                "Item": self._run_item(stored, 1),
                "ConditionExpression": "attribute_not_exists(run_id)",
            }
        }
        if not stored.active:  # an already-finished run (imports) takes no slot
            actions = [run_put]
        else:
            lock_put = {
                "Put": {
                    "TableName": self._table,
                    "Item": {"run_id": {"S": LOCK_KEY}, "holder": {"S": stored.run_id}},
                    "ConditionExpression": "attribute_not_exists(run_id)",
                }
            }
            actions = [lock_put, run_put]
        try:
            self._client.transact_write_items(TransactItems=actions)
        except ClientError as error:
            if _error_code(error) != "TransactionCanceledException":
                raise
            codes = _cancel_codes(error)
            if stored.active and codes and codes[0] == "ConditionalCheckFailed":
                raise RunAlreadyActive(self._lock_holder()) from error
            if codes and codes[-1] == "ConditionalCheckFailed":
                raise ValueError(f"run {stored.run_id} already exists") from error
            raise
        return stored

    def get(self, run_id: str) -> RunRecord | None:
        found = self._read(run_id)
        return found[0] if found else None

    def list(
        self, limit: int = 20, cursor: str | None = None
    ) -> tuple[list[RunRecord], str | None]:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        request: dict[str, Any] = {
            "TableName": self._table,
            "IndexName": LIST_INDEX,
            "KeyConditionExpression": "entity = :run",
            "ExpressionAttributeValues": {":run": {"S": RUN_ENTITY}},
            "ScanIndexForward": False,
            "Limit": limit,
        }
        if cursor:
            request["ExclusiveStartKey"] = _decode_cursor(cursor)
        response = self._client.query(**request)
        records = [self._record(item) for item in response.get("Items", [])]
        last = response.get("LastEvaluatedKey")
        if last and len(records) == limit and not self._has_more(records[-1].run_id):
            last = None  # DynamoDB hands a key back on an exactly full last page
        return records, _encode_cursor(last) if last else None

    def _has_more(self, after_run_id: str) -> bool:
        response = self._client.query(
            TableName=self._table,
            IndexName=LIST_INDEX,
            KeyConditionExpression="entity = :run AND run_id < :after",
            ExpressionAttributeValues={":run": {"S": RUN_ENTITY}, ":after": {"S": after_run_id}},
            ScanIndexForward=False,
            Limit=1,
            Select="COUNT",
        )
        return bool(response.get("Count"))

    def transition(
        self,
        run_id: str,
        to: RunStatus,
        *,
        expected: frozenset[RunStatus] | set[RunStatus],
        reason: str | None = None,
        **fields: Any,
    ) -> RunRecord:
        return self._write(
            run_id, lambda current: transitioned(current, to, expected, reason, fields)
        )

    def update(self, run_id: str, **fields: Any) -> RunRecord:
        return self._write(run_id, lambda current: updated(current, fields))

    def _write(self, run_id: str, change: Callable[[RunRecord], RunRecord]) -> RunRecord:
        """Read, change, write back only if nobody wrote in between (version check); on a
        lost race re-read and re-decide, so a concurrent transition is never overwritten.
        Still losing after _MAX_ATTEMPTS: RetryLater, so the event is delivered again."""
        for attempt in range(_MAX_ATTEMPTS):
            found = self._read(run_id)
            if found is None:
                raise RunNotFound(run_id)
            current, version = found
            new = change(current)  # raises StaleTransition / ValueError
            put = {
                "Put": {
                    "TableName": self._table,
                    "Item": self._run_item(new, version + 1),
                    "ConditionExpression": "version = :seen",
                    "ExpressionAttributeValues": {":seen": {"N": str(version)}},
                }
            }
            actions = [put]
            if new.status in TERMINAL_STATUSES and current.status not in TERMINAL_STATUSES:
                actions.append(self._release_lock(run_id))
            try:
                self._client.transact_write_items(TransactItems=actions)
                return new
            except ClientError as error:
                if _error_code(error) != "TransactionCanceledException":
                    raise
                codes = _cancel_codes(error)
                if len(codes) > 1 and codes[0] == "None" and codes[1] == "ConditionalCheckFailed":
                    # The slot is held by another run (cannot happen through this store);
                    # finish this run anyway rather than wedge it.
                    self._client.transact_write_items(TransactItems=[put])
                    return new
                if not codes or codes[0] not in _LOST_RACE:
                    raise
                if codes[0] == "TransactionConflict":  # the other one is still in flight
                    time.sleep(random.uniform(0, _CONFLICT_PAUSE_S * (attempt + 1)))
        raise RetryLater(f"run {run_id}: too many concurrent writers")

    def _release_lock(self, run_id: str) -> dict[str, Any]:
        return {
            "Delete": {
                "TableName": self._table,
                "Key": {"run_id": {"S": LOCK_KEY}},
                "ConditionExpression": "attribute_not_exists(run_id) OR holder = :me",
                "ExpressionAttributeValues": {":me": {"S": run_id}},
            }
        }

    def get_champion(self) -> dict[str, Any] | None:
        item = self._client.get_item(
            TableName=self._table, Key={"run_id": {"S": CHAMPION_KEY}}, ConsistentRead=True
        ).get("Item")
        return json.loads(item["doc"]["S"]) if item else None

    def set_champion(self, champion: dict[str, Any]) -> None:
        self._client.put_item(
            TableName=self._table,
            Item={"run_id": {"S": CHAMPION_KEY}, "doc": {"S": json.dumps(champion)}},
        )


def _encode_cursor(key: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(key, sort_keys=True).encode()).decode()


def _decode_cursor(cursor: str) -> dict[str, Any]:
    try:
        key: dict[str, Any] = json.loads(base64.urlsafe_b64decode(cursor.encode()))
        run_id = key["run_id"]["S"]
        if set(key) != {"run_id", "entity"} or key["entity"] != {"S": RUN_ENTITY}:
            raise ValueError
        if not isinstance(run_id, str) or not run_id.startswith("r"):
            raise ValueError
    except (ValueError, KeyError, TypeError, binascii.Error, UnicodeDecodeError) as exc:
        raise ValueError(f"invalid cursor {cursor!r}") from exc
    return key
