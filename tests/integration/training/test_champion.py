"""The final job scores the champion on its own test images: metric lines and evaluation.json."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

from metric_definitions import (
    COMPARISON_METRICS,
    FINAL_METRICS,
    METRIC_DEFINITIONS,
    TUNING_METRIC_DEFINITIONS,
    parse_metrics,
)
from tests.integration.training.fast import fast_args
from trainlib.mcnemar import TEST_NAME, exact_mcnemar_p_value
from trainlib.synthetic import write_dataset

# --amp off: the champion's earlier test_acc and its re-scoring here are then both fp32.
FAST = fast_args(image_size=None, hidden_units=32, amp="off")
CHAMPION_JOB = "cifar100-r20261101000000abcd-final"


def pack_like_sagemaker(model_dir: Path, channel: Path) -> Path:
    """SageMaker tars /opt/ml/model's entries at the top level; with the channel's S3Prefix
    on that exact key, File mode puts it in the channel folder as model.tar.gz."""
    channel.mkdir(parents=True)
    # compresslevel 1: the 85 MB model.pt packs in a second rather than several.
    with tarfile.open(channel / "model.tar.gz", "w:gz", compresslevel=1) as tar:
        for entry in sorted(model_dir.iterdir()):
            tar.add(entry, arcname=entry.name)
    return channel


def test_the_final_job_compares_the_candidate_with_the_champion(job):
    write_dataset(job.root / "data", "cifar", num_classes=3, train_per_class=10, test_per_class=6)
    # The champion: an earlier final job, at another image size (so another preprocessing).
    champion_dir = job.root / "champion-model"
    first = job.run(
        "train_model.py",
        *FAST,
        "--image_size",
        "40",
        "--epochs",
        "1",
        SM_MODEL_DIR=str(champion_dir),
        SM_OUTPUT_DATA_DIR=str(job.root / "champion-output"),
        TRAINING_JOB_NAME=CHAMPION_JOB,
    )
    assert first.returncode == 0, first.stderr[-3000:]
    assert not [line for line in first.stdout.splitlines() if "champion_test_acc=" in line]
    first_run = json.loads((champion_dir / "evaluation.json").read_text())
    assert first_run["champion"] is None
    assert first_run["comparison"] is None
    champion_metadata = json.loads((champion_dir / "metadata.json").read_text())
    channel = pack_like_sagemaker(champion_dir, job.root / "input" / "champion")

    result = job.run(
        "train_model.py",
        *FAST,
        "--image_size",
        "32",
        "--epochs",
        "1",
        "--seed",
        "7",
        SM_CHANNEL_CHAMPION=str(channel),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.splitlines()

    # Scored before training: its log line comes before the first epoch's.
    announced = next(i for i, line in enumerate(lines) if line.startswith("champion "))
    assert CHAMPION_JOB in lines[announced]
    assert "at 40px" in lines[announced]
    assert announced < next(i for i, line in enumerate(lines) if line.startswith("epoch="))

    # The comparison line follows the test line; the shared regexes read each exactly.
    test_at = next(i for i, line in enumerate(lines) if line.startswith("test_loss="))
    test_line = parse_metrics(lines[test_at], METRIC_DEFINITIONS)
    compared = parse_metrics(lines[test_at + 1], METRIC_DEFINITIONS)
    assert set(test_line) == set(FINAL_METRICS)
    assert set(compared) == set(COMPARISON_METRICS)
    assert parse_metrics(lines[test_at + 1], TUNING_METRIC_DEFINITIONS) == {}

    # evaluation.json: in the model dir (so in model.tar.gz) and in the output data dir.
    evaluation = json.loads((job.model_dir / "evaluation.json").read_text())
    assert json.loads((job.output_dir / "evaluation.json").read_text()) == evaluation
    assert sorted(p.name for p in job.model_dir.iterdir()) == [
        "classes.json",
        "evaluation.json",
        "metadata.json",
        "model.int8.onnx",
        "model.onnx",
        "model.pt",
    ]
    n = evaluation["test_images"]
    assert n == 18
    candidate, champion, table = (
        evaluation["candidate"],
        evaluation["champion"],
        evaluation["comparison"],
    )
    assert abs(candidate["test_acc"] - test_line["test_acc"]) < 1e-4
    assert abs(candidate["test_loss"] - test_line["test_loss"]) < 1e-4
    assert champion["model_version"] == champion["training_job_name"] == CHAMPION_JOB
    assert abs(champion["test_acc"] - compared["champion_test_acc"]) < 1e-4
    # The same model on the same images with its own preprocessing: its earlier score
    # (within one image, for float rounding between the eager model and TorchScript).
    assert abs(champion["test_acc"] - champion_metadata["metrics"]["test_acc"]) <= 1 / n + 1e-9
    b, c = table["candidate_only_correct"], table["champion_only_correct"]
    assert (compared["candidate_only_correct"], compared["champion_only_correct"]) == (b, c)
    assert b + c + table["both_correct"] + table["both_wrong"] == n
    assert round((candidate["test_acc"] - champion["test_acc"]) * n) == b - c
    assert table["mcnemar_p_value"] == exact_mcnemar_p_value(b, c)
    assert (
        abs(compared["mcnemar_p_value"] - table["mcnemar_p_value"])
        <= 1e-5 * table["mcnemar_p_value"]
    )
    assert table["test"] == TEST_NAME
    # metadata.json keeps its documented metrics: the comparison lives in evaluation.json.
    metadata = json.loads((job.model_dir / "metadata.json").read_text())
    assert set(metadata["metrics"]) == {"test_acc", "test_loss", "val_acc"}


def test_a_trial_ignores_the_champion_channel(job):
    """hpo.py never compares: no flag, the variable unread (here it points at no tarball)."""
    write_dataset(job.root / "data", "cifar", num_classes=3, train_per_class=8, test_per_class=2)
    garbage = job.root / "champion"
    garbage.mkdir()
    (garbage / "model.tar.gz").write_bytes(b"not a tarball")
    result = job.run(
        "hpo.py", *FAST, "--image_size", "32", "--epochs", "1", SM_CHANNEL_CHAMPION=str(garbage)
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "champion" not in result.stdout + result.stderr
    assert sorted(p.name for p in job.output_dir.iterdir()) == ["metrics.json"]
    refused = job.run("hpo.py", *FAST, "--champion", str(garbage))
    assert refused.returncode == 2
    assert "unrecognized arguments: --champion" in refused.stderr
