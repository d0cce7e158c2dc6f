"""Every bad input: one ``error:`` line naming it, a non-zero exit, an untouched model dir."""

from __future__ import annotations

import pytest

from trainlib.synthetic import write_dataset

FAST = [
    "--pretrained",
    "false",
    "--image_size",
    "32",
    "--epochs",
    "1",
    "--batch_size",
    "8",
    "--hidden_units",
    "8",
]


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
