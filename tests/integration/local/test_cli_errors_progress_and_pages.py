"""The CLI against a real uvicorn server (the API plus the local routes) and against none:
one ``error:`` line for common mistakes, every run across pages, and watch's progress."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from botocore.stub import Stubber

from api.app import create_app
from local.cli import main
from local.client import ApiClient, progress_note
from local.routes import local_router, run_progress
from local.run_store import SqliteRunStore
from local.sagemaker.wire import make_client
from retraining.deps import Deps, set_deps
from retraining.records import RunStatus
from tests.support.run_store_contract import finish, make_run

REPO = Path(__file__).resolve().parents[3]


def free_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


def unused(*_: Any) -> Any:
    raise AssertionError("not needed by these routes")


@pytest.fixture
def store(tmp_path: Path) -> SqliteRunStore:
    return SqliteRunStore(tmp_path / "runs.db")


@pytest.fixture
def server(tmp_path: Path, store: SqliteRunStore) -> Iterator[str]:
    """The real API app with the local routes under uvicorn on 127.0.0.1."""
    set_deps(Deps(unused, unused, unused, store_factory=lambda: store))
    app = create_app()
    app.include_router(local_router(tmp_path, store))
    url = free_url()
    port = int(url.rsplit(":", 1)[1])
    uv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=uv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not uv.started:
        assert thread.is_alive(), "server stopped"
        assert time.monotonic() < deadline, "server did not start"
        time.sleep(0.05)
    yield url
    uv.should_exit = True
    thread.join(10)
    set_deps(None)


def test_no_stack_running_is_one_error_line_with_a_hint() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "local", "runs", "--url", free_url()],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert done.stdout == ""
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("error: cannot reach the local API at http://127.0.0.1:")
    assert "is the local stack running? start it with make run" in lines[0]


def test_missing_image_is_one_error_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nope.png"
    assert main(["predict", str(missing), "--url", free_url()]) == 1
    err = capsys.readouterr().err
    assert err == f"error: cannot read {missing}: No such file or directory\n"


def test_api_errors_are_one_line_too(server: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["show", "r20990101000000beef", "--url", server]) == 1
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("error: HTTP 404: ")
    assert "run_not_found" in err[0]


def test_usage_errors_keep_argparses_exit_code() -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["watch"])
    assert exit_.value.code == 2


def test_runs_follows_next_cursor_over_every_page(
    server: str, store: SqliteRunStore, capsys: pytest.CaptureFixture[str]
) -> None:
    made = [store.create(make_run(minute, RunStatus.REJECTED)).run_id for minute in range(5)]
    newest_first = made[::-1]
    assert [r["run_id"] for r in ApiClient(server).runs(page_size=2)] == newest_first

    assert main(["runs", "--url", server]) == 0
    listed = [line.split()[0] for line in capsys.readouterr().out.splitlines()]
    assert listed == newest_first


def stubbed_sagemaker(finished: int, running: int, total: int) -> Any:
    client = make_client("sagemaker")
    stubber = Stubber(client)
    response = {
        "HyperParameterTuningJobName": "cifar100-r1",
        "HyperParameterTuningJobArn": "arn:aws:sagemaker:us-east-1:0:hyper-parameter-tuning-job/x",
        "HyperParameterTuningJobConfig": {
            "Strategy": "Random",
            "ResourceLimits": {"MaxNumberOfTrainingJobs": total, "MaxParallelTrainingJobs": 1},
        },
        "HyperParameterTuningJobStatus": "InProgress",
        "CreationTime": 0,
        "TrainingJobStatusCounters": {
            "Completed": finished - 1,
            "InProgress": running,
            "RetryableError": 0,
            "NonRetryableError": 1,
            "Stopped": 0,
        },
        "ObjectiveStatusCounters": {"Succeeded": 0, "Pending": 0, "Failed": 0},
    }
    stubber.add_response(
        "describe_hyper_parameter_tuning_job",
        response,
        {"HyperParameterTuningJobName": "cifar100-r1"},
    )
    stubber.activate()
    return client


def test_progress_counts_finished_trials_while_tuning(tmp_path: Path) -> None:
    run = make_run(status=RunStatus.TUNING, tuning_job_name="cifar100-r1")
    progress = run_progress(tmp_path, run, lambda: stubbed_sagemaker(2, 1, 4))
    assert progress["trials"] == {"finished": 2, "in_progress": 1, "total": 4}
    assert progress_note(progress) == "trials 2/4 finished (1 running)"


def test_progress_shows_the_final_jobs_latest_epoch_line_while_training(
    tmp_path: Path, store: SqliteRunStore
) -> None:
    job = "cifar100-r1-final"
    run = store.create(make_run(status=RunStatus.TRAINING))
    log = tmp_path / "sagemaker" / "jobs" / job / "log.txt"
    log.parent.mkdir(parents=True)
    log.write_text(
        "epoch=1 step=10 batch_loss=2.0000 batch_acc=0.1000\n"
        "epoch=1 train_loss=1.9000 val_acc=0.3000\n"
        "epoch=2 step=10 batch_loss=1.5000 batch_acc=0.4000\n"
    )
    no_sagemaker = unused
    assert run_progress(tmp_path, run, no_sagemaker)["epoch"] is None  # no job yet
    store.update(run.run_id, training_job_name=job)
    run = store.get(run.run_id)
    progress = run_progress(tmp_path, run, no_sagemaker)
    # Batch lines start with epoch= too; the epoch line is the one with val_acc.
    assert progress["epoch"] == "epoch=1 train_loss=1.9000 val_acc=0.3000"
    assert progress_note(progress) == progress["epoch"]


def test_watch_prints_progress_once_and_returns_the_final_record(
    tmp_path: Path, store: SqliteRunStore, server: str
) -> None:
    job = "cifar100-r2-final"
    run = store.create(make_run(status=RunStatus.TRAINING))
    store.update(run.run_id, training_job_name=job)
    log = tmp_path / "sagemaker" / "jobs" / job / "log.txt"
    log.parent.mkdir(parents=True)
    log.write_text("epoch=1 train_loss=1.9000 val_acc=0.3000\n")
    lines: list[str] = []

    def out(line: str) -> None:
        lines.append(line)
        if len(lines) == 2:  # the run ends after its first progress line
            finish(store, run.run_id)

    final = ApiClient(server).watch(run.run_id, interval=0.05, out=out)
    assert final["status"] == "FAILED"
    assert [line.split(maxsplit=1)[1] for line in lines] == [
        f"TRAINING   {job}",
        "TRAINING   epoch=1 train_loss=1.9000 val_acc=0.3000",
        f"FAILED     {job}",
    ]


def test_watch_shows_how_a_short_final_job_ended_between_two_polls(
    tmp_path: Path, store: SqliteRunStore, server: str
) -> None:
    job = "cifar100-r3-final"
    run = store.create(make_run(status=RunStatus.TRAINING))
    store.update(run.run_id, training_job_name=job)
    log = tmp_path / "sagemaker" / "jobs" / job / "log.txt"
    log.parent.mkdir(parents=True)
    log.write_text("epoch=2 train_loss=1.2000 val_acc=0.6000\n")
    finish(store, run.run_id)  # the run is past TRAINING before the first poll
    lines: list[str] = []

    ApiClient(server).watch(run.run_id, interval=0.05, out=lines.append)
    assert [line.split(maxsplit=1)[1] for line in lines] == [
        "TRAINING   epoch=2 train_loss=1.2000 val_acc=0.6000",
        f"FAILED     {job}",
    ]
