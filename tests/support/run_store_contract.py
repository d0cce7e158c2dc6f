"""The RunStore contract, reusable by every implementation.

Subclass :class:`RunStoreContract` in a ``test_*.py`` module and give it a ``store`` fixture
that yields a fresh, empty store::

    class TestSqliteRunStore(RunStoreContract):
        @pytest.fixture
        def store(self, tmp_path):
            return SqliteRunStore(tmp_path / "runs.db")

The class name has no ``Test`` prefix, so pytest collects it only through subclasses.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from retraining.records import (
    ACTIVE_STATUSES,
    RunAlreadyActive,
    RunNotFound,
    RunRecord,
    RunStatus,
    StaleTransition,
    new_run_id,
)

T0 = datetime(2026, 11, 28, 3, 0, 0, tzinfo=UTC)


def make_run(minute: int = 0, status: RunStatus = RunStatus.TUNING, **fields: Any) -> RunRecord:
    return RunRecord(
        run_id=new_run_id(T0 + timedelta(minutes=minute)),
        trigger="api",
        status=status,
        **fields,
    )


def finish(store: Any, run_id: str) -> None:
    store.transition(run_id, RunStatus.FAILED, expected=ACTIVE_STATUSES, reason="test done")


class RunStoreContract:
    """Behaviour every RunStore must have. Needs a ``store`` fixture (fresh, empty)."""

    def test_create_then_get_round_trips_every_field(self, store: Any) -> None:
        run = make_run(
            overrides={"max_jobs": 3, "learning_rate": {"min": 0.001, "max": 0.1}},
            tuning_job_name="cifar100-x",
            best_hyperparameters={"learning_rate": "0.01"},
            metrics={"test_acc": 0.615, "val_acc": 0.6},
        )
        created = store.create(run)
        got = store.get(run.run_id)
        assert got == created
        assert got.overrides == run.overrides
        assert got.metrics == {"test_acc": 0.615, "val_acc": 0.6}
        assert [h.status for h in got.history] == [RunStatus.TUNING]

    def test_get_unknown_is_none(self, store: Any) -> None:
        assert store.get("r20261128000000ffff") is None

    def test_second_active_run_is_refused_with_the_holder(self, store: Any) -> None:
        first = store.create(make_run(0))
        with pytest.raises(RunAlreadyActive) as refused:
            store.create(make_run(1))
        assert refused.value.active_run_id == first.run_id
        assert [r.run_id for r in store.list()[0]] == [first.run_id]

    def test_terminal_transition_frees_the_slot(self, store: Any) -> None:
        first = store.create(make_run(0))
        finish(store, first.run_id)
        second = store.create(make_run(1))
        assert store.get(second.run_id).status is RunStatus.TUNING

    def test_non_terminal_transition_keeps_the_slot(self, store: Any) -> None:
        first = store.create(make_run(0))
        store.transition(first.run_id, RunStatus.TRAINING, expected={RunStatus.TUNING})
        with pytest.raises(RunAlreadyActive):
            store.create(make_run(1))

    def test_concurrent_creates_admit_exactly_one(self, store: Any) -> None:
        runs = [make_run(i) for i in range(6)]
        outcomes: list[str] = []
        barrier = threading.Barrier(len(runs))

        def attempt(run: RunRecord) -> None:
            barrier.wait()
            try:
                store.create(run)
                outcomes.append("ok")
            except RunAlreadyActive:
                outcomes.append("refused")

        threads = [threading.Thread(target=attempt, args=(run,)) for run in runs]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(outcomes) == ["ok"] + ["refused"] * 5

    def test_transition_sets_fields_and_appends_history(self, store: Any) -> None:
        run = store.create(make_run())
        moved = store.transition(
            run.run_id,
            RunStatus.TRAINING,
            expected={RunStatus.TUNING},
            reason="best job picked",
            training_job_name="cifar100-x-final",
            best_hyperparameters={"batch_size": "128"},
        )
        assert moved.status is RunStatus.TRAINING
        assert moved.training_job_name == "cifar100-x-final"
        assert [(h.status, h.reason) for h in moved.history] == [
            (RunStatus.TUNING, None),
            (RunStatus.TRAINING, "best job picked"),
        ]
        assert store.get(run.run_id) == moved

    def test_transition_from_unexpected_status_is_stale_and_changes_nothing(
        self, store: Any
    ) -> None:
        run = store.create(make_run())
        store.transition(run.run_id, RunStatus.TRAINING, expected={RunStatus.TUNING})
        before = store.get(run.run_id)
        with pytest.raises(StaleTransition) as stale:
            store.transition(
                run.run_id, RunStatus.TRAINING, expected={RunStatus.TUNING}, error="late"
            )
        assert stale.value.current is RunStatus.TRAINING
        assert store.get(run.run_id) == before

    def test_terminal_run_cannot_move_again(self, store: Any) -> None:
        run = store.create(make_run())
        finish(store, run.run_id)
        with pytest.raises(StaleTransition):
            store.transition(run.run_id, RunStatus.DEPLOYED, expected=ACTIVE_STATUSES)
        assert store.get(run.run_id).status is RunStatus.FAILED

    def test_transition_unknown_run(self, store: Any) -> None:
        with pytest.raises(RunNotFound):
            store.transition("r20261128000000ffff", RunStatus.FAILED, expected=ACTIVE_STATUSES)

    def test_update_sets_fields_but_not_status(self, store: Any) -> None:
        run = store.create(make_run())
        got = store.update(run.run_id, tuning_job_name="cifar100-abc", metrics={"val_acc": 0.5})
        assert got.status is RunStatus.TUNING
        assert store.get(run.run_id).tuning_job_name == "cifar100-abc"
        assert store.get(run.run_id).metrics == {"val_acc": 0.5}

    def test_update_refuses_unknown_and_protected_fields(self, store: Any) -> None:
        run = store.create(make_run())
        with pytest.raises(ValueError, match="unknown"):
            store.update(run.run_id, not_a_field=1)
        with pytest.raises(ValueError, match="status"):
            store.update(run.run_id, status=RunStatus.DEPLOYED)
        assert store.get(run.run_id).status is RunStatus.TUNING

    def test_update_unknown_run(self, store: Any) -> None:
        with pytest.raises(RunNotFound):
            store.update("r20261128000000ffff", error="x")

    def test_list_is_newest_first_and_pages_with_a_cursor(self, store: Any) -> None:
        ids = []
        for minute in (5, 1, 3, 2, 4):  # created out of order on purpose
            run = store.create(make_run(minute))
            finish(store, run.run_id)
            ids.append(run.run_id)
        expected = sorted(ids, reverse=True)
        first, cursor = store.list(limit=2)
        assert [r.run_id for r in first] == expected[:2]
        assert cursor is not None
        second, cursor = store.list(limit=2, cursor=cursor)
        assert [r.run_id for r in second] == expected[2:4]
        third, cursor = store.list(limit=2, cursor=cursor)
        assert [r.run_id for r in third] == expected[4:]
        assert cursor is None

    def test_list_empty(self, store: Any) -> None:
        assert store.list() == ([], None)

    def test_list_exact_page_has_no_cursor(self, store: Any) -> None:
        run = store.create(make_run())
        page, cursor = store.list(limit=1)
        assert [r.run_id for r in page] == [run.run_id]
        assert cursor is None

    def test_list_rejects_a_forged_cursor(self, store: Any) -> None:
        store.create(make_run())
        with pytest.raises(ValueError, match="cursor"):
            store.list(limit=1, cursor="%%% not a cursor %%%")
        with pytest.raises(ValueError, match="cursor"):
            store.list(limit=1, cursor="bm90IGEgcnVuIGlk")  # valid base64, not ours

    def test_champion_round_trip(self, store: Any) -> None:
        assert store.get_champion() is None
        champion = {
            "run_id": "r20261128030000abcd",
            "model_name": "cifar100-r20261128030000abcd",
            "endpoint_config_name": "cifar100-r20261128030000abcd",
            "metrics": {"test_acc": 0.71},
        }
        store.set_champion(champion)
        assert store.get_champion() == champion
        store.set_champion({**champion, "run_id": "r2", "metrics": {"test_acc": 0.8}})
        assert store.get_champion()["metrics"] == {"test_acc": 0.8}
