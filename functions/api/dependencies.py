"""What the routes receive through ``Depends``: the process-wide collaborators (clients,
store, settings) and the start-run function. The local stack and the tests swap them with
``set_deps`` or ``app.dependency_overrides``; the routes never ask which they got."""

from __future__ import annotations

from typing import Annotated, Protocol

from fastapi import Depends

from retraining.deps import Deps, get_deps
from retraining.overrides import TuneOverrides
from retraining.records import RunRecord, Trigger


class StartRun(Protocol):
    def __call__(self, trigger: Trigger, overrides: TuneOverrides, deps: Deps) -> RunRecord: ...


async def current_deps() -> Deps:
    # async: a sync dependency would cost a worker-thread hop on every request.
    return get_deps()


async def get_start_run() -> StartRun:
    # Imported on first use: /predict containers never load the orchestration code.
    from retraining.workflow import start_run

    return start_run


DepsDep = Annotated[Deps, Depends(current_deps)]
StartRunDep = Annotated[StartRun, Depends(get_start_run)]
