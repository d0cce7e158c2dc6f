"""Routes only the local server has: where a run's files lie on this machine, how far
a running run has got, and API docs that work offline.

The state folder is the server's (``serve --root``), so the CLI asks it instead of guessing
the folder. Left out of the OpenAPI document: it is no part of the cloud API.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse

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


def running_trial(sagemaker: Any, tuning_job_name: str) -> str | None:
    """The newest trial still running (trials are named ``<tuning job>-<nnn>-<hash>``, so
    the highest name is the newest)."""
    listed = sagemaker.list_training_jobs_for_hyper_parameter_tuning_job(
        HyperParameterTuningJobName=tuning_job_name,
        StatusEquals="InProgress",
        SortBy="Name",
        SortOrder="Descending",
        MaxResults=1,
    )
    summaries = listed.get("TrainingJobSummaries") or []
    return summaries[0]["TrainingJobName"] if summaries else None


def run_progress(root: Path, run: RunRecord, sagemaker: Callable[[], Any]) -> dict[str, Any]:
    """While tuning: trials finished, and the latest epoch line of the newest running trial;
    while training: the final job's latest epoch line."""
    trials = trial = None
    if run.status == "TUNING" and run.tuning_job_name:
        client = sagemaker()
        trials = tuning_trials(client, run.tuning_job_name)
        name = running_trial(client, run.tuning_job_name) if trials["in_progress"] else None
        if name:
            trial = {"training_job_name": name, "epoch": latest_epoch_line(root, name)}
    return {
        "run_id": run.run_id,
        "status": run.status,
        "trials": trials,
        "trial": trial,
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


# Swagger UI's own files, as Powertools for AWS Lambda (a pinned requirement of functions/)
# ships them for its offline Swagger UI. FastAPI's /docs and /redoc load theirs from a CDN:
# a blank page on a machine without a network.
SWAGGER_ASSETS = {
    "swagger-ui-bundle.min.js": "application/javascript",
    "swagger-ui.min.css": "text/css",
}
DOCS_ASSETS_PREFIX = "/local/docs"

NO_SWAGGER_UI = """<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>{title}: API docs</title></head>
<body>
<h1>{title}</h1>
<p>The interactive API docs are off: Swagger UI's files were not found in this environment
(they come with aws-lambda-powertools, a requirement in functions/requirements.txt; run
<code>make install</code>). ReDoc is off too: it loads its script from the internet.</p>
<p>The OpenAPI document is here: <a href="{openapi_url}">{openapi_url}</a>.</p>
</body></html>
"""


def swagger_ui_assets() -> Path | None:
    """The folder that holds Swagger UI's JS and CSS, or None where they are missing."""
    spec = importlib.util.find_spec("aws_lambda_powertools")
    if spec is None or not spec.origin:
        return None
    folder = Path(spec.origin).parent / "event_handler" / "openapi" / "swagger_ui"
    return folder if all((folder / name).is_file() for name in SWAGGER_ASSETS) else None


def serve_docs_offline(app: FastAPI, assets: Path | None) -> None:
    """Replace the app's /docs and /redoc (CDN scripts) with a Swagger UI whose files this
    server sends itself, or, with no ``assets``, a page that says why there is none and links
    the OpenAPI document."""
    replaced = {app.docs_url, app.redoc_url, app.swagger_ui_oauth2_redirect_url}
    app.router.routes[:] = [
        r for r in app.router.routes if getattr(r, "path", None) not in replaced
    ]
    openapi_url = app.openapi_url or "/openapi.json"

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        if assets is None:
            return HTMLResponse(NO_SWAGGER_UI.format(title=app.title, openapi_url=openapi_url))
        return get_swagger_ui_html(
            openapi_url=openapi_url,
            title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{DOCS_ASSETS_PREFIX}/swagger-ui-bundle.min.js",
            swagger_css_url=f"{DOCS_ASSETS_PREFIX}/swagger-ui.min.css",
            swagger_favicon_url="data:,",  # no icon rather than one from the internet
        )

    @app.get("/redoc", include_in_schema=False)
    def redoc() -> RedirectResponse:
        return RedirectResponse("/docs")

    @app.get(DOCS_ASSETS_PREFIX + "/{name}", include_in_schema=False)
    def asset(name: str) -> FileResponse:
        if assets is None or name not in SWAGGER_ASSETS:
            raise ApiError(404, "not_found", f"no docs file {name}")
        return FileResponse(assets / name, media_type=SWAGGER_ASSETS[name])
