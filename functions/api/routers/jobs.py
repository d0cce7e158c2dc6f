from __future__ import annotations

from typing import Annotated

from botocore.exceptions import BotoCoreError, ClientError
from fastapi import APIRouter, Body, Path, Query, Request, Response

from api.blocking import call_blocking
from api.dependencies import DepsDep, StartRunDep
from api.errors import ApiError
from api.responses import error_responses
from api.schemas import RunPage, TuneAccepted
from retraining.overrides import InstanceTypeNotAllowed, TuneOverrides
from retraining.records import DataMissing, RunAlreadyActive, RunRecord

router = APIRouter(prefix="/jobs", tags=["jobs"])

RunId = Annotated[
    str,
    Path(
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9-]+$",
        description="Run id as returned by POST /jobs/tune",
        examples=["r20261128030512ab12"],
    ),
]


def external_path(request: Request, path: str) -> str:
    """``path`` as the caller must request it: behind API Gateway, with the stage or base
    path that the gateway stripped (``root_path``, restored by the request middleware)."""
    return f"{request.scope.get('root_path', '')}{path}"


def run_already_active(request: Request, busy: RunAlreadyActive) -> ApiError:
    """409 with the active run's Location: what a start of any kind answers when busy."""
    active = busy.active_run_id
    headers = {"Location": external_path(request, f"/jobs/{active}")} if active else None
    return ApiError(
        409,
        "run_already_active",
        f"run {active} is still active; retry when it has finished",
        headers=headers,
    )


@router.post(
    "/tune",
    status_code=202,
    response_model=TuneAccepted,
    summary="Start a retraining run (tuning, training, quality gate, deployment)",
    responses=error_responses(400, 409, 422, 502),
)
async def start_tuning(
    request: Request,
    response: Response,
    deps: DepsDep,
    start_run: StartRunDep,
    overrides: Annotated[TuneOverrides | None, Body()] = None,
) -> TuneAccepted:
    overrides = overrides or TuneOverrides()
    try:
        record = await call_blocking(request, start_run, "api", overrides, deps)
    except InstanceTypeNotAllowed as exc:  # start_run checks before taking the slot
        raise ApiError(422, "instance_type_not_allowed", str(exc)) from None
    except DataMissing as exc:  # also before the slot: no run record is written
        raise ApiError(409, "training_data_missing", str(exc)) from None
    except RunAlreadyActive as exc:
        raise run_already_active(request, exc) from None
    except ClientError as exc:
        # start_run has already marked the run FAILED (and freed the slot).
        code = exc.response.get("Error", {}).get("Code", "error")
        raise ApiError(
            502, "tuning_not_started", f"SageMaker refused to start the tuning job ({code})"
        ) from exc
    except BotoCoreError as exc:
        # Never reached SageMaker (bad request parameters, no connection); FAILED as above.
        raise ApiError(
            502,
            "tuning_not_started",
            f"the tuning job could not be requested ({type(exc).__name__})",
        ) from exc
    location = external_path(request, f"/jobs/{record.run_id}")
    response.headers["Location"] = location
    return TuneAccepted(run_id=record.run_id, status=record.status, location=location)


@router.get(
    "",
    response_model=RunPage,
    summary="Recent retraining runs, newest first",
    responses=error_responses(400, 422),
)
async def list_runs(
    request: Request,
    deps: DepsDep,
    limit: Annotated[int, Query(ge=1, le=100, description="Page size")] = 20,
    cursor: Annotated[
        str | None,
        Query(max_length=512, description="`next_cursor` of the previous page"),
    ] = None,
) -> RunPage:
    try:
        runs, next_cursor = await call_blocking(
            request, deps.store.list, limit=limit, cursor=cursor
        )
    except ValueError:
        raise ApiError(400, "invalid_cursor", "cursor is not one this API returned") from None
    return RunPage(runs=runs, next_cursor=next_cursor)


@router.get(
    "/{run_id}",
    response_model=RunRecord,
    summary="One retraining run: status, jobs, metrics, history",
    responses=error_responses(404, 422),
)
async def get_run(run_id: RunId, request: Request, deps: DepsDep) -> RunRecord:
    record = await call_blocking(request, deps.store.get, run_id)
    if record is None:
        raise ApiError(404, "run_not_found", f"run {run_id} not found")
    return record
