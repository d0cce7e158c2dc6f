import pytest

from retraining.memory_store import InMemoryRunStore
from tests.unit.orchestration.run_store_contract import RunStoreContract


class TestInMemoryRunStore(RunStoreContract):
    @pytest.fixture
    def store(self) -> InMemoryRunStore:
        return InMemoryRunStore()
