"""The run record and the values that travel between the API, the handlers and the store."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class RunStatus(StrEnum):
    PREPARING_DATA = "PREPARING_DATA"  # the training data prefix was empty: a job fills it
    TUNING = "TUNING"
    TRAINING = "TRAINING"
    DEPLOYING = "DEPLOYING"
    DEPLOYED = "DEPLOYED"
    # The gate passed a registered version; the stack deploys only what a person approves
    # (MODEL_APPROVAL=manual): approving it in the registry starts a deployment run.
    AWAITING_APPROVAL = "AWAITING_APPROVAL"
    REJECTED = "REJECTED"
    FAILED = "FAILED"
    ROLLED_BACK = "ROLLED_BACK"


#: A run in one of these holds the "one active run" slot.
ACTIVE_STATUSES: frozenset[RunStatus] = frozenset(
    {RunStatus.PREPARING_DATA, RunStatus.TUNING, RunStatus.TRAINING, RunStatus.DEPLOYING}
)
TERMINAL_STATUSES: frozenset[RunStatus] = frozenset(set(RunStatus) - ACTIVE_STATUSES)

#: What started a run: the API, the schedule, the confidence alarm (``drift``), a promote
#: through the API (``promote``) or a manual approval in the registry (``approval``). The
#: last two deploy a registered version and train nothing.
Trigger = Literal["api", "schedule", "drift", "promote", "approval"]


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def new_run_id(now: datetime | None = None) -> str:
    """``r<yyyymmddhhmmss><4 hex>``: sortable, 19 characters, valid inside SageMaker names
    (a tuning job name allows 32 characters in all)."""
    now = now or datetime.now(UTC)
    return f"r{now:%Y%m%d%H%M%S}{secrets.token_hex(2)}"


class StatusChange(BaseModel):
    status: RunStatus
    at: str
    reason: str | None = None


class RunRecord(BaseModel):
    """One retraining run. Stored as one item/row; status moves only forward."""

    model_config = ConfigDict(extra="ignore")

    run_id: str
    trigger: Trigger
    status: RunStatus
    created_at: str = Field(default_factory=utc_now)
    updated_at: str = Field(default_factory=utc_now)
    overrides: dict[str, Any] = Field(default_factory=dict)
    data_job_name: str | None = None  # the job that prepared CIFAR-100 (first run only)
    tuning_job_name: str | None = None
    warm_start_parent: str | None = None  # the tuning job this run's search started from
    training_job_name: str | None = None
    best_training_job_name: str | None = None
    best_hyperparameters: dict[str, str] = Field(default_factory=dict)
    metrics: dict[str, float] = Field(default_factory=dict)
    # The champion the final job was compared with (its model.tar.gz), if one served.
    champion_model_data_url: str | None = None
    model_package_arn: str | None = None  # the version registered for this run's model
    model_version: int | None = None
    # AWAITING_APPROVAL: the run that deploys this version once it is approved.
    approval_run_id: str | None = None
    model_name: str | None = None
    model_data_url: str | None = None
    endpoint_name: str | None = None
    endpoint_config_name: str | None = None
    error: str | None = None
    history: list[StatusChange] = Field(default_factory=list)

    @property
    def active(self) -> bool:
        return self.status in ACTIVE_STATUSES


class RunAlreadyActive(Exception):
    """start_run was refused: another run holds the active slot."""

    def __init__(self, active_run_id: str | None) -> None:
        super().__init__(f"run {active_run_id} is still active")
        self.active_run_id = active_run_id


class DataMissing(ValueError):
    """start_run was refused: the training channel is empty and the stack cannot fill it
    by itself (checked before the slot is taken: no run record is written)."""


class RunNotFound(Exception):
    def __init__(self, run_id: str) -> None:
        super().__init__(f"run {run_id} not found")
        self.run_id = run_id


class StaleTransition(Exception):
    """A conditional status write lost: the run is no longer in an expected state
    (duplicate or late event). Handlers treat this as "already done"."""

    def __init__(self, run_id: str, to: RunStatus, current: RunStatus | None) -> None:
        super().__init__(f"run {run_id}: cannot move to {to} from {current}")
        self.run_id, self.to, self.current = run_id, to, current
