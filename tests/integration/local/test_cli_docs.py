"""Every example in docs/cli.md, run as written through the ``cifar100`` entry point.

The client commands run against a real uvicorn server (the API and the local routes) whose
store holds the run the examples name; tuning is stood in for by a start-run that walks a
run to DEPLOYED, and the endpoint by a client that answers as the model does. ``serve`` is
parsed and its ``--help`` run: starting the stack is what test_cli_serve_and_signals does.
"""

from __future__ import annotations

import io
import json
import re
import shlex
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from PIL import Image

from api.dependencies import get_start_run
from local.cli import COMMANDS, build_parser
from local.console import main
from local.run_store import SqliteRunStore
from local.s3 import LocalS3
from local.sagemaker.backend import LocalSageMaker
from local.sagemaker.wire import attach_json_backend, make_client
from local.server import build_app
from retraining import workflow
from retraining.deps import Deps, set_deps
from retraining.records import RunRecord, RunStatus
from retraining.settings import Settings

REPO = Path(__file__).resolve().parents[3]
DOC = REPO / "docs" / "cli.md"


def examples() -> list[str]:
    """The command lines of the doc's ```sh blocks."""
    blocks = re.findall(r"^```sh\n(.*?)^```", DOC.read_text(), flags=re.M | re.S)
    return [line for block in blocks for line in block.splitlines() if line.strip()]


EXAMPLES = examples()
CLIENT_EXAMPLES = [line for line in EXAMPLES if shlex.split(line)[1] != "serve"]


def test_the_doc_has_an_example_of_every_command_and_nothing_else() -> None:
    assert all(line.startswith("cifar100 ") for line in EXAMPLES), EXAMPLES
    assert {shlex.split(line)[1] for line in EXAMPLES} == set(COMMANDS)


@pytest.mark.parametrize("line", EXAMPLES)
def test_each_example_parses(line: str) -> None:
    args = build_parser().parse_args(shlex.split(line)[1:])
    assert args.command == shlex.split(line)[1]


