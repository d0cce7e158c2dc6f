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
        "SM_CHANNEL_CHAMPION",
        "TRAINING_JOB_NAME",
        "SM_TRAINING_ENV",
        "SM_NUM_GPUS",
    ):
        monkeypatch.delenv(name, raising=False)
    return values


def _with_random_batchnorm_statistics(model: torch.nn.Module) -> torch.nn.Module:
    """Non-trivial BatchNorm statistics, so folding them into the convs is really exercised."""
    generator = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for module in model.trunk.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                shape = module.running_mean.shape
                module.running_mean.copy_(torch.randn(shape, generator=generator) * 0.1)
                module.running_var.copy_(torch.rand(shape, generator=generator) + 0.5)
                module.weight.copy_(torch.rand(shape, generator=generator) + 0.5)
                module.bias.copy_(torch.randn(shape, generator=generator) * 0.1)
    return model


@pytest.fixture
def random_batchnorm_statistics():
    return _with_random_batchnorm_statistics
