import pytest

from retraining.stores.memory import InMemoryRunStore
from tests.support.run_store_contract import RunStoreContract


class TestInMemoryRunStore(RunStoreContract):
    @pytest.fixture
    def store(self) -> InMemoryRunStore:
        return InMemoryRunStore()
