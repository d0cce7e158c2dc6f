"""Import-time behaviour of api.app (what every cold start pays) and the last-resort 500."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from fastapi.testclient import TestClient

import api.app
from retraining.deps import Deps

ROOT = Path(__file__).resolve().parents[3]
PROBE = """
import json, sys
import api.app
print(json.dumps({
    "torch": any(m == "torch" or m.startswith("torch.") for m in sys.modules),
    "boto3": "boto3" in sys.modules,
    "workflow": "retraining.workflow" in sys.modules,
    "base_path": api.app.handler.config["api_gateway_base_path"],
    "handler": type(api.app.handler).__name__,
}))
"""


def test_importing_the_api_loads_no_torch_and_no_boto3() -> None:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(str(ROOT / part) for part in ("functions", "training", "."))
    env["API_GATEWAY_BASE_PATH"] = "/v1"
    done = subprocess.run(
        [sys.executable, "-c", PROBE],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=60,
        check=True,
    )
    loaded = json.loads(done.stdout.strip().splitlines()[-1])
    assert loaded == {
        "torch": False,
        "boto3": False,  # clients are built on the first request that needs one
        "workflow": False,  # orchestration code loads on the first POST /jobs/tune
        "base_path": "/v1",
        "handler": "Mangum",
    }


class ExplodingStore:
    def get(self, run_id: str) -> None:
        raise RuntimeError("database password is hunter2")


def test_unexpected_failure_is_a_500_in_the_error_shape_without_internals(deps: Deps) -> None:
    deps.store = ExplodingStore()
    client = TestClient(api.app.app, raise_server_exceptions=False)
    response = client.get("/jobs/r20260101000000abcd", headers={"x-request-id": "req-500"})
    assert response.status_code == 500
    assert response.json() == {
        "error": {
            "code": "internal_error",
            "message": "internal server error",
            "request_id": "req-500",
        }
    }
