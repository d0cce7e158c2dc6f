"""``python -m local`` (``make run``): the local stack behind the real API under uvicorn."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import uvicorn

from local.data import DataUnavailable
from local.stack import LocalStack

NEXT_STEPS = """
Local stack ready: API on http://{host}:{port}  (docs: http://{host}:{port}/docs)
State (runs, jobs, logs, local S3) lives in {root}

Next:
  python -m local tune --watch                 # tune -> train -> gate -> deploy, with progress
  python -m local predict path/to/image.png    # top-5 labels from the deployed model
  python -m local runs                         # every run and its status
  python -m local show <run id>                # metrics and curve PNGs of a run
  curl -s -X POST http://{host}:{port}/jobs/tune -H 'content-type: application/json' -d '{{}}'
Stop with Ctrl-C; a restart picks up where it stopped (running jobs are reported failed).
"""


def serve(
    host: str,
    port: int,
    root: Path,
    sample_data: bool,
    threads: int,
    schedule_minutes: float | None = None,
) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    try:
        stack = LocalStack(
            root,
            sample_data=sample_data,
            threads_per_job=threads,
            schedule_minutes=schedule_minutes,
        ).start()
    except DataUnavailable as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    import torch

    torch.set_num_threads(threads)  # endpoint inference in this process

    from api.app import create_app

    print(NEXT_STEPS.format(host=host, port=port, root=root.resolve()), flush=True)
    server = uvicorn.Server(uvicorn.Config(create_app(), host=host, port=port, log_level="info"))
    try:
        server.run()
    finally:
        stack.stop()
    return 0