@pytest.mark.parametrize("command", list(COMMANDS))
def test_each_commands_help_runs(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main([command, "--help"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.startswith(f"usage: cifar100 {command} ")


# --- the client examples, for real -------------------------------------------------------

RUN_ID = "r20261201120000ab12"  # the id the doc's examples use
FINAL_JOB = f"cifar100-{RUN_ID}-final"


class Endpoint:
    """Answers InvokeEndpoint as the model handler does."""

    def invoke_endpoint(self, **request: Any) -> dict[str, Any]:
        top_k = json.loads(request["Body"]).get("top_k", 5)
        labels = ["sea", "forest", "cloud", "plain", "mountain"][:top_k]
        answer = {
            "predictions": [
                {"label": label, "index": i, "probability": 0.5 / (i + 1)}
                for i, label in enumerate(labels)
            ],
            "model": {"version": FINAL_JOB, "training_job_name": FINAL_JOB},
        }
        return {"Body": io.BytesIO(json.dumps(answer).encode())}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def deployed(store: SqliteRunStore, root: Path, run_id: str, job: str) -> None:
    """Walk a run through training (an epoch line, a curve PNG) to DEPLOYED."""
    log = root / "sagemaker" / "jobs" / job / "log.txt"
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text("epoch=1 train_loss=1.2000 val_acc=0.7000\n")
    curves = root / "sagemaker" / "jobs" / job / "output" / "data"
    curves.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (4, 4)).save(curves / "loss.png")
    store.transition(run_id, RunStatus.TRAINING, expected={RunStatus.TUNING}, training_job_name=job)
    store.transition(
        run_id,
        RunStatus.DEPLOYED,
        expected={RunStatus.TRAINING},
        reason="test_acc 0.7500 passes the gate; cifar100-classifier in service",
        metrics={"test_acc": 0.75},
    )


GROUP = "cifar100-models"


def registry(root: Path) -> Any:
    """A local SageMaker holding the doc's versions: 1 Approved (it served before), 2 waiting
    for approval (the stack approves manually)."""
    backend = LocalSageMaker(root / "sagemaker", LocalS3(root / "s3"), emit=lambda event: None)
    sagemaker = attach_json_backend(make_client("sagemaker"), backend.handle)
    sagemaker.create_model_package_group(ModelPackageGroupName=GROUP)
    for version, status in ((1, "Approved"), (2, "PendingManualApproval")):
        sagemaker.create_model_package(
            ModelPackageGroupName=GROUP,
            InferenceSpecification={
                "Containers": [
                    {"Image": "local/pytorch-inference:cpu", "ModelDataUrl": "s3://b/m"}
                ],
                "SupportedContentTypes": ["application/json"],
                "SupportedResponseMIMETypes": ["application/json"],
            },
            ModelApprovalStatus=status,
            CustomerMetadataProperties={"run_id": RUN_ID, "metric.test_acc": f"0.7{version}"},
            ClientToken=f"doc-{version}",
        )
    return sagemaker


@pytest.fixture
def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    root = tmp_path / "state"
    store = SqliteRunStore(tmp_path / "runs.db")
    store.create(RunRecord(run_id=RUN_ID, trigger="api", status=RunStatus.TUNING))
    deployed(store, root, RUN_ID, FINAL_JOB)
    started = iter(range(1, 100))
    timers: list[threading.Timer] = []

    def start_run(trigger: str, overrides: Any, deps: Any) -> RunRecord:
        run = store.create(
            RunRecord(run_id=f"r2026120112{next(started):04d}beef", trigger="api", status="TUNING")
        )
        job = f"cifar100-{run.run_id}-final"
        timers.append(threading.Timer(0.5, deployed, (store, root, run.run_id, job)))
        timers[-1].start()
        return run

    def start_promotion(version: int, deps: Any, trigger: str = "promote") -> RunRecord:
        # The real one's registry checks, then a run that deploys (the endpoint stands in).
        for timer in timers:  # the doc's `tune` without --watch: its run ends first
            timer.join(10)
        run = store.create(
            RunRecord(
                run_id=f"r2026120113{next(started):04d}beef",
                trigger="promote",
                status=RunStatus.DEPLOYING,
                model_version=version,
            )
        )
        settle = (run.run_id, RunStatus.DEPLOYED)
        timers.append(
            threading.Timer(
                0.5, lambda: store.transition(*settle, expected={RunStatus.DEPLOYING}, reason="ok")
            )
        )
        timers[-1].start()
        return run

    monkeypatch.setattr(workflow, "start_promotion", start_promotion)
    sagemaker = registry(root)
    set_deps(
        Deps(
            settings_factory=lambda: Settings(_env_file=None, model_approval="manual"),
            sagemaker_factory=lambda: sagemaker,
            sagemaker_runtime_factory=Endpoint,
            store_factory=lambda: store,
        )
    )
    app = build_app(root, store)
    app.dependency_overrides[get_start_run] = lambda: start_run
    port = free_port()
    uv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=uv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not uv.started:
        assert thread.is_alive(), "server stopped"
        assert time.monotonic() < deadline, "server did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    for timer in timers:
        timer.join(10)
    uv.should_exit = True
    thread.join(10)
    set_deps(None)


def test_every_client_example_runs_as_written(
    server: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("LOCAL_API_URL", server)  # the doc's examples name no --url
    monkeypatch.chdir(tmp_path)
    Image.new("RGB", (32, 32), (10, 60, 200)).save("image.png")
    outputs = {}
    for line in CLIENT_EXAMPLES:
        assert main(shlex.split(line)[1:]) == 0, (line, capsys.readouterr())
        out, err = capsys.readouterr()
        assert "error" not in err, (line, err)
        outputs[line] = out

    by_command = {shlex.split(line)[1]: out for line, out in outputs.items()}
    tuned = outputs["cifar100 tune --watch"].splitlines()
    assert re.fullmatch(r"run r\w+ started \(TUNING\)", tuned[0])
    assert json.loads(tuned[-1])["status"] == "DEPLOYED"
    assert json.loads(by_command["watch"].splitlines()[-1])["status"] == "DEPLOYED"
    assert RUN_ID in by_command["runs"]
    assert by_command["show"].rstrip().endswith("loss.png")
    # (The server runs in this process: its metric lines land in the same stdout.)
    predicted = [line for line in by_command["predict"].splitlines() if "_aws" not in line]
    assert [line.split()[1] for line in predicted[:3]] == ["sea", "forest", "cloud"]  # --top-k 3
    assert predicted[3:] == [f"model: {FINAL_JOB}"]
    listed = by_command["models"].splitlines()
    assert [line.split()[0] for line in listed] == ["2", "1"]  # newest first, none serving
    assert "PendingManualApproval" in listed[0]
    assert "test_acc=0.7100" in listed[1]
    promoted = outputs["cifar100 promote 1 --watch"].splitlines()
    assert re.fullmatch(r"run r\w+ deploys version 1 \(DEPLOYING\)", promoted[0])
    assert json.loads(promoted[-1])["status"] == "DEPLOYED"
    assert by_command["approve"].startswith("version 2 Approved")
