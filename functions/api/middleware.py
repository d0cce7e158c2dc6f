"""Per-request context as plain ASGI middleware (cheaper per request than BaseHTTPMiddleware):
request id, log correlation, the API Gateway path prefix and one access log line."""

from __future__ import annotations

import time
import uuid
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.observability import logger

REQUEST_ID_HEADER = "x-request-id"


def request_id_from_scope(scope: Scope) -> str:
    """API Gateway's request id when behind it (what its access logs show), else the caller's
    X-Request-Id (local stack, tests), else a fresh one."""
    event = scope.get("aws.event") or {}
    request_id = (event.get("requestContext") or {}).get("requestId")
    if isinstance(request_id, str) and request_id:
        return request_id
    for name, value in scope.get("headers") or ():
        if name == REQUEST_ID_HEADER.encode():
            supplied = str(value.decode("latin-1"))[:128]
            if supplied.isprintable() and supplied:
                return supplied
    return str(uuid.uuid4())


def restore_gateway_prefix(scope: Scope) -> None:
    """Put back, as the ASGI ``root_path``, the prefix API Gateway or Mangum took off the path
    the caller used (REST API stage, named HTTP API stage, custom-domain base path), so that
    /docs loads ``/prod/openapi.json``, OpenAPI's ``servers`` and Location headers name URLs
    the caller can follow. ``path`` keeps the prefix too, as ASGI requires (Starlette routes
    on ``path`` minus ``root_path``)."""
    event = scope.get("aws.event")
    if not event:
        return
    called = event.get("rawPath") or (event.get("requestContext") or {}).get("path") or ""
    routed = scope["path"]
    if len(called) > len(routed) and called.endswith(routed):
        prefix = called[: -len(routed)]
        scope["root_path"] = prefix
        scope["path"] = prefix + routed


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        restore_gateway_prefix(scope)
        request_id = request_id_from_scope(scope)
        # Starlette's request.state reads scope["state"]; the error handlers quote this id.
        scope.setdefault("state", {})["request_id"] = request_id
        logger.set_correlation_id(request_id)
        started = time.perf_counter()
        status: dict[str, Any] = {"code": 500}

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                headers = list(message.get("headers", []))
                headers.append((REQUEST_ID_HEADER.encode(), request_id.encode("latin-1")))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            # Successes log at DEBUG (API Gateway's access log already has one line per
            # request; an INFO line here costs ~15% of a warm /predict); errors at INFO.
            code = status["code"]
            log = logger.info if code >= 400 else logger.debug
            log(
                "request",
                method=scope.get("method"),
                path=scope.get("path"),
                status=code,
                latency_ms=round((time.perf_counter() - started) * 1000, 2),
            )
