"""Pure record changes every RunStore implementation shares (memory, DynamoDB, SQLite).

A store only decides *whether* a write may happen (its conditional write); what the new
record looks like is computed here, so every backend records history and validates fields
the same way.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from retraining.records import RunRecord, RunStatus, StaleTransition, StatusChange, utc_now

#: Fields that only ``create`` and ``transition`` may set.
_PROTECTED = frozenset({"run_id", "status", "history", "created_at", "updated_at"})


def check_fields(fields: dict[str, Any]) -> None:
    """Refuse unknown or protected field names (RunRecord ignores extras, a store must not)."""
    unknown = set(fields) - set(RunRecord.model_fields)
    if unknown:
        raise ValueError(f"unknown run fields: {sorted(unknown)}")
    protected = set(fields) & _PROTECTED
    if protected:
        raise ValueError(f"fields set only by create/transition: {sorted(protected)}")


def updated(record: RunRecord, fields: dict[str, Any]) -> RunRecord:
    """``record`` with ``fields`` set (validated) and a fresh ``updated_at``."""
    check_fields(fields)
    data = record.model_dump(mode="json")
    data.update(fields)
    data["updated_at"] = utc_now()
    return RunRecord.model_validate(data)


def transitioned(
    record: RunRecord,
    to: RunStatus,
    expected: Iterable[RunStatus],
    reason: str | None,
    fields: dict[str, Any],
) -> RunRecord:
    """``record`` moved to ``to`` with one more history entry; StaleTransition when its
    current status is not in ``expected``."""
    if record.status not in set(expected):
        raise StaleTransition(record.run_id, to, record.status)
    new = updated(record, fields)
    change = StatusChange(status=to, at=new.updated_at, reason=reason)
    return new.model_copy(update={"status": to, "history": [*new.history, change]})


def initial(record: RunRecord) -> RunRecord:
    """The record as first stored: its starting status is the first history entry."""
    if record.history:
        return record.model_copy(deep=True)
    start = StatusChange(status=record.status, at=record.created_at, reason=None)
    return record.model_copy(update={"history": [start]}, deep=True)
