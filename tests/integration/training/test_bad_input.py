"""Every bad input: one ``error:`` line naming it, a non-zero exit, an untouched model dir."""

from __future__ import annotations

import tarfile
from pathlib import Path

import pytest
from torch import nn

from tests.integration.training.fast import fast_args
from trainlib.artifact import build_metadata, write_artifact
from trainlib.preprocess import preprocess_spec
from trainlib.synthetic import class_names, write_dataset

FAST = fast_args(epochs=1, batch_size=8, hidden_units=8)


def assert_clean_failure(job, result, needle: str) -> None:
    assert result.returncode == 2, result.stdout[-2000:] + result.stderr[-2000:]
    error_lines = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(error_lines) == 1, result.stderr[-2000:]
    assert needle in error_lines[0]
    assert "Traceback" not in result.stderr
    assert list(job.model_dir.iterdir()) == []  # nothing half-written
    assert [p.name for p in job.root.iterdir() if "staging" in p.name] == []
    # SageMaker shows /opt/ml/output/failure as the job's FailureReason.
    assert (job.root / "sm-output" / "failure").read_text().strip() == error_lines[0]


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--learning_rate", "abc"], "--learning_rate"),
        (["--batch_size", "-4"], "--batch_size"),
        (["--image_size", "100000"], "--image_size"),
        (["--pretrained", "sometimes"], "--pretrained"),
        (["--no-such-flag", "1"], "--no-such-flag"),
    ],
    ids=["non-numeric", "negative-batch", "huge-image", "bad-bool", "unknown-flag"],
)
def test_bad_hyperparameters(job, args, needle):
    write_dataset(
        job.root / "data", "imagefolder", num_classes=2, train_per_class=3, test_per_class=1, size=8
    )
    assert_clean_failure(job, job.run("hpo.py", *FAST, *args), needle)


def test_missing_channel(job):
    assert_clean_failure(job, job.run("train_model.py", *FAST), "does not exist")


def test_empty_channel(job):
    write_dataset(
        job.root / "data", "imagefolder", num_classes=2, train_per_class=3, test_per_class=1, size=8
    )
    for path in (job.root / "data" / "test").rglob("*.png"):
        path.unlink()
    for folder in sorted((job.root / "data" / "test").iterdir()):
        folder.rmdir()
    assert_clean_failure(job, job.run("train_model.py", *FAST), "is empty")


def test_channel_in_neither_layout(job):
    write_dataset(
        job.root / "data", "imagefolder", num_classes=2, train_per_class=3, test_per_class=1, size=8
    )
    train = job.root / "data" / "train"
    for path in train.rglob("*.png"):
        path.rename(train / f"{path.parent.name}-{path.name}")
    for folder in [p for p in train.iterdir() if p.is_dir()]:
        folder.rmdir()
    assert_clean_failure(job, job.run("train_model.py", *FAST), "neither")


def test_corrupt_image(job):
    write_dataset(
        job.root / "data", "imagefolder", num_classes=2, train_per_class=3, test_per_class=1, size=8
    )
    victim = sorted((job.root / "data" / "train" / "class_01").iterdir())[0]
    victim.write_bytes(victim.read_bytes()[:40])  # a truncated PNG
    assert_clean_failure(job, job.run("train_model.py", *FAST), victim.name)


def test_pretrained_weights_unreachable(job):
    write_dataset(
        job.root / "data", "imagefolder", num_classes=2, train_per_class=3, test_per_class=1, size=8
    )
    args = [a if a != "false" else "true" for a in FAST]
    offline = {
        "https_proxy": "http://127.0.0.1:9",
        "HTTPS_PROXY": "http://127.0.0.1:9",
        "no_proxy": "",
        "NO_PROXY": "",
    }
    assert_clean_failure(job, job.run("train_model.py", *args, **offline), "IMAGENET1K_V1")


def champion_channel(job, classes: list[str], *, drop: str | None = None) -> Path:
    """The champion channel as SageMaker fills it: <channel>/model.tar.gz, here of a tiny
    traced model (the loader never looks inside; ResNet-34's 85 MB would only cost time)."""
    model_dir = job.root / "champion-model"
    model = nn.Sequential(nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(12, len(classes)))
    metadata = build_metadata(
        num_classes=len(classes),
        image_size=32,
        preprocess=preprocess_spec(32, source_size=(8, 8)),
        hyperparameters={},
        metrics={"test_acc": 0.5, "test_loss": 1.0, "val_acc": 0.5},
        job_name="cifar100-r20261101000000abcd-final",
    )
    write_artifact(model_dir, model.eval(), classes, metadata, None)
    channel = job.root / "champion"
    channel.mkdir()
    with tarfile.open(channel / "model.tar.gz", "w:gz") as tar:
        for entry in sorted(model_dir.iterdir()):
            if entry.name != drop:
                tar.add(entry, arcname=entry.name)
    return channel


@pytest.mark.parametrize(
    ("broken", "needle"),
    [
        ("not-a-tarball", "is not a readable model.tar.gz"),
        ("no-model-pt", "has no model.pt"),
        ("other-classes", "was trained on other classes than this job"),
    ],
)
def test_an_unusable_champion_fails_the_job_before_training(job, broken, needle):
    write_dataset(
        job.root / "data", "imagefolder", num_classes=2, train_per_class=3, test_per_class=1, size=8
    )
    if broken == "not-a-tarball":
        channel = job.root / "champion"
        channel.mkdir()
        (channel / "model.tar.gz").write_text("<Error><Code>NoSuchKey</Code></Error>")
    else:
        classes = ["apple", "bee"] if broken == "other-classes" else class_names(2)
        channel = champion_channel(
            job, classes, drop="model.pt" if broken == "no-model-pt" else None
        )
    result = job.run("train_model.py", *FAST, SM_CHANNEL_CHAMPION=str(channel))
    assert_clean_failure(job, result, needle)
    assert "champion" in result.stderr
    # Before training: no epoch ran, no metrics were written.
    assert "epoch=" not in result.stdout
    assert not (job.output_dir / "metrics.json").exists()
    assert not (job.output_dir / "evaluation.json").exists()
