"""The CLI against a real uvicorn server (the API plus the local routes) and against none:
one ``error:`` line for common mistakes, every run across pages, watch's progress (the
trials' epochs too), how a run ended wherever it is shown, and /docs without a network."""

from __future__ import annotations

import json
import re
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
from fastapi.testclient import TestClient

import local.routes
from api.app import create_app
from local.cli import main
from local.client import ApiClient, progress_note
from local.routes import local_router, run_progress
from local.run_store import SqliteRunStore
from local.sagemaker.wire import make_client
from local.server import build_app
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
    # How to start the stack, and how to point the CLI at one that runs elsewhere.
    assert "start the stack with `make run` or `python -m local serve`" in lines[0]
    assert "--url" in lines[0]
    assert "LOCAL_API_URL" in lines[0]


def test_missing_image_is_one_error_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nope.png"
    assert main(["predict", str(missing), "--url", free_url()]) == 1
    err = capsys.readouterr().err
    assert err == f"error: cannot read {missing}: No such file or directory\n"


def test_api_errors_are_one_line_with_the_message_and_code(
    server: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["show", "r20990101000000beef", "--url", server]) == 1
    assert capsys.readouterr().err == "error: run r20990101000000beef not found (run_not_found)\n"
    # A refused body: the API's validation message, not a JSON dump.
    assert main(["tune", "--epochs", "3-1", "--url", server]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: body.epochs: "), err
    assert err.endswith(" (validation_error)\n")
    assert "{" not in err
    assert len(err.splitlines()) == 1


def test_url_comes_from_local_api_url_unless_given(
    server: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LOCAL_API_URL", server)
    assert main(["runs"]) == 0
    assert main(["runs", "--url", free_url()]) == 1
    assert "cannot reach" in capsys.readouterr().err


def test_runs_on_an_empty_state_says_how_to_start_one(
    server: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["runs", "--url", server]) == 0
    out, err = capsys.readouterr()
    assert out == ""  # nothing a script would take for a run
    assert err == "no runs yet; start one with cifar100 tune\n"


def test_ctrl_c_while_watching_says_the_run_goes_on(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def interrupted(*_: Any, **__: Any) -> Any:
        raise KeyboardInterrupt

    monkeypatch.setattr(ApiClient, "watch", interrupted)
    assert main(["watch", "r20990101000000beef", "--url", free_url()]) == 130
    assert capsys.readouterr().err == (
        "stopped watching; run r20990101000000beef goes on (cifar100 watch r20990101000000beef)\n"
    )


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


def stubbed_sagemaker(
    finished: int, running: int, total: int, newest_running: str | None = None
) -> Any:
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
    if running:
        summaries = [
            {
                "TrainingJobName": newest_running,
                "TrainingJobArn": f"arn:aws:sagemaker:us-east-1:0:training-job/{newest_running}",
                "CreationTime": 0,
                "TrainingJobStatus": "InProgress",
                "TunedHyperParameters": {},
            }
        ]
        stubber.add_response(
            "list_training_jobs_for_hyper_parameter_tuning_job",
            {"TrainingJobSummaries": summaries if newest_running else []},
            {
                "HyperParameterTuningJobName": "cifar100-r1",
                "StatusEquals": "InProgress",
                "SortBy": "Name",
                "SortOrder": "Descending",
                "MaxResults": 1,
            },
        )
    stubber.activate()
    return client


def test_progress_counts_finished_trials_while_tuning(tmp_path: Path) -> None:
    run = make_run(status=RunStatus.TUNING, tuning_job_name="cifar100-r1")
    progress = run_progress(tmp_path, run, lambda: stubbed_sagemaker(2, 1, 4))
    assert progress["trials"] == {"finished": 2, "in_progress": 1, "total": 4}
    assert progress_note(progress) == "trials 2/4 finished (1 running)"
    idle = run_progress(tmp_path, run, lambda: stubbed_sagemaker(2, 0, 4))  # no listing asked
    assert progress_note(idle) == "trials 2/4 finished"


def test_progress_while_tuning_shows_the_running_trials_latest_epoch_line(
    tmp_path: Path,
) -> None:
    trial = "cifar100-r1-003-5eed1e55"
    run = make_run(status=RunStatus.TUNING, tuning_job_name="cifar100-r1")
    progress = run_progress(tmp_path, run, lambda: stubbed_sagemaker(2, 1, 4, trial))
    assert progress["trial"] == {"training_job_name": trial, "epoch": None}  # no log yet
    assert progress_note(progress) == "trials 2/4 finished (1 running)"

    log = tmp_path / "sagemaker" / "jobs" / trial / "log.txt"
    log.parent.mkdir(parents=True)
    log.write_text(
        "epoch=1 train_loss=2.1000 val_acc=0.2000\nepoch=2 step=5 batch_loss=1.9 batch_acc=0.3\n"
    )
    progress = run_progress(tmp_path, run, lambda: stubbed_sagemaker(2, 1, 4, trial))
    assert progress_note(progress) == (
        "trials 2/4 finished (1 running); trial 003: epoch=1 train_loss=2.1000 val_acc=0.2000"
    )


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
        f"FAILED     {job}: test done",  # how it ended: the last status change's reason
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
        f"FAILED     {job}: test done",
    ]


VERDICT = "test_acc 0.0120 is not above the champion's 0.7400 by the margin 0.0100"


@pytest.fixture
def rejected(store: SqliteRunStore, tmp_path: Path) -> str:
    """A run the quality gate refused, as the workflow records it: the verdict is the
    reason of its last status change, and ``error`` stays null."""
    run = store.create(make_run(status=RunStatus.TRAINING, training_job_name="cifar100-r9-final"))
    store.transition(
        run.run_id,
        RunStatus.REJECTED,
        expected={RunStatus.TRAINING},
        reason=VERDICT,
        metrics={"test_acc": 0.012},
    )
    return run.run_id


def test_a_rejected_runs_verdict_shows_in_watch_show_and_runs(
    server: str, rejected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["watch", rejected, "--url", server]) == 0
    *progress, last = capsys.readouterr().out.splitlines()
    assert progress[-1].split(maxsplit=1)[1] == f"REJECTED   cifar100-r9-final: {VERDICT}"
    final = json.loads(last)
    assert final["status"] == "REJECTED"
    assert final["reason"] == VERDICT
    assert final["error"] is None

    assert main(["show", rejected, "--url", server]) == 0
    out = capsys.readouterr().out
    shown = json.loads(out[: out.rindex("}") + 1])
    assert (shown["status"], shown["reason"]) == ("REJECTED", VERDICT)
    assert out.rstrip().endswith("curves: none (the final training job writes them)")

    assert main(["runs", "--url", server]) == 0
    (line,) = capsys.readouterr().out.splitlines()
    assert line.split()[:2] == [rejected, "REJECTED"]
    assert line.endswith(f"test_acc=0.0120  {VERDICT}")


def test_docs_page_loads_swagger_ui_from_this_server(tmp_path: Path, store: SqliteRunStore) -> None:
    client = TestClient(build_app(tmp_path, store))
    page = client.get("/docs")
    assert page.status_code == 200
    scripts = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert "/local/docs/swagger-ui-bundle.min.js" in scripts
    assert "/local/docs/swagger-ui.min.css" in scripts
    assert all(not s.startswith(("http:", "https:", "//")) for s in scripts), scripts
    for asset, kind in [("swagger-ui-bundle.min.js", "javascript"), ("swagger-ui.min.css", "css")]:
        answer = client.get(f"/local/docs/{asset}")
        assert answer.status_code == 200
        assert kind in answer.headers["content-type"]
        assert len(answer.content) > 10_000
    assert client.get("/local/docs/secrets.txt").status_code == 404
    assert client.get("/openapi.json").json()["info"]["title"] == "CIFAR-100 classifier"
    # ReDoc would load its script from the internet too: /redoc leads to /docs.
    assert client.get("/redoc", follow_redirects=False).headers["location"] == "/docs"


def test_without_swagger_uis_files_docs_says_so_and_links_the_openapi_document(
    tmp_path: Path, store: SqliteRunStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(local.routes, "swagger_ui_assets", lambda: None)
    client = TestClient(build_app(tmp_path, store))
    page = client.get("/docs")
    assert page.status_code == 200
    assert "Swagger UI's files were not found" in page.text
    assert 'href="/openapi.json"' in page.text
    assert "<script" not in page.text
    assert client.get("/local/docs/swagger-ui.min.css").status_code == 404
