"""Deterministic SageMaker resource names and tags, all derived from the run id, so a
redelivered event recreates the same names and "already exists" means "already done"."""

from __future__ import annotations

import re
from typing import Literal

Stage = Literal["data", "hpo", "final"]
FINAL_SUFFIX = "-final"
DATA_SUFFIX = "-data"
RUN_ID = re.compile(r"r\d{14}[0-9a-f]{4}")


def tuning_job_name(prefix: str, run_id: str) -> str:
    return f"{prefix}-{run_id}"  # <= 30 characters; SageMaker allows 32


def final_training_job_name(prefix: str, run_id: str) -> str:
    return f"{prefix}-{run_id}{FINAL_SUFFIX}"


def data_job_name(prefix: str, run_id: str) -> str:
    return f"{prefix}-{run_id}{DATA_SUFFIX}"


def model_name(prefix: str, run_id: str) -> str:
    return f"{prefix}-{run_id}"


def endpoint_config_name(prefix: str, run_id: str) -> str:
    return f"{prefix}-{run_id}"


def model_package_group_name(prefix: str) -> str:
    """The stack's one model package group in the registry (the template creates it)."""
    return f"{prefix}-models"


def tags(prefix: str, run_id: str, stage: Stage | None = None) -> list[dict[str, str]]:
    result = [{"Key": "project", "Value": prefix}, {"Key": "run-id", "Value": run_id}]
    if stage:
        result.append({"Key": "stage", "Value": stage})
    return result


def run_id_from_tuning_job(prefix: str, name: str) -> str | None:
    """The run id inside ``<prefix>-<run_id>``; None for someone else's tuning job."""
    head = f"{prefix}-"
    run_id = name[len(head) :] if name.startswith(head) else ""
    return run_id if RUN_ID.fullmatch(run_id) else None


def run_id_from_final_job(prefix: str, name: str) -> str | None:
    """The run id inside ``<prefix>-<run_id>-final``; None for HPO trials (whose names are
    ``<tuning job>-<nnn>-<hash>``) and foreign jobs."""
    return _run_id_before(prefix, name, FINAL_SUFFIX)


def run_id_from_data_job(prefix: str, name: str) -> str | None:
    """The run id inside ``<prefix>-<run_id>-data``; None for any other job."""
    return _run_id_before(prefix, name, DATA_SUFFIX)


def _run_id_before(prefix: str, name: str, suffix: str) -> str | None:
    if not name.endswith(suffix):
        return None
    return run_id_from_tuning_job(prefix, name[: -len(suffix)])
