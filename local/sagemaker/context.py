"""What the local SageMaker's services share: the resource table, one lock, the running job
processes and the event sink, with the ARN and document helpers they all use.

One lock for every service, because the tuner starts training jobs and stops their
processes, and a restart's recovery crosses all of them.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from local import events
from local.s3 import LocalS3
from local.sagemaker.errors import ServiceError
from local.sagemaker.process import TrainingProcess
from local.sagemaker.state import ResourceTable
from local.sagemaker.wire import ACCOUNT, REGION

#: A request's parsed parameters, a response, or a stored resource document.
Document = dict[str, Any]
Emit = Callable[[Document], None]

#: The failure reason of whatever a stopped (or killed) stack left running.
STACK_STOPPED = "local stack stopped"


def arn(kind: str, name: str) -> str:
    return f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:{kind}/{name.lower()}"


def public(doc: Document) -> Document:
    """A stored document without its ``_``-prefixed bookkeeping (tags, pid, trials)."""
    return {k: v for k, v in doc.items() if not k.startswith("_")}


def event_times(doc: Document) -> Document:
    """Events carry times as epoch milliseconds."""
    return {
        k: int(v * 1000) if k.endswith("Time") and isinstance(v, float) else v
        for k, v in doc.items()
    }


def tag_map(params: Document) -> dict[str, str]:
    """A request's ``Tags`` list as the ``{key: value}`` the events carry."""
    return {t["Key"]: t["Value"] for t in params.get("Tags", [])}


class ServiceContext:
    def __init__(self, root: Path, s3: LocalS3, emit: Emit, threads_per_job: int) -> None:
        self.root, self.s3, self.emit = root, s3, emit
        self.threads_per_job = threads_per_job
        self.table = ResourceTable(root / "sagemaker.db")
        self.lock = threading.RLock()
        self.processes: dict[str, TrainingProcess] = {}  # running training jobs by name
        # Set by shutdown: runners then leave their records for the next start's recover().
        self.stack_stopping = False

    def job_dir(self, name: str) -> Path:
        return self.root / "jobs" / name

    def spawn(self, target: Callable[..., None], *args: Any) -> None:
        threading.Thread(target=target, args=args, daemon=True).start()

    def save(self, kind: str, name: str, doc: Document) -> None:
        doc["LastModifiedTime"] = time.time()
        self.table.put(kind, name, doc)

    def find(self, kind: str, name: str, missing: ServiceError) -> Document:
        """The resource a request names, or the error AWS answers when it does not exist."""
        doc = self.table.get(kind, name)
        if doc is None:
            raise missing
        return doc

    def existing(self, kind: str, name: str) -> Document:
        """A resource this service created itself (nothing deletes them)."""
        doc = self.table.get(kind, name)
        if doc is None:
            raise LookupError(f"no {kind} named {name}")
        return doc

    def emit_change(
        self, detail_type: str, resource_arn: str, detail: Document, tags: dict[str, str]
    ) -> None:
        """A state-change event: the description AWS sends, with times in ms and the tags."""
        detail = event_times(detail)
        detail["Tags"] = dict(tags)
        self.emit(events.envelope(detail_type, resource_arn, detail))
