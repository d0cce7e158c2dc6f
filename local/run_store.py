"""A persistent RunStore on SQLite: the local stack's stand-in for the DynamoDB table.

Each write is one ``BEGIN IMMEDIATE`` transaction, which plays the part of DynamoDB's
conditional writes: the "one active run" slot and status transitions cannot race, even
between processes sharing the file.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from retraining.records import (
    TERMINAL_STATUSES,
    RunAlreadyActive,
    RunNotFound,
    RunRecord,
    RunStatus,
)
from retraining.stores.changes import initial, transitioned, updated
from retraining.stores.memory import one_page, page_start

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (run_id TEXT PRIMARY KEY, status TEXT NOT NULL, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS slots (name TEXT PRIMARY KEY, value TEXT NOT NULL);
"""
_ACTIVE = "active_run"
_CHAMPION = "champion"


class SqliteRunStore:
    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as db:
            db.executescript(_SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        # One connection per operation: safe across the API, event bus and job threads.
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        return db

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        db = self._connect()
        try:
            db.execute("BEGIN IMMEDIATE")
            yield db
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        finally:
            db.close()

    @staticmethod
    def _load(db: sqlite3.Connection, run_id: str) -> RunRecord | None:
        row = db.execute("SELECT body FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        return RunRecord.model_validate_json(row[0]) if row else None

    @staticmethod
    def _save(db: sqlite3.Connection, record: RunRecord) -> None:
        db.execute(
            "INSERT OR REPLACE INTO runs (run_id, status, body) VALUES (?, ?, ?)",
            (record.run_id, record.status.value, record.model_dump_json()),
        )

    @staticmethod
    def _slot(db: sqlite3.Connection, name: str) -> str | None:
        row = db.execute("SELECT value FROM slots WHERE name = ?", (name,)).fetchone()
        return row[0] if row else None

    def create(self, record: RunRecord) -> RunRecord:
        with self._write() as db:
            holder = self._slot(db, _ACTIVE)
            if holder is not None:
                raise RunAlreadyActive(holder)
            if self._load(db, record.run_id) is not None:
                raise ValueError(f"run {record.run_id} already exists")
            stored = initial(record)
            self._save(db, stored)
            if stored.active:
                db.execute("INSERT INTO slots VALUES (?, ?)", (_ACTIVE, stored.run_id))
            return stored

    def get(self, run_id: str) -> RunRecord | None:
        db = self._connect()
        try:
            return self._load(db, run_id)
        finally:
            db.close()

    def list(
        self, limit: int = 20, cursor: str | None = None
    ) -> tuple[list[RunRecord], str | None]:
        after = page_start(limit, cursor)
        db = self._connect()
        try:
            # Run ids start with their creation time, so id order is creation order.
            rows = db.execute(
                "SELECT body FROM runs WHERE (? IS NULL OR run_id < ?) "
                "ORDER BY run_id DESC LIMIT ?",
                (after, after, limit + 1),
            ).fetchall()
        finally:
            db.close()
        return one_page([RunRecord.model_validate_json(body) for (body,) in rows], limit)

    def transition(
        self,
        run_id: str,
        to: RunStatus,
        *,
        expected: frozenset[RunStatus] | set[RunStatus],
        reason: str | None = None,
        **fields: Any,
    ) -> RunRecord:
        with self._write() as db:
            current = self._load(db, run_id)
            if current is None:
                raise RunNotFound(run_id)
            new = transitioned(current, to, expected, reason, fields)
            self._save(db, new)
            if to in TERMINAL_STATUSES:
                db.execute("DELETE FROM slots WHERE name = ? AND value = ?", (_ACTIVE, run_id))
            return new

    def update(self, run_id: str, **fields: Any) -> RunRecord:
        with self._write() as db:
            current = self._load(db, run_id)
            if current is None:
                raise RunNotFound(run_id)
            new = updated(current, fields)
            self._save(db, new)
            return new

    def get_champion(self) -> dict[str, Any] | None:
        db = self._connect()
        try:
            value = self._slot(db, _CHAMPION)
        finally:
            db.close()
        return json.loads(value) if value is not None else None

    def set_champion(self, champion: dict[str, Any]) -> None:
        with self._write() as db:
            db.execute(
                "INSERT OR REPLACE INTO slots VALUES (?, ?)", (_CHAMPION, json.dumps(champion))
            )
