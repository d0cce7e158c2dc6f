"""The human CLI's side of the API: HTTP calls to the local stack, or to a deployed stack
with each request SigV4-signed (``local.aws_target``)."""

from __future__ import annotations

import base64
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx

TERMINAL = {"DEPLOYED", "REJECTED", "AWAITING_APPROVAL", "FAILED", "ROLLED_BACK"}


class ApiError(Exception):
    """The API answered with an error (4xx/5xx) or with something that is not its JSON.
    ``str()`` is ``<message> (<code>)``, the API's own error code."""

    def __init__(self, message: str, code: str, status_code: int) -> None:
        super().__init__(f"{message} ({code})")
        self.message, self.code, self.status_code = message, code, status_code


class ApiClient:
    def __init__(self, url: str, auth: httpx.Auth | None = None) -> None:
        self.http = httpx.Client(base_url=url, timeout=60, auth=auth)

    def _json(self, response: httpx.Response) -> Any:
        try:
            body = response.json()
        except ValueError:
            raise ApiError(
                f"the answer from {response.request.url} is not the API's JSON",
                f"HTTP {response.status_code}",
                response.status_code,
            ) from None
        if response.status_code == 403 and isinstance(body, dict) and "error" not in body:
            # API Gateway's own answer to a request IAM refuses: {"message": "Forbidden"}.
            raise ApiError(
                f"access denied by the API's IAM authorization ({body.get('message')}): the "
                "signing identity needs execute-api:Invoke on this API",
                "HTTP 403",
                403,
            )
        if response.status_code >= 400:
            error = body.get("error") if isinstance(body, dict) else None
            if not isinstance(error, dict):
                raise ApiError(str(body), f"HTTP {response.status_code}", response.status_code)
            raise ApiError(
                str(error.get("message") or "no message"),
                str(error.get("code") or f"HTTP {response.status_code}"),
                response.status_code,
            )
        return body

    def predict(self, image: Path, top_k: int) -> Any:
        payload = {"image": base64.b64encode(image.read_bytes()).decode(), "top_k": top_k}
        return self._json(self.http.post("/predict", json=payload))

    def tune(self, overrides: dict[str, Any]) -> Any:
        return self._json(self.http.post("/jobs/tune", json=overrides))

    def run(self, run_id: str) -> Any:
        return self._json(self.http.get(f"/jobs/{run_id}"))

    def curves(self, run_id: str) -> Any:
        """The local server's own route: the curve PNGs of the run's final training job
        (None from a deployed stack: its curves are in S3, under the run's final job)."""
        return self._local(f"/local/runs/{run_id}/curves")

    def progress(self, run_id: str) -> Any:
        """The local server's own route: trials finished and the newest running trial's latest
        epoch line while tuning, the final job's latest epoch line while training (a
        deployed stack has no such route: status only)."""
        return self._local(f"/local/runs/{run_id}/progress") or {"status": None}

    def _local(self, path: str) -> Any:
        try:
            return self._json(self.http.get(path))
        except ApiError as error:
            if error.status_code in (403, 404):  # not the local server
                return None
            raise

    def runs(self, page_size: int = 100) -> Iterator[Any]:
        """Every run, newest first, page after page (following ``next_cursor``)."""
        return self._pages("/jobs", "runs", page_size)

    def _pages(self, path: str, key: str, page_size: int) -> Iterator[Any]:
        params: dict[str, Any] = {"limit": page_size}
        while True:
            page = self._json(self.http.get(path, params=params))
            yield from page[key]
            if not page.get("next_cursor"):
                return
            params["cursor"] = page["next_cursor"]

    def models(self, page_size: int = 50) -> Iterator[Any]:
        """Every registered version, newest first (following ``next_cursor``)."""
        return self._pages("/models", "models", page_size)

    def promote(self, version: int) -> Any:
        return self._json(self.http.post(f"/models/{version}/deploy"))

    def approve(self, version: int) -> Any:
        return self._json(self.http.post(f"/models/{version}/approve"))

    def watch(self, run_id: str, interval: float = 2.0, out: Callable[[str], Any] = print) -> Any:
        """Print each status change and each new progress line until the run ends; return
        the final record."""
        seen: set[tuple[str, str]] = set()

        def show(status: str, text: str) -> None:
            if (status, text) not in seen:
                seen.add((status, text))
                out(f"{time.strftime('%H:%M:%S')}  {status:<10} {text}".rstrip())

        while True:
            run = self.run(run_id)
            progress = self.progress(run_id)
            status = run["status"]
            if status not in ("TUNING", "TRAINING") and progress.get("epoch"):
                # A short final job can end between two polls: still show how it ended.
                show("TRAINING", progress["epoch"])
            job = run.get("training_job_name") or run.get("tuning_job_name") or ""
            if status in TERMINAL:
                # How it ended: the gate's verdict for REJECTED, the failure for FAILED.
                reason = outcome_reason(run)
                show(status, f"{job}: {reason}" if job and reason else job or reason or "")
                return run
            show(status, job)
            note = progress_note(progress)
            if note:
                show(status, note)
            time.sleep(interval)


def outcome_reason(run: dict[str, Any]) -> str | None:
    """Why a finished run ended as it did: its error, else the reason of its last status
    change (the quality gate's verdict for a REJECTED run, whose ``error`` stays null)."""
    if run.get("status") not in TERMINAL:
        return None
    if run.get("error"):
        return str(run["error"])
    history = run.get("history") or []
    last = history[-1] if history else {}
    return last.get("reason") if last.get("status") == run["status"] else None


_TRIAL_NUMBER = re.compile(r"-(\d{3})-[0-9a-f]+$")


def trial_label(training_job_name: str) -> str:
    """``trial 002`` for ``<tuning job>-002-<hash>``, the whole name for any other."""
    number = _TRIAL_NUMBER.search(training_job_name)
    return f"trial {number.group(1)}" if number else training_job_name


def progress_note(progress: dict[str, Any]) -> str | None:
    """One readable line: ``trials 1/2 finished (1 running); trial 002: epoch=1 ...`` while
    tuning, the final job's latest epoch line while training."""
    trials = progress.get("trials")
    if progress["status"] == "TUNING" and trials:
        running = f" ({trials['in_progress']} running)" if trials["in_progress"] else ""
        note = f"trials {trials['finished']}/{trials['total']} finished{running}"
        trial = progress.get("trial")
        if trial and trial.get("epoch"):
            note += f"; {trial_label(trial['training_job_name'])}: {trial['epoch']}"
        return note
    if progress["status"] == "TRAINING" and progress.get("epoch"):
        return progress["epoch"]
    return None
