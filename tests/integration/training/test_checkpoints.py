"""Managed spot training: train_model.py checkpoints every epoch and resumes from the last one."""

from __future__ import annotations

import json

import torch

from metric_definitions import parse_metrics
from tests.integration.training.fast import fast_args
from trainlib.synthetic import make_images, write_dataset

FAST = fast_args()


def epoch_lines(stdout: str) -> list[dict[str, float]]:
    """The per-epoch metric lines, with their epoch number."""
    return [
        {"epoch": int(line.split()[0].removeprefix("epoch=")), **parse_metrics(line)}
        for line in stdout.splitlines()
        if line.startswith("epoch=") and "val_acc=" in line
    ]


def test_a_restarted_job_resumes_after_the_last_checkpointed_epoch(job):
    write_dataset(job.root / "data", "cifar", num_classes=3, train_per_class=12, test_per_class=4)
    checkpoints = job.root / "checkpoints"
    args = [*FAST, "--checkpoint-dir", str(checkpoints), "--learning_rate", "0.05"]
    first = job.run("train_model.py", *args, "--epochs", "2")
    assert first.returncode == 0, first.stderr[-3000:]
    assert [p.name for p in checkpoints.iterdir()] == ["checkpoint.pt"]  # the last one only
    assert torch.load(checkpoints / "checkpoint.pt", weights_only=True)["epoch"] == 2

    second = job.run("train_model.py", *args, "--epochs", "3")
    assert second.returncode == 0, second.stderr[-3000:]
    assert "resumed from epoch 2" in second.stdout
    assert [m["epoch"] for m in epoch_lines(second.stdout)] == [3]  # epochs 1-2 not retrained
    record = json.loads((job.output_dir / "metrics.json").read_text())
    assert [e["epoch"] for e in record["epochs"]] == [1, 2, 3]
    for restored, logged in zip(record["epochs"][:2], epoch_lines(first.stdout), strict=True):
        assert all(abs(restored[k] - v) < 1e-3 for k, v in logged.items())  # history carried over
    steps = [b["step"] for b in record["batches"]]
    assert steps == list(range(1, len(steps) + 1))  # one unbroken step series
    assert {b["epoch"] for b in record["batches"]} == {1, 2, 3}
    assert (job.output_dir / "epoch_curves.png").read_bytes().startswith(b"\x89PNG")
    assert torch.load(checkpoints / "checkpoint.pt", weights_only=True)["epoch"] == 3

    metadata = json.loads((job.model_dir / "metadata.json").read_text())
    assert metadata["hyperparameters"]["epochs"] == 3
    model = torch.jit.load(str(job.model_dir / "model.pt"))
    images, _ = make_images(3, 2, seed=5)
    batch = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255
    assert model(batch).shape == (6, 3)


def test_a_corrupt_checkpoint_is_a_warning_and_a_fresh_start(job):
    write_dataset(job.root / "data", "cifar", num_classes=3, train_per_class=8, test_per_class=2)
    checkpoints = job.root / "checkpoints"
    checkpoints.mkdir()
    (checkpoints / "checkpoint.pt").write_bytes(b"PK\x03\x04 cut off by a spot reclaim")
    result = job.run("train_model.py", *FAST, "--checkpoint-dir", str(checkpoints), "--epochs", "1")
    assert result.returncode == 0, result.stderr[-3000:]
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1
    assert "unreadable" in warnings[0]
    assert "from scratch" in warnings[0]
    assert "resumed" not in result.stdout
    assert [m["epoch"] for m in epoch_lines(result.stdout)] == [1]
    assert torch.load(checkpoints / "checkpoint.pt", weights_only=True)["epoch"] == 1  # replaced


def test_another_jobs_checkpoint_is_refused_and_hpo_trials_take_none(job):
    write_dataset(job.root / "data", "cifar", num_classes=3, train_per_class=8, test_per_class=2)
    checkpoints = job.root / "checkpoints"
    first = job.run("train_model.py", *FAST, "--checkpoint-dir", str(checkpoints), "--epochs", "1")
    assert first.returncode == 0, first.stderr[-3000:]
    other = job.run(
        "train_model.py", *FAST, "--checkpoint-dir", str(checkpoints), "--batch_size", "8"
    )
    assert other.returncode == 2
    assert other.stderr.strip().splitlines() == [
        f"error: checkpoint {checkpoints / 'checkpoint.pt'} was written with other settings "
        "(batch_size); remove it or pass another --checkpoint-dir"
    ]
    trial = job.run("hpo.py", *FAST, "--checkpoint-dir", str(checkpoints))
    assert trial.returncode == 2
    assert "unrecognized arguments: --checkpoint-dir" in trial.stderr
