"""Stand-ins for collaborators that do not exist yet or that a test must control.

``fake_start_run`` stands in for ``retraining.workflow.start_run`` while the orchestration
code is being written: it takes the active slot through the real RunStore exactly as the
workflow does (``store.create`` raises RunAlreadyActive) but submits no SageMaker job.
"""

from __future__ import annotations

from retraining.deps import Deps
from retraining.overrides import TuneOverrides
from retraining.records import RunRecord, RunStatus, new_run_id


def fake_start_run(trigger: str, overrides: TuneOverrides, deps: Deps) -> RunRecord:
    record = RunRecord(
        run_id=new_run_id(),
        trigger=trigger,  # type: ignore[arg-type]
        status=RunStatus.TUNING,
        overrides=overrides.model_dump(exclude_none=True),
    )
    return deps.store.create(record)
