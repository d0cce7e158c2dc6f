import json

import pytest
import torch

from trainlib import checkpoint as checkpoints
from trainlib import config as config_module
from trainlib.cli import run
from trainlib.config import parse_config
from trainlib.synthetic import write_dataset


def make_config(tmp_path, name, *extra):
    argv = [
        "--train", str(tmp_path / "data" / "train"), "--test", str(tmp_path / "data" / "test"),
        "--model-dir", str(tmp_path / name / "model"),
        "--output-data-dir", str(tmp_path / name / "output"),
        "--checkpoint-dir", str(tmp_path / name / "checkpoints"),
        "--pretrained", "false", "--freeze_backbone", "true", "--image_size", "32",
        "--batch_size", "8",
        "--hidden_units", "32", "--epochs", "3", "--amp", "off", *extra,
    ]  # fmt: skip
    return parse_config(argv, "train_model.py", "test", env={})


class Reclaimed(Exception):
    """A spot reclaim, right after epoch 2's checkpoint reached the disk."""


def test_an_interrupted_and_resumed_run_equals_an_uninterrupted_one(tmp_path, monkeypatch):
    write_dataset(tmp_path / "data", "cifar", num_classes=2, train_per_class=10, test_per_class=3)
    straight = run(make_config(tmp_path, "straight"), instrumented=False)

    save = checkpoints.save_checkpoint

    def save_then_die(directory, payload):
        save(directory, payload)
        if payload["epoch"] == 2:
            raise Reclaimed

    monkeypatch.setattr(checkpoints, "save_checkpoint", save_then_die)
    with pytest.raises(Reclaimed):
        run(make_config(tmp_path, "spot"), instrumented=False)
    monkeypatch.setattr(checkpoints, "save_checkpoint", save)
    resumed = run(make_config(tmp_path, "spot"), instrumented=False)

    # Same batches, crops, dropout masks and learning rates: the same numbers.
    assert resumed == pytest.approx(straight, abs=1e-6)
    a, b = (
        json.loads((tmp_path / n / "output" / "metrics.json").read_text())
        for n in ("straight", "spot")
    )
    assert [e["epoch"] for e in b["epochs"]] == [1, 2, 3]
    for got, want in zip(b["epochs"], a["epochs"], strict=True):
        assert got == pytest.approx(want, abs=1e-6)
    assert [x["step"] for x in b["batches"]] == [x["step"] for x in a["batches"]]


def test_checkpoint_dir_defaults_to_sagemakers_only_when_it_exists(tmp_path, monkeypatch):
    monkeypatch.setattr(config_module, "SAGEMAKER_CHECKPOINT_DIR", tmp_path / "absent")
    base = ["--train", "t", "--test", "t"]
    assert parse_config(base, "train_model.py", "test", env={}).checkpoint_dir is None
    monkeypatch.setattr(config_module, "SAGEMAKER_CHECKPOINT_DIR", tmp_path)
    assert parse_config(base, "train_model.py", "test", env={}).checkpoint_dir == tmp_path
    off = parse_config([*base, "--checkpoint-dir", ""], "train_model.py", "test", env={})
    assert off.checkpoint_dir is None
    trial = parse_config(base, "hpo.py", "test", env={}, checkpointing=False)
    assert trial.checkpoint_dir is None  # trials never checkpoint, even inside SageMaker


def test_a_stale_temporary_file_is_removed_and_a_foreign_file_ignored(tmp_path):
    (tmp_path / ".checkpoint-abc.tmp").write_bytes(b"half")
    torch.save({"not": "ours"}, tmp_path / "checkpoint.pt")
    assert checkpoints.load_checkpoint(tmp_path, {"seed": 1}) is None
    assert not list(tmp_path.glob("*.tmp"))
