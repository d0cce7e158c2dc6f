from __future__ import annotations

import argparse
from pathlib import Path

import pytest
import torchvision.datasets

from local import data
from local.cli import build_parser, overrides_from
from local.sample_data import CLASSES, write_sample_dataset
from retraining.overrides import TuneOverrides


def test_tune_flags_become_valid_overrides() -> None:
    args = build_parser().parse_args(
        [
            "tune",
            "--max-jobs",
            "3",
            "--epochs",
            "1-2",
            "--learning-rate",
            "0.001:0.05",
            "--batch-sizes",
            "16,32",
        ]
    )
    overrides = overrides_from(args)
    assert overrides == {
        "max_jobs": 3,
        "epochs": {"min": 1, "max": 2},
        "learning_rate": {"min": 0.001, "max": 0.05},
        "batch_sizes": [16, 32],
    }
    TuneOverrides.model_validate(overrides)  # what the API will accept


def test_bad_range_is_refused_by_the_parser() -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["tune", "--epochs", "one"])
    assert isinstance(build_parser().parse_args(["serve"]), argparse.Namespace)


def test_offline_cifar_download_says_what_to_do(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def offline(*_: object, **__: object) -> None:
        raise OSError("Name or service not known")

    monkeypatch.setattr(torchvision.datasets, "CIFAR100", offline)
    with pytest.raises(data.DataUnavailable, match="--sample-data"):
        data.ensure_cifar100(tmp_path)


def test_sample_dataset_is_an_image_folder_with_separable_classes(tmp_path: Path) -> None:
    import numpy as np
    from PIL import Image

    train, test = write_sample_dataset(
        tmp_path, train_per_class=6, test_per_class=2, size=16, classes=3
    )
    assert sorted(p.name for p in train.iterdir()) == sorted(CLASSES[:3])
    assert len(list(test.rglob("*.png"))) == 6
    # Mean colour alone separates the classes: the signal a model can learn in an epoch.
    means = {
        c: np.mean([np.asarray(Image.open(p)).mean((0, 1)) for p in (train / c).glob("*.png")], 0)
        for c in CLASSES[:3]
    }
    for image in test.rglob("*.png"):
        colour = np.asarray(Image.open(image)).mean((0, 1))
        nearest = min(means, key=lambda c: np.linalg.norm(means[c] - colour))
        assert nearest == image.parent.name
