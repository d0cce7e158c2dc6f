"""Every example in README.md and docs/*.md, checked as a reader would use it.

* Shell blocks that call the local API (``curl`` against ``http://127.0.0.1:8000``) run as
  written, under ``bash -euo pipefail``, against the real API app (``api.app.create_app``)
  under uvicorn on 127.0.0.1. Only the port in the text is changed, to a free one. AWS
  stands in as in ``tests/unit/api``: a real SageMaker client whose
  CreateHyperParameterTuningJob is answered, a real sagemaker-runtime client whose
  InvokeEndpoint answers as the model does, an in-memory run store (a fresh one per
  example, so each block starts on a service with no runs). An image file an example names
  (``cat.png``) is a real photo, scikit-image's ``chelsea``.
* Each such ``curl`` must document the HTTP status it gets: the first thing in its comment
  (on its last line, or on the comment lines right after it) is the status, ``# 200 ...`` or
  ``# HTTP/1.1 202 Accepted``. A ``curl`` on PATH that wraps the real one records each
  status (``--dump-header``), without changing what the example prints.
* Every other shell block (``make``, ``sam``, ``awscurl`` against AWS, the CLI) is checked
  for syntax only (``bash -n``), and every ``python`` block is compiled.
"""

from __future__ import annotations

import base64
import io
import json
import os
import re
import shutil
import socket
import stat
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import boto3
import pytest
import uvicorn
from botocore.config import Config
from PIL import Image
from skimage import data as skdata

from api.app import create_app
from retraining.deps import Deps, set_deps
from retraining.settings import Settings
from retraining.stores.memory import InMemoryRunStore
from tests.unit.api.fakes import AnsweringClient

REPO = Path(__file__).resolve().parents[3]
DOCUMENTS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
LOCAL_API = re.compile(r"http://(?:127\.0\.0\.1|localhost):8000")
SHELL = {"bash", "sh", "shell", "console"}
FENCE = re.compile(r"^```([\w-]*)[^\n]*\n(.*?)^```[ \t]*$", re.M | re.S)
STATUS = re.compile(r"#\s*(?:HTTP/[\d.]+\s+)?([1-5]\d\d)\b")
IMAGE_FILE = re.compile(r"(?<![\w/.-])([\w-]+\.(?:png|jpe?g))\b")

ACCOUNT = "123456789012"
TUNING_ARN = f"arn:aws:sagemaker:us-east-1:{ACCOUNT}:hyper-parameter-tuning-job/x"
MODEL_ANSWER = {
    "predictions": [
        {"label": "leopard", "index": 42, "probability": 0.91},
        {"label": "tiger", "index": 88, "probability": 0.05},
        {"label": "lion", "index": 43, "probability": 0.02},
    ],
    "model": {
        "version": "cifar100-r20261128030512ab12-final",
        "training_job_name": "cifar100-r20261128030512ab12-final",
        "architecture": "resnet34",
    },
}


@dataclass(frozen=True)
class Block:
    document: Path
    line: int
    language: str
    text: str

    @property
    def id(self) -> str:
        return f"{self.document.relative_to(REPO)}:{self.line}"

    @property
    def calls_local_api(self) -> bool:
        return self.language in SHELL and "curl" in self.text and bool(LOCAL_API.search(self.text))


def fenced_blocks() -> list[Block]:
    blocks = []
    for document in DOCUMENTS:
        text = document.read_text()
        for match in FENCE.finditer(text):
            line = text.count("\n", 0, match.start()) + 1
            blocks.append(Block(document, line, match.group(1).lower(), match.group(2)))
    return blocks


BLOCKS = fenced_blocks()
API_EXAMPLES = [b for b in BLOCKS if b.calls_local_api]
SHELL_BLOCKS = [b for b in BLOCKS if b.language in SHELL and not b.calls_local_api]
PYTHON_BLOCKS = [b for b in BLOCKS if b.language in {"python", "py"}]


