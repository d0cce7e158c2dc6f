"""Routes only the local server has: where a run's files lie on this machine.

The state folder is the server's (``serve --root``), so the CLI asks it instead of guessing
the folder. Left out of the OpenAPI document: it is no part of the cloud API.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter

from api.errors import ApiError
from retraining.run_store import RunStore


def job_curves(root: Path, training_job_name: str | None) -> list[Path]:
    """The PNGs a local training job wrote to its output data folder (SM_OUTPUT_DATA_DIR)."""
    if not training_job_name:
        return []
    output = root / "sagemaker" / "jobs" / training_job_name / "output" / "data"
    return sorted(output.rglob("*.png"))


def local_router(root: Path, store: RunStore) -> APIRouter:
    router = APIRouter(prefix="/local", include_in_schema=False)

    @router.get("/runs/{run_id}/curves")
    def run_curves(run_id: str) -> dict[str, Any]:
        run = store.get(run_id)
        if run is None:
            raise ApiError(404, "run_not_found", f"run {run_id} not found")
        paths = job_curves(root, run.training_job_name)
        return {
            "run_id": run_id,
            "training_job_name": run.training_job_name,
            "curves": [str(path.resolve()) for path in paths],
        }

    return router
