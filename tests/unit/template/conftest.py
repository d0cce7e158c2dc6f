"""Fixtures for the template checks: the SAM CLI and checkov run from their own virtual
environments under .sam-venv/ (`make sam-venv`), offline, with a region and dummy credentials."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[3]
TEMPLATE = REPO / "template.yaml"
SAM_VENV = REPO / ".sam-venv"
SAM = SAM_VENV / "sam" / "bin" / "sam"
SAM_PYTHON = SAM_VENV / "sam" / "bin" / "python"
CFN_LINT = SAM_VENV / "sam" / "bin" / "cfn-lint"
CHECKOV = SAM_VENV / "checkov" / "bin" / "checkov"


def tool_env() -> dict[str, str]:
    """No AWS account is reachable or needed: a region, dummy keys, no telemetry."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        AWS_DEFAULT_REGION="us-east-1",
        AWS_REGION="us-east-1",
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        SAM_CLI_TELEMETRY="0",
        BC_SKIP_MAPPING="TRUE",
    )
    return env


def run_tool(
    *args: str | Path, cwd: Path = REPO, timeout: int = 300
) -> subprocess.CompletedProcess:
    tool = Path(args[0])
    if not tool.exists():
        pytest.fail(f"{tool} is missing: run `make sam-venv` (the test target does it)")
    return subprocess.run(
        [str(a) for a in args],
        cwd=cwd,
        env=tool_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.fixture(scope="session")
def transformed() -> dict[str, Any]:
    """template.yaml after the SAM transform (plain CloudFormation), computed offline."""
    result = run_tool(SAM_PYTHON, REPO / "scripts" / "sam_transform.py", TEMPLATE)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.fixture(scope="session")
def sam_build_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One real `sam build` per session (it installs functions/requirements.txt per function)."""
    build_dir = tmp_path_factory.mktemp("sam-build")
    result = run_tool(
        SAM,
        "build",
        "--template-file",
        TEMPLATE,
        "--build-dir",
        build_dir,
        "--cache-dir",
        tmp_path_factory.mktemp("sam-cache"),
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    assert "Build Succeeded" in result.stdout
    return build_dir


class Tools:
    """What the tests call (test modules cannot import conftest under importlib mode)."""

    repo = REPO
    template = TEMPLATE
    sam = SAM
    sam_python = SAM_PYTHON
    cfn_lint = CFN_LINT
    checkov = CHECKOV
    dev_python = sys.executable
    run = staticmethod(run_tool)


@pytest.fixture(scope="session")
def tools() -> type[Tools]:
    return Tools
