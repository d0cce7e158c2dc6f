"""``cifar100 serve`` (``python -m local``, ``make run``): the local stack behind the real API
under uvicorn.

Quiet by default: our own loggers (``local.*``, ``retraining.*``) at INFO as plain lines,
everything else (uvicorn, the API's JSON request logs and metric lines) only from WARNING,
no access log; ``--verbose`` shows it all. One Ctrl-C or SIGTERM stops it and exits 0; a
second Ctrl-C while it stops cuts the wait short, also quietly.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import shutil
import signal
import socket
import sys
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fastapi import FastAPI

    from retraining.stores.protocol import RunStore

CLI_DEFAULT_URL = "http://127.0.0.1:8000"  # where the CLI looks unless --url/LOCAL_API_URL say
OUR_LOGGERS = ("local", "retraining")

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
{log_note}"""


class CannotListen(Exception):
    """The address to serve on is taken (or not ours to take)."""


def _relative(path: Path) -> str:
    with contextlib.suppress(ValueError):
        return str(path.relative_to(Path.cwd()))
    return str(path)


def cli_command() -> str:
    """How to run the CLI from here: ``cifar100`` when that is this environment's script on
    PATH, else its path (the project's .venv, usually not activated), else ``python -m local``
    with this interpreter."""
    script = Path(sys.executable).parent / "cifar100"
    if script.is_file():
        on_path = shutil.which("cifar100")
        if on_path and Path(on_path).resolve() == script.resolve():
            return "cifar100"
        return _relative(script)
    return f"{_relative(Path(sys.executable))} -m local"


def bind(host: str, port: int) -> socket.socket:
    """The server's socket, bound but not listening: a busy port fails here, before the stack
    starts, and clients are refused (not kept waiting) until the server is ready."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except socket.gaierror as error:
        raise CannotListen(f"cannot listen on {host}:{port}: {error.strerror}") from None
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as error:
        sock.close()
        if error.errno == errno.EADDRINUSE:
            raise CannotListen(
                f"port {port} on {host} is in use (another local stack?); stop that one, "
                f"or serve on another port: --port {port + 1}"
            ) from None
        raise CannotListen(f"cannot listen on {host}:{port}: {error.strerror}") from None
    return sock


def _ours_or_a_warning(record: logging.LogRecord) -> bool:
    return record.levelno >= logging.WARNING or record.name.partition(".")[0] in OUR_LOGGERS


def configure_logging(verbose: bool) -> None:
    """Before the API is imported: Powertools reads its settings at import."""
    if not verbose:
        os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")  # JSON request/event logs
        os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")  # EMF metric lines
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(message)s"))
    if not verbose:
        handler.addFilter(_ours_or_a_warning)
    logging.basicConfig(level=logging.INFO, handlers=[handler], force=True)


class _Interrupts:
    """The SIGINT/SIGTERM handler: KeyboardInterrupt (a quiet stop) while the stack starts or
    stops. While uvicorn runs (``server`` set) it has its own (first signal: graceful
    shutdown; a second Ctrl-C: don't wait) and, once done, sends each signal it caught again
    to the handler it found, this one: asking that server to stop is then all there is to do
    (and what a signal just before uvicorn took over needs)."""

    def __init__(self) -> None:
        self.server: Any = None
        self.ending = False

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        if self.server is not None:
            self.server.should_exit = True
        elif not self.ending:
            raise KeyboardInterrupt


def build_app(root: Path, store: RunStore) -> FastAPI:
    """The real API plus the local routes, with /docs served from local files."""
    from api.app import create_app
    from local.routes import local_router, serve_docs_offline, swagger_ui_assets

    app = create_app()
    app.include_router(local_router(root, store))
    serve_docs_offline(app, swagger_ui_assets())
    return app


def serve(
    host: str,
    port: int,
    root: Path,
    sample_data: bool,
    threads: int,
    schedule_minutes: float | None = None,
    *,
    verbose: bool = False,
    **stack_options: Any,
) -> int:
    """``stack_options``: the other fields of :class:`local.stack.LocalStack` (reconciler,
    fault injection, the confidence alarm)."""
    interrupts = _Interrupts()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, interrupts)
    try:
        return _serve(
            interrupts,
            host,
            port,
            root,
            sample_data,
            threads,
            schedule_minutes,
            verbose=verbose,
            **stack_options,
        )
    except KeyboardInterrupt:
        return 0  # stopped while starting, or a second signal while stopping: nothing to add
    finally:
        interrupts.ending = True  # the process is ending: later signals change nothing


def _serve(
    interrupts: _Interrupts,
    host: str,
    port: int,
    root: Path,
    sample_data: bool,
    threads: int,
    schedule_minutes: float | None,
    *,
    verbose: bool,
    **stack_options: Any,
) -> int:
    configure_logging(verbose)
    try:
        sock = bind(host, port)
    except CannotListen as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    with contextlib.closing(sock):
        from local.data import DataUnavailable
        from local.rules import TemplateError
        from local.stack import LocalStack

        try:
            stack = LocalStack(
                root,
                sample_data=sample_data,
                threads_per_job=threads,
                schedule_minutes=schedule_minutes,
                **stack_options,
            ).start()
        except (DataUnavailable, TemplateError) as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
        try:
            import torch
            import uvicorn

            torch.set_num_threads(threads)  # endpoint inference in this process
            url = f"http://{host}:{sock.getsockname()[1]}"
            banner = NEXT_STEPS.format(
                host=host,
                port=sock.getsockname()[1],
                url=url,
                root=root.resolve(),
                cli=cli_command(),
                # The CLI assumes the default address; say how to reach any other.
                cli_note=""
                if url == os.environ.get("LOCAL_API_URL", CLI_DEFAULT_URL)
                else f" (first: export LOCAL_API_URL={url})",
                log_note=""
                if verbose
                else "Logs are quiet; serve --verbose shows every request.\n",
            )
            config = uvicorn.Config(
                build_app(stack.root, stack.store),
                host=host,
                port=port,
                log_level="info" if verbose else "warning",
                access_log=verbose,
                # As in Lambda (Mangum's lifespan="off"): the app has no startup or shutdown
                # of its own, and a task that is not there can't be cut short by a second
                # Ctrl-C (a logged CancelledError).
                lifespan="off",
            )
            server = _server_class()(config, lambda: print(banner, flush=True))
            interrupts.server = server
            try:
                server.run(sockets=[sock])
            finally:
                interrupts.server = None
        finally:
            stack.stop()
    return 0


def _server_class() -> type[Any]:
    import uvicorn

    class ReadyServer(uvicorn.Server):
        """Says it is ready once it listens (uvicorn's startup), not before."""

        def __init__(self, config: uvicorn.Config, on_ready: Callable[[], None]) -> None:
            super().__init__(config)
            self.on_ready = on_ready

        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets=sockets)
            if self.started and not self.should_exit:
                self.on_ready()

    return ReadyServer
