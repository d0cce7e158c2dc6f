"""Training unit tests: small tensors, one torch thread (the machine is shared)."""

import pytest
import torch

torch.set_num_threads(1)


@pytest.fixture
def sm_env(monkeypatch: pytest.MonkeyPatch, tmp_path):
    """A SageMaker-like environment with every SM_* path under tmp_path."""
    values = {
        "SM_CHANNEL_TRAIN": str(tmp_path / "train"),
        "SM_CHANNEL_TEST": str(tmp_path / "test"),
        "SM_MODEL_DIR": str(tmp_path / "model"),
        "SM_OUTPUT_DATA_DIR": str(tmp_path / "output"),
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    for name in (
        "SM_CHANNEL_INFERENCE_CODE",
        "TRAINING_JOB_NAME",
        "SM_TRAINING_ENV",
        "SM_NUM_GPUS",
    ):
        monkeypatch.delenv(name, raising=False)
    return values
