"""The model registry: list versions, see what serves, deploy (promote or roll back to) an
approved version, approve one that waits for a person."""

from __future__ import annotations

from typing import Annotated, Any

from botocore.exceptions import BotoCoreError, ClientError
from fastapi import APIRouter, Path, Query, Request, Response

from api.blocking import call_blocking
from api.dependencies import DepsDep
from api.errors import ApiError
from api.responses import error_responses
from api.routers.jobs import external_path, run_already_active
from api.schemas import CurrentModel, DeployAccepted, ModelPage, ModelVersionOut
from retraining import model_versions
from retraining.aws_errors import RetryLater, error_code
from retraining.records import RunAlreadyActive
from retraining.sagemaker.registry import VersionNotFound

router = APIRouter(prefix="/models", tags=["models"])

Version = Annotated[
    int, Path(ge=1, le=1_000_000, description="The registry's version number", examples=[2])
]


def _not_found(version: int) -> ApiError:
    return ApiError(404, "model_version_not_found", f"model version {version} is not registered")


def _registry_error(exc: ClientError | BotoCoreError, what: str) -> ApiError:
    code = error_code(exc) if isinstance(exc, ClientError) else type(exc).__name__
    return ApiError(502, "registry_unavailable", f"the model registry could not {what} ({code})")


@router.get(
    "",
    response_model=ModelPage,
    summary="Registered model versions, newest first, with metrics and approval status",
    responses=error_responses(400, 422, 502),
)
async def list_models(
    request: Request,
    deps: DepsDep,
    limit: Annotated[int, Query(ge=1, le=50, description="Page size")] = 10,
    cursor: Annotated[
        str | None, Query(max_length=8192, description="`next_cursor` of the previous page")
    ] = None,
) -> ModelPage:
    try:
        versions, next_cursor = await call_blocking(
            request, model_versions.list_versions, deps, limit, cursor
        )
    except ClientError as exc:
        if cursor and error_code(exc) == "ValidationException":
            raise ApiError(400, "invalid_cursor", "cursor is not one this API returned") from None
        raise _registry_error(exc, "list versions") from exc
    except BotoCoreError as exc:
        raise _registry_error(exc, "list versions") from exc
    return ModelPage(
        models=[ModelVersionOut.model_validate(v) for v in versions], next_cursor=next_cursor
    )


@router.get(
    "/current",
    response_model=CurrentModel,
    summary="The version in service",
    responses=error_responses(404, 502),
)
async def current_model(request: Request, deps: DepsDep) -> CurrentModel:
    try:
        found = await call_blocking(request, model_versions.current, deps)
    except (ClientError, BotoCoreError) as exc:
        raise _registry_error(exc, "describe the version in service") from exc
    if found is None:
        raise ApiError(404, "no_model_in_service", "no model has been deployed yet")
    return CurrentModel.model_validate(found)


@router.get(
    "/{version}",
    response_model=ModelVersionOut,
    summary="One registered version",
    responses=error_responses(404, 422, 502),
)
async def get_model(version: Version, request: Request, deps: DepsDep) -> ModelVersionOut:
    try:
        found = await call_blocking(request, model_versions.get_version, deps, version)
    except VersionNotFound:
        raise _not_found(version) from None
    except (ClientError, BotoCoreError) as exc:
        raise _registry_error(exc, "describe the version") from exc
    return ModelVersionOut.model_validate(found)


@router.post(
    "/{version}/deploy",
    status_code=202,
    response_model=DeployAccepted,
    summary="Put an approved version in service (promote, or roll back to an earlier one)",
    responses=error_responses(404, 409, 422, 502),
)
async def deploy_model(
    version: Version, request: Request, response: Response, deps: DepsDep
) -> DeployAccepted:
    from retraining import workflow  # the orchestration code: loaded by the routes using it

    try:
        run = await call_blocking(request, workflow.start_promotion, version, deps)
    except VersionNotFound:
        raise _not_found(version) from None
    except workflow.VersionNotApproved as exc:
        raise ApiError(409, "model_version_not_approved", str(exc)) from None
    except workflow.AlreadyServing as exc:
        raise ApiError(409, "model_version_in_service", str(exc)) from None
    except RetryLater as exc:
        raise ApiError(409, "endpoint_busy", str(exc), headers={"Retry-After": "60"}) from None
    except RunAlreadyActive as exc:
        raise run_already_active(request, exc) from None
    except (ClientError, BotoCoreError) as exc:
        code = error_code(exc) if isinstance(exc, ClientError) else type(exc).__name__
        raise ApiError(
            502, "deployment_not_started", f"SageMaker refused the deployment ({code})"
        ) from exc
    location = external_path(request, f"/jobs/{run.run_id}")
    response.headers["Location"] = location
    return DeployAccepted(run_id=run.run_id, status=run.status, location=location, version=version)


@router.post(
    "/{version}/approve",
    status_code=202,
    response_model=ModelVersionOut,
    summary="Approve a version that awaits approval (ModelApproval manual); that deploys it",
    responses=error_responses(404, 409, 422, 502),
)
async def approve_model(version: Version, request: Request, deps: DepsDep) -> Any:
    try:
        found = await call_blocking(request, model_versions.approve, deps, version)
    except VersionNotFound:
        raise _not_found(version) from None
    except model_versions.ApprovalNotExpected as exc:
        raise ApiError(409, "approval_not_expected", str(exc)) from None
    except (ClientError, BotoCoreError) as exc:
        raise _registry_error(exc, "approve the version") from exc
    return ModelVersionOut.model_validate(found)
