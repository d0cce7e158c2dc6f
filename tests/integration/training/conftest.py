"""Entry points run as subprocesses under the SageMaker container contract."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
TRAINING = REPO / "training"


@dataclass
class Job:
    """One SageMaker-like job: channels, model dir, output dir, environment."""

    root: Path
    env: dict[str, str]

    @property
    def model_dir(self) -> Path:
        return Path(self.env["SM_MODEL_DIR"])

    @property
    def output_dir(self) -> Path:
        return Path(self.env["SM_OUTPUT_DATA_DIR"])

    def run(
        self, script: str, *args: str, timeout: int = 180, **env: str
    ) -> subprocess.CompletedProcess:
        # SageMaker runs the entry point from the source dir, with it as the working directory.
        return subprocess.run(
            [sys.executable, script, *args],
            cwd=TRAINING,
            env={**self.env, **env},
            capture_output=True,
            text=True,
            timeout=timeout,
        )


def make_job(tmp_path: Path) -> Job:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SM_", "SMDEBUG"))}
    env.update(
        SM_CHANNEL_TRAIN=str(tmp_path / "data" / "train"),
        SM_CHANNEL_TEST=str(tmp_path / "data" / "test"),
        SM_MODEL_DIR=str(tmp_path / "model"),
        SM_OUTPUT_DATA_DIR=str(tmp_path / "output"),
        SM_OUTPUT_DIR=str(tmp_path / "sm-output"),
        SM_NUM_GPUS="0",
        TRAINING_JOB_NAME="cifar100-r20261128030512ab12-final",
        OMP_NUM_THREADS="2",
        TORCH_HOME=str(tmp_path / "torch-home"),  # empty: never a cached download
        PYTHONWARNINGS="ignore",
    )
    for name in (
        "WORLD_SIZE",
        "RANK",
        "LOCAL_RANK",
        "LOCAL_WORLD_SIZE",
        "MASTER_ADDR",
        "MASTER_PORT",
    ):
        env.pop(name, None)  # a plain job is one process, whatever launched pytest
    (tmp_path / "model").mkdir()  # SageMaker creates it before the script starts
    (tmp_path / "sm-output").mkdir()
    return Job(tmp_path, env)


@pytest.fixture
def job(tmp_path: Path) -> Job:
    return make_job(tmp_path)


@pytest.fixture(scope="module")
def module_job(tmp_path_factory: pytest.TempPathFactory) -> Job:
    """A job whose runs several tests of one module share (its root is the module's)."""
    return make_job(tmp_path_factory.mktemp("job"))
