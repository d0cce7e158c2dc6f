"""An in-process RunStore: for unit tests and anything that needs no persistence.

Thread-safe with one lock, so the "one active run" rule holds under concurrent requests
the same way the DynamoDB conditional writes make it hold.
"""

from __future__ import annotations

import base64
import copy
import threading
from typing import Any

from retraining.records import (
    TERMINAL_STATUSES,
    RunAlreadyActive,
    RunNotFound,
    RunRecord,
    RunStatus,
)
from retraining.sagemaker.names import RUN_ID
from retraining.stores.changes import initial, transitioned, updated


def encode_cursor(run_id: str) -> str:
    return base64.urlsafe_b64encode(run_id.encode()).decode()


def page_start(limit: int, cursor: str | None) -> str | None:
    """Check a list request; the run id the page starts below (None: the newest run)."""
    if limit < 1:
        raise ValueError("limit must be at least 1")
    return decode_cursor(cursor) if cursor else None


def one_page(newest_first: list[RunRecord], limit: int) -> tuple[list[RunRecord], str | None]:
    """Up to ``limit`` records, and the cursor of the next page when ``newest_first`` holds
    more (callers fetch ``limit + 1`` to know)."""
    page = newest_first[:limit]
    more = len(newest_first) > limit
    return page, encode_cursor(page[-1].run_id) if more else None


def decode_cursor(cursor: str) -> str:
    try:
        run_id = base64.urlsafe_b64decode(cursor.encode()).decode()
    except (ValueError, UnicodeDecodeError):
        run_id = ""
    if not RUN_ID.fullmatch(run_id):
        raise ValueError(f"invalid cursor {cursor!r}")
    return run_id


class InMemoryRunStore:
    def __init__(self) -> None:
        self._runs: dict[str, RunRecord] = {}
        self._active: str | None = None
        self._champion: dict[str, Any] | None = None
        self._lock = threading.Lock()

    def create(self, record: RunRecord) -> RunRecord:
        with self._lock:
            if self._active is not None:
                raise RunAlreadyActive(self._active)
            if record.run_id in self._runs:
                raise ValueError(f"run {record.run_id} already exists")
            stored = initial(record)
            self._runs[record.run_id] = stored
            if stored.active:
                self._active = stored.run_id
            return stored.model_copy(deep=True)

    def get(self, run_id: str) -> RunRecord | None:
        with self._lock:
            record = self._runs.get(run_id)
            return record.model_copy(deep=True) if record else None

    def list(
        self, limit: int = 20, cursor: str | None = None
    ) -> tuple[list[RunRecord], str | None]:
        after = page_start(limit, cursor)
        with self._lock:
            # Run ids start with their creation time, so id order is creation order.
            ids = sorted(self._runs, reverse=True)
            if after is not None:
                ids = [run_id for run_id in ids if run_id < after]
            records = [self._runs[run_id].model_copy(deep=True) for run_id in ids[: limit + 1]]
        return one_page(records, limit)

    def transition(
        self,
        run_id: str,
        to: RunStatus,
        *,
        expected: frozenset[RunStatus] | set[RunStatus],
        reason: str | None = None,
        **fields: Any,
    ) -> RunRecord:
        with self._lock:
            current = self._runs.get(run_id)
            if current is None:
                raise RunNotFound(run_id)
            new = transitioned(current, to, expected, reason, fields)
            self._runs[run_id] = new
            if to in TERMINAL_STATUSES and self._active == run_id:
                self._active = None
            return new.model_copy(deep=True)

    def update(self, run_id: str, **fields: Any) -> RunRecord:
        with self._lock:
            current = self._runs.get(run_id)
            if current is None:
                raise RunNotFound(run_id)
            new = updated(current, fields)
            self._runs[run_id] = new
            return new.model_copy(deep=True)

    def get_champion(self) -> dict[str, Any] | None:
        with self._lock:
            return copy.deepcopy(self._champion)

    def set_champion(self, champion: dict[str, Any]) -> None:
        with self._lock:
            self._champion = copy.deepcopy(champion)
