"""``python -m local`` (``make run``): the local stack behind the real API under uvicorn."""

from __future__ import annotations

import contextlib
import logging
import sys
from pathlib import Path

import uvicorn

from local.data import DataUnavailable
from local.routes import local_router
from local.rules import TemplateError
from local.stack import LocalStack

CLI_DEFAULT_URL = "http://127.0.0.1:8000"  # where the CLI looks unless LOCAL_API_URL says

NEXT_STEPS = """
Local stack ready: API on http://{host}:{port}  (docs: http://{host}:{port}/docs)
State (runs, jobs, logs, local S3) lives in {root}

Next, in another terminal{cli_note}:
  {cli} tune --watch       # tune -> train -> gate -> deploy, with progress
  {cli} predict image.png  # top-5 labels from the deployed model
  {cli} runs               # every run and its status
  {cli} show <run id>      # metrics and curve PNGs of a run
  curl -s -X POST {url}/jobs/tune -H 'content-type: application/json' -d '{{}}'
Stop with Ctrl-C; a restart picks up where it stopped (running jobs are reported failed).
"""


def _cli() -> str:
    """How to run the CLI with this interpreter (the project's .venv, usually not activated)."""
    python = Path(sys.executable)
    with contextlib.suppress(ValueError):
        python = python.relative_to(Path.cwd())
    return f"{python} -m local"


def serve(
    host: str,
    port: int,
    root: Path,
    sample_data: bool,
    threads: int,
    schedule_minutes: float | None = None,
    *,
    reconcile_seconds: float | None = None,
    drop_sagemaker_events: bool = False,
) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    try:
        stack = LocalStack(
            root,
            sample_data=sample_data,
            threads_per_job=threads,
            schedule_minutes=schedule_minutes,
            reconcile_seconds=reconcile_seconds,
            drop_sagemaker_events=drop_sagemaker_events,
        ).start()
    except (DataUnavailable, TemplateError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    import torch

    torch.set_num_threads(threads)  # endpoint inference in this process

    from api.app import create_app

    url = f"http://{host}:{port}"
    print(
        NEXT_STEPS.format(
            host=host,
            port=port,
            url=url,
            root=root.resolve(),
            cli=_cli(),
            # The CLI assumes the default address; say how to reach any other.
            cli_note="" if url == CLI_DEFAULT_URL else f" (first: export LOCAL_API_URL={url})",
        ),
        flush=True,
    )
    app = create_app()
    app.include_router(local_router(stack.root, stack.store))
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="info"))
    try:
        server.run()
    finally:
        stack.stop()
    return 0
