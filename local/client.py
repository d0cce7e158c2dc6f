"""The human CLI's side of the API: plain HTTP calls to the running local stack."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path
from typing import Any

import httpx

TERMINAL = {"DEPLOYED", "REJECTED", "FAILED", "ROLLED_BACK"}


class ApiClient:
    def __init__(self, url: str) -> None:
        self.http = httpx.Client(base_url=url, timeout=60)

    def _json(self, response: httpx.Response) -> Any:
        body = response.json()
        if response.status_code >= 400:
            error = body.get("error", body) if isinstance(body, dict) else body
            raise SystemExit(f"error: HTTP {response.status_code}: {json.dumps(error)}")
        return body

    def predict(self, image: Path, top_k: int) -> Any:
        payload = {"image": base64.b64encode(image.read_bytes()).decode(), "top_k": top_k}
        return self._json(self.http.post("/predict", json=payload))

    def tune(self, overrides: dict[str, Any]) -> Any:
        return self._json(self.http.post("/jobs/tune", json=overrides))

    def run(self, run_id: str) -> Any:
        return self._json(self.http.get(f"/jobs/{run_id}"))

    def curves(self, run_id: str) -> Any:
        """The local server's own route: the curve PNGs of the run's final training job."""
        return self._json(self.http.get(f"/local/runs/{run_id}/curves"))

    def runs(self) -> Any:
        return self._json(self.http.get("/jobs"))

    def watch(self, run_id: str, interval: float = 2.0, out: Any = print) -> Any:
        """Print each status change until the run ends; return the final record."""
        seen: tuple[str, str] | None = None
        while True:
            run = self.run(run_id)
            step = (run["status"], run.get("training_job_name") or run.get("tuning_job_name") or "")
            if step != seen:
                out(f"{time.strftime('%H:%M:%S')}  {run['status']:<10} {step[1]}")
                seen = step
            if run["status"] in TERMINAL:
                return run
            time.sleep(interval)
