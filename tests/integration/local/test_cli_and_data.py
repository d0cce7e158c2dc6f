from __future__ import annotations

import argparse
from pathlib import Path

import pytest
import torchvision.datasets

from local import data
from local.cli import COMMANDS, build_parser, main, overrides_from
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


def usage_error(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """What ``main(argv)`` says when argparse refuses it: one stderr line, exit 2."""
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert len(err.splitlines()) == 1, err
    return err.strip()


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["tune", "--batch-sizes", "16,abc"], "argument --batch-sizes: expected whole numbers"),
        (["tune", "--epochs", "one"], "argument --epochs: expected MIN-MAX or one value"),
        (["tune", "--learning-rate", "fast"], "argument --learning-rate: expected MIN:MAX"),
        (["tune", "--max-jobs", "0"], "argument --max-jobs: expected a whole number of at least 1"),
        (["predict", "x.png", "--top-k", "-1"], "argument --top-k: expected a whole number"),
    ],
)
def test_a_bad_value_is_one_usage_line_not_a_traceback(
    argv: list[str], expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    line = usage_error(argv, capsys)
    assert line.startswith(f"cifar100 {argv[0]}: error: {expected}"), line
    assert line.endswith(f"(see cifar100 {argv[0]} --help)")


def test_a_misspelt_command_is_an_invalid_choice_with_a_suggestion(
    capsys: pytest.CaptureFixture[str],
) -> None:
    line = usage_error(["tun"], capsys)
    assert "invalid choice: 'tun'" in line, line
    assert "did you mean tune?" in line
    assert "unrecognized arguments" not in line


def test_serve_is_the_command_only_without_one(monkeypatch: pytest.MonkeyPatch) -> None:
    import local.server

    calls: list[tuple[int, bool]] = []
    monkeypatch.setattr(
        local.server, "serve", lambda *a, **kw: calls.append((a[1], kw["verbose"])) or 0
    )
    assert main([]) == 0
    assert main(["--port", "8001", "--verbose"]) == 0  # `make run ARGS=...`: options only
    assert calls == [(8000, False), (8001, True)]


def test_top_level_help_describes_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    assert exit_.value.code == 0
    help_text = capsys.readouterr().out
    for name, summary in COMMANDS.items():
        assert f"    {name:<9} {summary}" in help_text, name
    assert "LOCAL_API_URL" in help_text


def test_serves_the_repositorys_state_from_any_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    root = build_parser().parse_args(["serve"]).root
    assert root == Path(__file__).resolve().parents[3] / ".local-stack"  # as `make run`


def test_predict_asks_for_the_top_5_labels_by_default() -> None:
    """The same 5 as the server's banner ("top-5 labels") and the API's default."""
    assert build_parser().parse_args(["predict", "image.png"]).top_k == 5


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