def documented_statuses(script: str) -> list[int]:
    """The status each ``curl`` command of ``script`` documents, in order."""
    lines = script.splitlines()
    statuses, i = [], 0
    while i < len(lines):
        start = i
        while lines[i].rstrip().endswith("\\") and i + 1 < len(lines):
            i += 1  # a command continued over several lines
        command = "\n".join(lines[start : i + 1])
        i += 1
        code = command.split("#", 1)[0] if not command.lstrip().startswith("#") else ""
        if not re.search(r"(?<![\w-])curl\s", code):
            continue
        last = command.splitlines()[-1]
        comments = [last[last.index("#") :]] if "#" in last else []
        while i < len(lines) and lines[i].lstrip().startswith("#"):
            comments.append(lines[i])
            i += 1
        found = [m.group(1) for c in comments if (m := STATUS.match(c.strip()))]
        assert found, f"this curl documents no status ('# 200 ...'):\n{command}"
        statuses.append(int(found[0]))
    return statuses


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Service:
    """The API under uvicorn, with AWS stood in for; ``reset`` empties the run store."""

    def __init__(self) -> None:
        self.settings = Settings(
            _env_file=None,
            endpoint_name="cifar100-classifier",
            warm_start=False,
            prepare_data=False,
            function_timeout_s=29,
            aws_region="us-east-1",
            artifact_bucket="cifar100-artifacts",
            sagemaker_role_arn=f"arn:aws:iam::{ACCOUNT}:role/cifar100-sagemaker",
            training_image_uri="763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-training:2.6.0-gpu-py312",
            training_source_s3_uri="s3://cifar100-artifacts/code/training/x/sourcedir.tar.gz",
            train_data_s3_uri="s3://cifar100-artifacts/data/train/",
            test_data_s3_uri="s3://cifar100-artifacts/data/test/",
        )
        self.sagemaker = boto3.client("sagemaker", region_name="us-east-1")
        self.runtime = boto3.client(
            "sagemaker-runtime",
            region_name="us-east-1",
            config=Config(retries={"mode": "standard", "max_attempts": 1}),
        )
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"

    def reset(self) -> None:
        """A new run store (``Deps`` keeps what its factories built, so new ``Deps`` too)."""
        store = InMemoryRunStore()
        set_deps(
            Deps(
                settings_factory=lambda: self.settings,
                sagemaker_factory=lambda: self.sagemaker,
                sagemaker_runtime_factory=lambda: self.runtime,
                store_factory=lambda: store,
            )
        )

    def __enter__(self) -> Service:
        self.tuning = AnsweringClient(
            self.sagemaker,
            "CreateHyperParameterTuningJob",
            {"HyperParameterTuningJobArn": TUNING_ARN},
        ).__enter__()
        self.model = AnsweringClient(
            self.runtime, "InvokeEndpoint", json.dumps(MODEL_ANSWER).encode()
        ).__enter__()
        # A registry with no version yet, as a stack is before its first run.
        self.registry = AnsweringClient(
            self.sagemaker, "ListModelPackages", {"ModelPackageSummaryList": []}
        ).__enter__()
        self.reset()
        config = uvicorn.Config(create_app(), host="127.0.0.1", port=self.port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            assert self.thread.is_alive(), "the API server stopped"
            assert time.monotonic() < deadline, "the API server did not start"
            time.sleep(0.05)
        return self

    def __exit__(self, *_: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        set_deps(None)
        self.registry.__exit__()
        self.model.__exit__()
        self.tuning.__exit__()


@pytest.fixture(scope="module")
def service() -> Iterator[Service]:
    with Service() as running:
        yield running


@pytest.fixture(scope="module")
def recording_curl(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder whose ``curl`` runs the real one and keeps each response's headers."""
    real = shutil.which("curl")
    if real is None:
        pytest.skip("curl is not installed")
    folder = tmp_path_factory.mktemp("bin")
    shim = folder / "curl"
    shim.write_text(
        "#!/bin/sh\n"
        'n=$(ls "$DOCS_CURL_LOG" | wc -l)\n'
        f'exec {real} --dump-header "$DOCS_CURL_LOG/$(printf %03d "$n")" "$@"\n'
    )
    shim.chmod(shim.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return folder


def write_photo(path: Path) -> None:
    """A real photo (a cat, 451x300), as PNG or JPEG by the name's extension."""
    buffer = io.BytesIO()
    Image.fromarray(skdata.chelsea()).save(
        buffer, format="PNG" if path.suffix == ".png" else "JPEG", quality=90
    )
    path.write_bytes(buffer.getvalue())


def recorded_statuses(log: Path) -> list[int]:
    statuses = []
    for headers in sorted(log.iterdir()):
        lines = [line for line in headers.read_text().splitlines() if line.startswith("HTTP/")]
        statuses.append(int(lines[-1].split()[1]))  # the last response (after any 100)
    return statuses


def test_the_docs_have_api_examples_to_run() -> None:
    documents = {b.document.name for b in API_EXAMPLES}
    assert {"README.md", "api.md"} <= documents, documents


@pytest.mark.parametrize("block", API_EXAMPLES, ids=lambda b: b.id)
def test_api_example_runs_as_written_and_gets_the_documented_status(
    block: Block, service: Service, recording_curl: Path, tmp_path: Path
) -> None:
    expected = documented_statuses(block.text)
    assert expected, "no curl in this example"
    if "jq " in block.text and shutil.which("jq") is None:
        pytest.skip("this example uses jq, which is not installed")
    script = LOCAL_API.sub(service.url, block.text)
    for name in set(IMAGE_FILE.findall(block.text)):
        write_photo(tmp_path / name)
    log = tmp_path / "responses"
    log.mkdir()
    service.reset()
    predicted = len(service.model.requests)
    env = {**os.environ, "PATH": f"{recording_curl}{os.pathsep}{os.environ['PATH']}"}
    env["DOCS_CURL_LOG"] = str(log)
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, f"{block.id} failed:\n{done.stdout}\n{done.stderr}"
    assert recorded_statuses(log) == expected, f"{block.id}:\n{done.stdout}\n{done.stderr}"
    # What reached the model: the whole photo, as the endpoint's JSON document.
    for request in service.model.requests[predicted:]:
        body = json.loads(request["body"])
        assert Image.open(io.BytesIO(base64.b64decode(body["image"]))).size == (451, 300)


@pytest.mark.parametrize("block", SHELL_BLOCKS, ids=lambda b: b.id)
def test_other_shell_examples_parse(block: Block) -> None:
    done = subprocess.run(["bash", "-n"], input=block.text, capture_output=True, text=True)
    assert done.returncode == 0, f"{block.id}: {done.stderr}"


@pytest.mark.parametrize("block", PYTHON_BLOCKS, ids=lambda b: b.id)
def test_python_examples_compile(block: Block) -> None:
    compile(block.text, block.id, "exec")


def test_a_curl_without_a_documented_status_is_refused() -> None:
    with pytest.raises(AssertionError, match="documents no status"):
        documented_statuses('curl -s "$API/health"\n')
    assert documented_statuses('curl -s \\\n  "$API/health"   # 200 ok\n# 404 later\n') == [200]
    assert documented_statuses("curl -si x\n# HTTP/1.1 202 Accepted\n") == [202]
