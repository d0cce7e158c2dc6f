"""The local SageMaker's resources (jobs, models, endpoint configs, endpoints) in SQLite,
so a restarted stack still knows them, as AWS would."""

from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path
from typing import Any


class ResourceTable:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS resources (kind TEXT, name TEXT, seq INTEGER, "
            "body TEXT, PRIMARY KEY (kind, name))"
        )
        self._lock = threading.RLock()

    def get(self, kind: str, name: str) -> dict[str, Any] | None:
        with self._lock:
            row = self._db.execute(
                "SELECT body FROM resources WHERE kind = ? AND name = ?", (kind, name)
            ).fetchone()
        return json.loads(row[0]) if row else None

    def put(self, kind: str, name: str, body: dict[str, Any]) -> None:
        with self._lock:
            self._db.execute(
                "INSERT INTO resources VALUES (?, ?, "
                "(SELECT COALESCE(MAX(seq), 0) + 1 FROM resources), ?) "
                "ON CONFLICT (kind, name) DO UPDATE SET body = excluded.body",
                (kind, name, json.dumps(body)),
            )

    def all(self, kind: str) -> list[dict[str, Any]]:
        """Oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT body FROM resources WHERE kind = ? ORDER BY seq", (kind,)
            ).fetchall()
        return [json.loads(body) for (body,) in rows]

    def close(self) -> None:
        with self._lock:
            self._db.close()
