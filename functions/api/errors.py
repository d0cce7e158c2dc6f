"""One error body for every failure: ``{"error": {"code", "message", "request_id"}}``.

Routes raise :class:`ApiError`; FastAPI's own validation errors and Starlette's 404/405 are
rewritten into the same shape by the handlers that :func:`install_error_handlers` registers.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from api.observability import count_error, logger


class ErrorDetail(BaseModel):
    code: str = Field(description="Stable, machine-readable error code")
    message: str = Field(description="What went wrong, for people")
    request_id: str = Field(description="Quote this when reporting a problem")
    details: list[dict[str, Any]] | None = Field(
        None, description="Per-field problems, for validation errors"
    )


class ErrorBody(BaseModel):
    error: ErrorDetail

    model_config = {
        "json_schema_extra": {
            "examples": [
                {
                    "error": {
                        "code": "unsupported_media_type",
                        "message": "image must be one of: PNG, JPEG",
                        "request_id": "c6af9ac6-7b61-11e6-9a41-93e8deadbeef",
                    }
                }
            ]
        }
    }


class ApiError(Exception):
    """An error with an HTTP status, a stable code and a message safe to show the caller."""

    def __init__(
        self,
        status_code: int,
        code: str,
        message: str,
        *,
        headers: dict[str, str] | None = None,
        details: list[dict[str, Any]] | None = None,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.code = code
        self.message = message
        self.headers = headers or {}
        self.details = details


def request_id_of(request: Request) -> str:
    return getattr(request.state, "request_id", "") or ""


def error_response(
    request: Request,
    status_code: int,
    code: str,
    message: str,
    *,
    headers: dict[str, str] | None = None,
    details: list[dict[str, Any]] | None = None,
) -> JSONResponse:
    count_error(code, status_code)
    body: dict[str, Any] = {
        "code": code,
        "message": message,
        "request_id": request_id_of(request),
    }
    if details is not None:
        body["details"] = details
    return JSONResponse({"error": body}, status_code=status_code, headers=headers)


# Starlette's reason codes for the statuses it raises itself (unknown route, wrong method ...).
_HTTP_CODES = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
}


def _field_path(loc: tuple[Any, ...] | list[Any]) -> str:
    return ".".join(str(part) for part in loc) or "body"


def _validation_response(request: Request, exc: RequestValidationError) -> JSONResponse:
    errors = list(exc.errors())
    if any(err.get("type") == "json_invalid" for err in errors):
        return error_response(request, 400, "invalid_json", "request body is not valid JSON")
    if any(
        err.get("type") == "missing" and tuple(err.get("loc", ())) == ("body",) for err in errors
    ):
        return error_response(request, 400, "missing_body", "request body is required")
    details = [
        {"field": _field_path(err.get("loc", ())), "message": str(err.get("msg", ""))}
        for err in errors
    ]
    message = "; ".join(f"{d['field']}: {d['message']}" for d in details[:5])
    return error_response(request, 422, "validation_error", message, details=details)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        return error_response(
            request,
            exc.status_code,
            exc.code,
            exc.message,
            headers=exc.headers,
            details=exc.details,
        )

    @app.exception_handler(RequestValidationError)
    async def _invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        return _validation_response(request, exc)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _HTTP_CODES.get(exc.status_code, f"http_{exc.status_code}")
        message = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ")
        if exc.status_code == 404:
            message = f"no route for {request.method} {request.url.path}"
        return error_response(
            request, exc.status_code, code, message, headers=getattr(exc, "headers", None)
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        # Never leak internals; the log line carries the traceback and the request id.
        logger.exception("unhandled error")
        return error_response(request, 500, "internal_error", "internal server error")
