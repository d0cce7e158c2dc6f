"""``serve`` as a person runs it, in a subprocess on generated sample data: ready means
listening, logs are quiet unless ``--verbose``, a busy port is one line before anything
starts, and Ctrl-C (once, twice, through ``make run``) or SIGTERM stops it quietly with 0."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

REPO = Path(__file__).resolve().parents[3]
READY = "Local stack ready"
NOISE = ("Traceback", "KeyboardInterrupt", "CancelledError", "Exception ignored")

pytestmark = pytest.mark.slow  # each start imports torch and the API: seconds


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One state folder for the module: the sample data is generated once."""
    return tmp_path_factory.mktemp("serve") / "state"


class Served:
    """A server process in its own session (so a signal can go to its whole process group,
    as a terminal's Ctrl-C does), its output collected as it comes."""

    def __init__(self, command: list[str]) -> None:
        self.proc = subprocess.Popen(
            command,
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        self.lines: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def wait_ready(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while not any(READY in line for line in self.lines):
            assert self.proc.poll() is None, self.output
            assert time.monotonic() < deadline, "no ready banner\n" + self.output
            time.sleep(0.05)

    def wait_loaded(self, library: str, timeout: float = 120) -> None:
        """Until the process has mapped ``library`` (Linux's /proc/<pid>/maps): a point in
        its start that our code reached, however slowly the interpreter itself started (a
        cold machine's first Python can take seconds, and a Ctrl-C before Python has set
        its own SIGINT handler kills it with no say of ours)."""
        deadline = time.monotonic() + timeout
        while library not in Path(f"/proc/{self.proc.pid}/maps").read_text():
            assert self.proc.poll() is None, self.output
            assert time.monotonic() < deadline, f"{library} never loaded\n" + self.output
            time.sleep(0.02)

    def interrupt(self, *signals: int, gap: float = 0.05) -> None:
        for sig in signals:
            os.killpg(self.proc.pid, sig)
            time.sleep(gap)

    def finish(self, timeout: float = 60) -> int:
        code = self.proc.wait(timeout)
        self.reader.join(10)
        return code

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)


def serve_command(root: Path, port: int, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "local",
        "serve",
        "--sample-data",
        "--root",
        str(root),
        "--port",
        str(port),
        *extra,
    ]


@pytest.fixture
def started() -> Iterator[list[Served]]:
    servers: list[Served] = []
    yield servers
    for server in servers:
        server.kill()


def start(started: list[Served], command: list[str]) -> Served:
    server = Served(command)
    started.append(server)
    return server


def assert_quiet_stop(server: Served) -> None:
    assert server.finish() == 0, server.output
    for noise in NOISE:
        assert noise not in server.output, server.output


def test_ready_means_listening_logs_are_quiet_and_one_ctrl_c_stops_it(
    root: Path, started: list[Served]
) -> None:
    port = free_port()
    server = start(started, serve_command(root, port))
    server.wait_ready()
    url = f"http://127.0.0.1:{port}"
    # Ready is said once the server listens: the first request after it is answered.
    assert httpx.get(f"{url}/health", timeout=10).status_code == 200
    for _ in range(3):  # what `watch` does every 2 s
        assert httpx.get(f"{url}/jobs", timeout=10).status_code == 200
        assert httpx.get(f"{url}/local/runs/r1/progress", timeout=10).status_code == 404
    time.sleep(0.5)
    server.interrupt(signal.SIGINT)
    assert_quiet_stop(server)
    after_banner = server.output.split("Logs are quiet; serve --verbose shows every request.")[1]
    # No access-log lines, no JSON request logs, no metric lines, no uvicorn INFO.
    assert after_banner.strip() == "", server.output


def test_verbose_shows_every_request_and_sigterm_stops_it_quietly(
    root: Path, started: list[Served]
) -> None:
    port = free_port()
    server = start(started, serve_command(root, port, "--verbose"))
    server.wait_ready()
    url = f"http://127.0.0.1:{port}"
    httpx.get(f"{url}/jobs", timeout=10)
    httpx.get(f"{url}/local/runs/r1/progress", timeout=10)
    time.sleep(0.5)
    server.interrupt(signal.SIGTERM)
    assert_quiet_stop(server)
    assert '"GET /jobs HTTP/1.1" 200' in server.output  # uvicorn's access log
    assert '"message":"request"' in server.output  # the API's JSON log of the 404


def test_a_second_ctrl_c_while_it_stops_is_quiet_too(root: Path, started: list[Served]) -> None:
    server = start(started, serve_command(root, free_port()))
    server.wait_ready()
    server.interrupt(signal.SIGINT, signal.SIGINT, signal.SIGINT, gap=0.02)
    assert_quiet_stop(server)


def test_ctrl_c_while_it_starts_is_quiet(root: Path, started: list[Served]) -> None:
    server = start(started, serve_command(root, free_port()))
    server.wait_loaded("libtorch_cpu")  # importing torch and the API: well before the banner
    server.interrupt(signal.SIGINT)
    assert_quiet_stop(server)
    assert READY not in server.output, server.output


@pytest.mark.skipif(shutil.which("make") is None, reason="no make on this machine")
def test_ctrl_c_through_make_run_is_quiet(root: Path, started: list[Served]) -> None:
    port = free_port()
    stamp = ".venv/.installed"  # the Makefile's $(STAMP): not remade, whatever its age
    args = f"ARGS=--sample-data --root {root} --port {port}"
    server = start(started, ["make", "-o", stamp, "run", f"PY={sys.executable}", args])
    server.wait_ready()
    server.interrupt(signal.SIGINT)
    # make ends itself with the SIGINT it got, whatever its recipe returned: its status is
    # make's, so only the output is checked here.
    server.finish()
    for noise in NOISE:
        assert noise not in server.output, server.output


def test_a_busy_port_is_one_line_before_anything_starts(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            serve_command(tmp_path / "state", port),
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode == 1
    assert done.stdout == ""  # no banner
    assert done.stderr == (
        f"error: port {port} on 127.0.0.1 is in use (another local stack?); stop that one, "
        f"or serve on another port: --port {port + 1}\n"
    )
    assert not (tmp_path / "state").exists()  # checked before the stack prepares anything
