"""The run store interface. DynamoDB in the cloud, SQLite in the local stack; both pass the
same contract tests (tests/unit/orchestration/test_run_store_contract.py)."""

from __future__ import annotations

from typing import Any, Protocol

from retraining.records import RunRecord, RunStatus


class RunStore(Protocol):
    def create(self, record: RunRecord) -> RunRecord:
        """Insert a new run and take the single active slot atomically.
        Raises RunAlreadyActive when another run holds it."""

    def get(self, run_id: str) -> RunRecord | None: ...

    def list(
        self, limit: int = 20, cursor: str | None = None
    ) -> tuple[list[RunRecord], str | None]:
        """Newest first; ``cursor`` is the opaque value a previous page returned."""

    def transition(
        self,
        run_id: str,
        to: RunStatus,
        *,
        expected: frozenset[RunStatus] | set[RunStatus],
        reason: str | None = None,
        **fields: Any,
    ) -> RunRecord:
        """Conditional write: set status ``to`` (and ``fields``) only if the current status is
        in ``expected``; append to history; release the active slot when ``to`` is terminal.
        Raises StaleTransition otherwise, RunNotFound if there is no such run."""

    def update(self, run_id: str, **fields: Any) -> RunRecord:
        """Set fields without changing status (e.g. job names once created)."""

    def get_champion(self) -> dict[str, Any] | None:
        """The model in service: {run_id, model_name, endpoint_config_name, metrics, ...}."""

    def set_champion(self, champion: dict[str, Any]) -> None: ...
