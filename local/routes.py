"""Routes only the local server has: where a run's files lie on this machine, and how far
a running run has got.

The state folder is the server's (``serve --root``), so the CLI asks it instead of guessing
the folder. Left out of the OpenAPI document: it is no part of the cloud API.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi import APIRouter

from api.errors import ApiError
from retraining import workflow
from retraining.deps import get_deps
from retraining.records import RunRecord
from retraining.stores.protocol import RunStore

# Training's per-epoch line, ``epoch=3 train_loss=1.2340 val_acc=0.6120``; per-batch lines
# also start with ``epoch=`` but carry no val_acc.
EPOCH_PREFIX, EPOCH_MARK = "epoch=", " val_acc="


def job_dir(root: Path, job_name: str) -> Path:
    return root / "sagemaker" / "jobs" / job_name


def job_curves(root: Path, training_job_name: str | None) -> list[Path]:
    """The PNGs a local training job wrote to its output data folder (SM_OUTPUT_DATA_DIR)."""
    if not training_job_name:
        return []
    return sorted((job_dir(root, training_job_name) / "output" / "data").rglob("*.png"))


def latest_epoch_line(root: Path, training_job_name: str | None) -> str | None:
    """The last per-epoch line of the job's log (the log the local SageMaker keeps)."""
    if not training_job_name:
        return None
    log = job_dir(root, training_job_name) / "log.txt"
    if not log.is_file():
        return None
    lines = log.read_text(errors="replace").splitlines()
    epochs = (line for line in reversed(lines) if line.startswith(EPOCH_PREFIX))
    return next((line.strip() for line in epochs if EPOCH_MARK in line), None)


def tuning_trials(sagemaker: Any, tuning_job_name: str) -> dict[str, int]:
    """Trials finished (completed, failed or stopped) out of the tuning job's maximum, as
    DescribeHyperParameterTuningJob reports them."""
    job = sagemaker.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=tuning_job_name)
    counters = job["TrainingJobStatusCounters"]
    limits = job["HyperParameterTuningJobConfig"]["ResourceLimits"]
    finished = sum(
        counters.get(k, 0) for k in ("Completed", "RetryableError", "NonRetryableError", "Stopped")
    )
    return {
        "finished": finished,
        "in_progress": counters.get("InProgress", 0),
        "total": limits["MaxNumberOfTrainingJobs"],
    }


def run_progress(root: Path, run: RunRecord, sagemaker: Callable[[], Any]) -> dict[str, Any]:
    """Trials while tuning, the final job's latest epoch line while training."""
    trials = None
    if run.status == "TUNING" and run.tuning_job_name:
        trials = tuning_trials(sagemaker(), run.tuning_job_name)
    return {
        "run_id": run.run_id,
        "status": run.status,
        "trials": trials,
        "training_job_name": run.training_job_name,
        "epoch": latest_epoch_line(root, run.training_job_name),
    }


def local_router(
    root: Path, store: RunStore, sagemaker: Callable[[], Any] | None = None
) -> APIRouter:
    """``sagemaker``: the client the stack installed (``get_deps``) unless a test passes one."""
    router = APIRouter(prefix="/local", include_in_schema=False)
    sagemaker = sagemaker or (lambda: get_deps().sagemaker)

    def get_run(run_id: str) -> RunRecord:
        run = store.get(run_id)
        if run is None:
            raise ApiError(404, "run_not_found", f"run {run_id} not found")
        return run

    @router.get("/runs/{run_id}/curves")
    def run_curves(run_id: str) -> dict[str, Any]:
        run = get_run(run_id)
        paths = job_curves(root, run.training_job_name)
        return {
            "run_id": run_id,
            "training_job_name": run.training_job_name,
            "curves": [str(path.resolve()) for path in paths],
        }

    @router.get("/runs/{run_id}/progress")
    def progress(run_id: str) -> dict[str, Any]:
        return run_progress(root, get_run(run_id), sagemaker)

    @router.post("/reconcile")
    def reconcile_now() -> dict[str, Any]:
        """Take the step a lost event would have taken for the active run, now (as invoking
        the cloud's ReconcileFunction does)."""
        return workflow.reconcile(get_deps())

    return router
