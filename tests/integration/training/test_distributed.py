"""train_model.py under torchrun: two CPU ranks (gloo) on tiny synthetic data.

torchrun --standalone picks a free port itself (the rendezvous endpoint is localhost:0), so
tests running side by side do not collide; every launch has a timeout, so a hung rank fails
the test instead of hanging CI.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from metric_definitions import (
    BATCH_METRICS,
    EPOCH_METRICS,
    FINAL_METRICS,
    parse_metrics,
)
from trainlib.synthetic import make_images, write_dataset

HARNESS = Path(__file__).with_name("ddp_harness.py")
LAUNCH_TIMEOUT = 300  # seconds: a launch takes well under a minute here
# 4 classes x 12: 1 of each class held out, 44 training images (even: two ranks share all),
# 22 per rank = 5 batches of 4 and one of 2 (one process with batch 8: 5 of 8, one of 4).
DATA = {"num_classes": 4, "train_per_class": 12, "test_per_class": 4}
COMMON = [
    "--pretrained", "false", "--freeze_backbone", "true", "--image_size", "32",
    "--hidden_units", "16", "--amp", "off", "--log_interval", "1", "--epochs", "3",
    "--learning_rate", "0.02",
]  # fmt: skip


@dataclass
class Launch:
    """One finished launch: its process result and folders."""

    result: subprocess.CompletedProcess
    root: Path

    @property
    def model_dir(self) -> Path:
        return self.root / "model"

    @property
    def output_dir(self) -> Path:
        return self.root / "output"

    @property
    def checkpoint(self) -> dict:
        return torch.load(self.root / "checkpoints" / "checkpoint.pt", weights_only=True)

    def lines(self, *names: str) -> list[dict[str, float]]:
        """Parsed metric lines holding all of ``names``, in order."""
        parsed = (parse_metrics(line) for line in self.result.stdout.splitlines())
        return [m for m in parsed if m and all(n in m for n in names)]

    def record(self) -> dict:
        return json.loads((self.output_dir / "metrics.json").read_text())


def launch(job, root: Path, *args: str, ranks: int = 2, script: str = "train_model.py", **env):
    """``torchrun --standalone --nproc_per_node=<ranks> <script>`` (``ranks=0``: plain python,
    no torchrun) with every output under ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "model").mkdir(exist_ok=True)
    runner = (
        [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={ranks}"]
        if ranks
        else [sys.executable]
    )
    paths = [
        "--model-dir", str(root / "model"), "--output-data-dir", str(root / "output"),
        "--tensorboard-dir", str(root / "tensorboard"),
        "--checkpoint-dir", str(root / "checkpoints"),
    ]  # fmt: skip
    result = subprocess.run(
        [*runner, script, *paths, *args],
        cwd=HARNESS.parents[3] / "training",
        # PYTHONUNBUFFERED as in the SageMaker PyTorch images (docs/aws-behaviour.md)
        env={**job.env, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1", **env},
        capture_output=True,
        text=True,
        timeout=LAUNCH_TIMEOUT,
    )
    return Launch(result, root)


def assert_ok(run: Launch) -> None:
    # torchrun's summary ends stderr; what a rank said before it is at the start.
    said = run.result.stderr
    assert run.result.returncode == 0, run.result.stdout[-2000:] + said[:4000] + said[-2000:]


@pytest.fixture(scope="module")
def two_ranks(module_job):
    """One uninterrupted two-rank job (per-rank batch 4, global 8), with smdebug on: shared
    by the output test and the resume test."""
    job = module_job
    write_dataset(job.root / "data", "cifar", **DATA)
    hook = job.root / "hook.json"
    hook.write_text(json.dumps({"LocalPath": str(job.root / "smdebug")}))
    run = launch(
        job, job.root / "straight", *COMMON, "--batch_size", "4", SMDEBUG_CONFIG_FILE_PATH=str(hook)
    )
    assert_ok(run)
    return job, run


def predict_with_artifact(model_dir: Path, images) -> torch.Tensor:
    """What the endpoint does: TorchScript + the preprocess dict from metadata.json."""
    from PIL import Image

    from trainlib.preprocess import build_eval_transform

    metadata = json.loads((model_dir / "metadata.json").read_text())
    model = torch.jit.load(str(model_dir / metadata["weights_file"]))
    transform = build_eval_transform(metadata["preprocess"])
    batch = torch.stack([transform(Image.fromarray(im)) for im in images])
    with torch.no_grad():
        return model(batch).argmax(1)


def test_two_ranks_print_one_set_of_metric_lines_and_write_one_artifact(two_ranks):
    job, run = two_ranks
    out = run.result.stdout
    # Rank 0 alone prints: each log line once, the metric lines under the usual names.
    assert out.count("data: 44 train / 4 val / 16 test images") == 1, out[-3000:]
    assert out.count("distributed: 2 processes (gloo), batch 4 per process = global batch 8") == 1
    assert "learning rate 0.02 x 2 = 0.04 (linear scaling rule)" in out
    assert out.count("trained 3 epochs") == 1
    batches, epochs, finals = (
        run.lines(*names) for names in (BATCH_METRICS, EPOCH_METRICS, FINAL_METRICS)
    )
    steps_per_epoch = 6  # 22 images per rank in batches of 4: 5 + a batch of 2
    assert [set(m) for m in batches] == [set(BATCH_METRICS)] * 3 * steps_per_epoch
    assert [set(m) for m in epochs] == [set(EPOCH_METRICS)] * 3
    assert [set(m) for m in finals] == [set(FINAL_METRICS)]
    steps = [
        int(line.split()[1].removeprefix("step="))
        for line in out.splitlines()
        if "batch_loss=" in line
    ]
    assert steps == list(range(1, 3 * steps_per_epoch + 1))  # global steps, each once
    assert all(
        0.0 <= m[k] <= 1.0 for m in batches + epochs + finals for k in m if k.endswith("_acc")
    )
    # Accuracies are over the whole data: multiples of 1/44 (train), 1/4 (val), 1/16 (test).
    record = run.record()
    for row in record["epochs"]:
        assert row["train_acc"] * 44 == pytest.approx(round(row["train_acc"] * 44))
        assert row["val_acc"] * 4 == pytest.approx(round(row["val_acc"] * 4))
    assert record["final"]["test_acc"] * 16 == pytest.approx(
        round(record["final"]["test_acc"] * 16)
    )

    # One artifact, as a single process writes it, that loads and predicts.
    assert sorted(p.name for p in run.model_dir.iterdir()) == [
        "classes.json",
        "evaluation.json",
        "metadata.json",
        "model.int8.onnx",
        "model.onnx",
        "model.pt",
    ]
    metadata = json.loads((run.model_dir / "metadata.json").read_text())
    assert metadata["hyperparameters"]["batch_size"] == 4  # as given: per process
    assert metadata["hyperparameters"]["learning_rate"] == 0.02
    assert abs(metadata["metrics"]["test_acc"] - finals[0]["test_acc"]) < 1e-4
    images, _ = make_images(4, 5, seed=99)
    assert predict_with_artifact(run.model_dir, images).shape == (20,)
    evaluation = json.loads((run.model_dir / "evaluation.json").read_text())
    assert evaluation == json.loads((run.output_dir / "evaluation.json").read_text())
    assert evaluation["test_images"] == 16  # the whole test set, gathered from both shards

    # One set of outputs: metrics.json, two curves, one TensorBoard file, one checkpoint,
    # one smdebug worker.
    assert sorted(p.name for p in run.output_dir.iterdir()) == [
        "batch_curves.png",
        "epoch_curves.png",
        "evaluation.json",
        "metrics.json",
    ]
    assert [b["step"] for b in record["batches"]] == steps
    assert record["distributed"] == {
        "world_size": 2,
        "backend": "gloo",
        "global_batch_size": 8,
        "learning_rate": 0.04,
    }
    assert len(list((run.root / "tensorboard").glob("events.out.tfevents.*"))) == 1
    assert [p.name for p in (run.root / "checkpoints").iterdir()] == ["checkpoint.pt"]
    assert run.checkpoint["settings"]["world_size"] == 2
    assert len(run.checkpoint["rng"]["ranks"]) == 2
    from smdebug import modes
    from smdebug.trials import create_trial

    trial = create_trial(str(job.root / "smdebug"))
    assert len(trial.workers()) == 1
    assert trial.tensor("batch_loss").steps(mode=modes.TRAIN) == list(range(3 * steps_per_epoch))


def test_two_ranks_equal_one_process_with_the_global_batch_and_scaled_rate(module_job):
    """Same seed, no augmentation or dropout, BatchNorm held in eval mode (torch's
    SyncBatchNorm refuses CPU tensors): two ranks with batch 4 and learning rate 0.05 take
    the steps one process takes with batch 8 and 0.1, to float tolerance."""
    job = module_job
    data = job.root / "equal-data"
    write_dataset(data, "cifar", **DATA)
    env = {
        "HARNESS_NO_AUGMENT": "1",
        "HARNESS_FROZEN_BATCHNORM": "1",
        "SM_CHANNEL_TRAIN": str(data / "train"),
        "SM_CHANNEL_TEST": str(data / "test"),
    }
    args = [a for a in COMMON if a not in ("--learning_rate", "0.02")]
    args += ["--dropout", "0", "--epochs", "2"]
    two = launch(
        job,
        job.root / "equal-two",
        *args,
        "--batch_size",
        "4",
        "--learning_rate",
        "0.05",
        script=str(HARNESS),
        **env,
    )
    one = launch(
        job,
        job.root / "equal-one",
        *args,
        "--batch_size",
        "8",
        "--learning_rate",
        "0.1",
        ranks=0,
        script=str(HARNESS),
        **env,
    )
    assert_ok(two)
    assert_ok(one)
    assert "distributed: 2 processes" in two.result.stdout
    assert "distributed:" not in one.result.stdout
    a, b = two.checkpoint, one.checkpoint
    assert a["global_step"] == b["global_step"] == 2 * 6
    assert a["model"].keys() == b["model"].keys()
    for name, tensor in a["model"].items():
        assert torch.allclose(tensor.float(), b["model"][name].float(), atol=1e-5, rtol=1e-4), name
    moved = sum(float((a["model"][k] - b["model"][k]).abs().max()) for k in a["model"])
    assert moved < 1e-3
    # The all-reduced metrics are the whole data's, as the one process prints them.
    for got, want in zip(two.record()["batches"], one.record()["batches"], strict=True):
        assert got["step"] == want["step"]
        assert got["batch_loss"] == pytest.approx(want["batch_loss"], abs=1e-4)
        assert got["batch_acc"] == want["batch_acc"]
    for got, want in zip(two.record()["epochs"], one.record()["epochs"], strict=True):
        assert got == pytest.approx(want, abs=1e-4)
    assert two.record()["final"] == pytest.approx(one.record()["final"], abs=1e-4)


def test_a_two_rank_job_resumes_as_if_never_stopped(two_ranks):
    """Both ranks die right after epoch 2's checkpoint; a new launch resumes at epoch 3
    and ends where the uninterrupted job did (each rank's crops and dropout included)."""
    job, straight = two_ranks
    root = job.root / "reclaimed"
    args = [*COMMON, "--batch_size", "4"]
    died = launch(job, root, *args, script=str(HARNESS), HARNESS_EXIT_AFTER_EPOCH="2")
    assert died.result.returncode != 0
    assert died.checkpoint["epoch"] == 2
    assert list(died.model_dir.iterdir()) == []  # no artifact from a run that did not finish
    resumed = launch(job, root, *args)
    assert_ok(resumed)
    assert resumed.result.stdout.count("resumed from epoch 2") == 1
    trained = [line.split()[0] for line in resumed.result.stdout.splitlines() if "val_acc=" in line]
    assert trained == ["epoch=3"]  # epochs 1-2 not retrained
    record, reference = resumed.record(), straight.record()
    assert [e["epoch"] for e in record["epochs"]] == [1, 2, 3]
    for got, want in zip(record["epochs"], reference["epochs"], strict=True):
        assert got == pytest.approx(want, abs=1e-6)
    assert [b["step"] for b in record["batches"]] == [b["step"] for b in reference["batches"]]
    for got, want in zip(record["batches"], reference["batches"], strict=True):
        assert got == pytest.approx(want, abs=1e-6)
    assert record["final"] == pytest.approx(reference["final"], abs=1e-6)


def test_bad_input_under_torchrun_fails_every_rank_at_once(module_job):
    """An error found after the process group started (here: a channel that does not exist)
    ends every rank with the usual one line, and the launch, rather than leaving one waiting."""
    job = module_job
    missing = job.root / "no-such-channel"
    run = launch(job, job.root / "bad", *COMMON, SM_CHANNEL_TRAIN=str(missing))
    assert run.result.returncode != 0
    errors = [line for line in run.result.stderr.splitlines() if line.startswith("error: ")]
    assert errors == [f"error: train channel {missing} does not exist or is not a directory"] * 2
    assert "epoch=" not in run.result.stdout
    assert list(run.model_dir.iterdir()) == []
