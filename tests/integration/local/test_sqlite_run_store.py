from pathlib import Path

import pytest

from local.run_store import SqliteRunStore
from retraining.records import ACTIVE_STATUSES, RunStatus
from tests.support.run_store_contract import RunStoreContract, make_run


class TestSqliteRunStore(RunStoreContract):
    @pytest.fixture
    def store(self, tmp_path: Path) -> SqliteRunStore:
        return SqliteRunStore(tmp_path / "runs.db")


def test_records_and_the_active_slot_survive_a_new_store_on_the_same_file(tmp_path: Path) -> None:
    path = tmp_path / "runs.db"
    run = SqliteRunStore(path).create(make_run())
    SqliteRunStore(path).set_champion({"run_id": run.run_id})

    reopened = SqliteRunStore(path)
    assert reopened.get(run.run_id) == run
    assert reopened.get_champion() == {"run_id": run.run_id}
    reopened.transition(run.run_id, RunStatus.FAILED, expected=ACTIVE_STATUSES, reason="x")
    assert SqliteRunStore(path).create(make_run(1)).status is RunStatus.TUNING
