"""Run a blocking call (boto3, the run store) from an async route.

Behind Mangum each Lambda invocation gets its own event loop and the container serves one
request at a time, so a worker thread buys no concurrency and costs a thread start per request
(measured: about half the warm cost of /predict). Under uvicorn (the local stack) the loop
serves many requests, so the call goes to the thread pool to keep the loop free.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from fastapi import Request
from starlette.concurrency import run_in_threadpool

T = TypeVar("T")


async def call_blocking(request: Request, func: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    if "aws.event" in request.scope:
        return func(*args, **kwargs)
    return await run_in_threadpool(func, *args, **kwargs)
