"""Loading the champion, scoring it with its own preprocessing, and the paired comparison."""

from __future__ import annotations

import io
import json
import tarfile
import tempfile
from pathlib import Path

import pytest
import torch
from torch import nn

from trainlib.artifact import EVALUATION_FILE, build_metadata, write_artifact
from trainlib.champion import (
    Comparison,
    comparison_metrics,
    evaluate_champion,
    evaluation_record,
    load_champion,
)
from trainlib.data import ImageSet
from trainlib.errors import InputError
from trainlib.loop import Runtime, evaluate_images, prepare_model
from trainlib.mcnemar import TEST_NAME
from trainlib.preprocess import build_eval_transform, preprocess_spec
from trainlib.synthetic import class_names, make_images

CLASSES = class_names(3)
CPU = torch.device("cpu")
FP32 = Runtime(CPU, None, False)


class Tiny(nn.Module):
    """A stand-in for ResNet-34 (the loader never looks inside): pooled colours -> logits.
    Its model.pt is kilobytes, where ResNet-34's 85 MB take seconds to pack."""

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(2)
        self.fc = nn.Linear(12, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.pool(x), 1))


def write_champion(
    model_dir: Path,
    *,
    classes: list[str] = CLASSES,
    image_size: int = 32,
    num_outputs: int | None = None,
    seed: int = 0,
    mean: tuple[float, ...] | None = None,
) -> nn.Module:
    """An artifact as the final job writes it, of an untrained model (the tests need a
    model, not a good one). Returns the model."""
    torch.manual_seed(seed)
    model = Tiny(num_outputs or len(classes)).eval()
    spec = preprocess_spec(image_size, source_size=(32, 32))
    if mean is not None:
        spec["mean"] = list(mean)
    metadata = build_metadata(
        num_classes=len(classes),
        image_size=image_size,
        preprocess=spec,
        hyperparameters={"image_size": image_size},
        metrics={"test_acc": 0.5, "test_loss": 1.0, "val_acc": 0.5},
        job_name="cifar100-r20261101000000abcd-final",
    )
    write_artifact(model_dir, model, classes, metadata, None)
    return model


def pack(model_dir: Path, archive: Path) -> Path:
    """model.tar.gz as SageMaker packs /opt/ml/model: the dir's entries at the top level."""
    archive.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive, "w:gz") as tar:
        for entry in sorted(model_dir.iterdir()):
            tar.add(entry, arcname=entry.name)
    return archive


@pytest.fixture(scope="module")
def artifact(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, nn.Module]:
    model_dir = tmp_path_factory.mktemp("champion") / "model"
    return model_dir, write_champion(model_dir)


@pytest.fixture
def test_set() -> ImageSet:
    images, labels = make_images(3, 4, seed=5)
    return ImageSet(
        torch.from_numpy(images).permute(0, 3, 1, 2).contiguous(),
        torch.as_tensor(labels),
        CLASSES,
        (32, 32),
    )


def outputs(model: torch.nn.Module) -> torch.Tensor:
    with torch.no_grad():
        return model(torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1)))


def test_a_channel_folder_its_tarball_and_an_unpacked_artifact_load_alike(
    artifact, tmp_path, monkeypatch
):
    model_dir, model = artifact
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    channel = tmp_path / "champion"
    archive = pack(model_dir, channel / "model.tar.gz")
    # The one file of a channel whose S3Prefix is the object's key, whatever its name.
    renamed = tmp_path / "renamed"
    pack(model_dir, renamed / "output-model")
    for source in (channel, archive, model_dir, renamed):
        champion = load_champion(source, CLASSES, CPU)
        assert champion.model_version == "cifar100-r20261101000000abcd-final"
        assert champion.training_job_name == champion.model_version
        torch.testing.assert_close(outputs(champion.model), outputs(model), rtol=1e-4, atol=1e-4)
    assert list(scratch.iterdir()) == []  # the unpacked copy is gone


def test_the_same_model_as_candidate_and_champion_is_no_difference(artifact, tmp_path, test_set):
    model_dir, model = artifact
    channel = tmp_path / "champion"
    pack(model_dir, channel / "model.tar.gz")
    transform = build_eval_transform(
        json.loads((model_dir / "metadata.json").read_text())["preprocess"]
    )
    candidate = evaluate_images(prepare_model(model, FP32), test_set, transform, FP32, 8)
    champion = evaluate_champion(channel, test_set, FP32, 8)
    assert torch.equal(candidate.correct, champion.evaluation.correct)
    comparison = Comparison.of(candidate.correct, champion.evaluation.correct)
    assert comparison.candidate_only_correct == comparison.champion_only_correct == 0
    assert comparison.mcnemar_p_value == 1.0
    assert comparison.both_correct + comparison.both_wrong == len(test_set)
    assert comparison_metrics(champion, comparison) == {
        "champion_test_acc": candidate.accuracy,
        "mcnemar_p_value": 1.0,
        "candidate_only_correct": 0,
        "champion_only_correct": 0,
    }


def test_the_champion_is_scored_with_its_own_preprocessing(tmp_path, test_set):
    """A 48px champion with its own normalisation, in a job whose test images are 32px."""
    model = write_champion(tmp_path / "model", image_size=48, mean=(0.2, 0.3, 0.4), seed=2)
    champion = load_champion(tmp_path / "model", CLASSES, CPU)
    assert champion.transform(test_set.images[:2]).shape == (2, 3, 48, 48)
    spec = json.loads((tmp_path / "model" / "metadata.json").read_text())["preprocess"]
    expected = evaluate_images(model, test_set, build_eval_transform(spec), FP32, 5)
    result = evaluate_champion(tmp_path / "model", test_set, FP32, 5)
    assert result.image_size == 48
    assert torch.equal(result.evaluation.correct, expected.correct)
    assert result.evaluation.loss == pytest.approx(expected.loss, rel=1e-4)


def test_comparison_counts_the_paired_table_and_tests_the_discordant_pairs():
    candidate = torch.tensor([1, 1, 1, 1, 1, 1, 0, 0, 1, 0], dtype=torch.bool)
    champion = torch.tensor([1, 0, 0, 0, 0, 0, 1, 0, 1, 0], dtype=torch.bool)
    comparison = Comparison.of(candidate, champion)
    assert (comparison.candidate_only_correct, comparison.champion_only_correct) == (5, 1)
    assert (comparison.both_correct, comparison.both_wrong) == (2, 2)
    assert comparison.mcnemar_p_value == 2 * 7 / 64  # b + c = 6, P[X <= 1] = 7/64
    with pytest.raises(ValueError, match="unpaired"):
        Comparison.of(candidate, champion[:-1])


def test_evaluation_record_has_the_documented_shape(artifact, test_set):
    model_dir, model = artifact
    transform = build_eval_transform(preprocess_spec(32, source_size=(32, 32)))
    candidate = evaluate_images(model, test_set, transform, FP32, 8)
    first_run = evaluation_record(candidate, None, None)
    assert first_run == {
        "test_images": 12,
        "candidate": {"test_acc": candidate.accuracy, "test_loss": candidate.loss},
        "champion": None,
        "comparison": None,
    }
    champion = evaluate_champion(model_dir, test_set, FP32, 8)
    comparison = Comparison.of(candidate.correct, champion.evaluation.correct)
    record = evaluation_record(candidate, champion, comparison)
    assert record["champion"] == {
        "test_acc": champion.evaluation.accuracy,
        "model_version": "cifar100-r20261101000000abcd-final",
        "training_job_name": "cifar100-r20261101000000abcd-final",
    }
    assert set(record["comparison"]) == {
        "candidate_only_correct",
        "champion_only_correct",
        "both_correct",
        "both_wrong",
        "mcnemar_p_value",
        "test",
    }
    assert record["comparison"]["test"] == TEST_NAME
    assert json.loads(json.dumps(record)) == record  # plain JSON


def test_the_artifact_stages_evaluation_json_only_when_given_one(artifact, tmp_path):
    model_dir, model = artifact
    metadata = json.loads((model_dir / "metadata.json").read_text())
    write_artifact(tmp_path / "with", model, CLASSES, metadata, None, {"test_images": 3})
    write_artifact(tmp_path / "without", model, CLASSES, metadata, None)
    assert json.loads((tmp_path / "with" / EVALUATION_FILE).read_text()) == {"test_images": 3}
    assert not (tmp_path / "without" / EVALUATION_FILE).exists()
    assert [p.name for p in tmp_path.iterdir() if "staging" in p.name] == []


# --- a champion that cannot be used: one clear InputError, never a silent pass ---------------


def tarball(path: Path, members: dict[str, bytes]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def artifact_files(model_dir: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in model_dir.iterdir() if p.is_file()}


def refused(path: Path, match: str, classes: list[str] = CLASSES) -> str:
    with pytest.raises(InputError, match=match) as info:
        load_champion(path, classes, CPU)
    assert "\n" not in str(info.value)
    return str(info.value)


def test_a_file_that_is_not_a_tarball(tmp_path):
    (tmp_path / "champion").mkdir()
    (tmp_path / "champion" / "model.tar.gz").write_bytes(b"<Error><Code>AccessDenied</Code>")
    refused(tmp_path / "champion", "is not a readable model.tar.gz")


def test_a_truncated_tarball(artifact, tmp_path):
    archive = pack(artifact[0], tmp_path / "full.tar.gz")
    cut = tmp_path / "champion" / "model.tar.gz"
    cut.parent.mkdir()
    cut.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    refused(cut.parent, "is not a readable model.tar.gz")


def test_a_tarball_without_model_pt(artifact, tmp_path):
    files = artifact_files(artifact[0])
    del files["model.pt"]
    refused(tarball(tmp_path / "model.tar.gz", files), "has no model.pt")


@pytest.mark.parametrize("missing", ["metadata.json", "classes.json"])
def test_a_tarball_without_its_json(artifact, tmp_path, missing):
    files = artifact_files(artifact[0])
    del files[missing]
    refused(tarball(tmp_path / "model.tar.gz", files), f"has no {missing}")


def test_a_corrupt_model_pt(artifact, tmp_path):
    files = artifact_files(artifact[0])
    files["model.pt"] = files["model.pt"][:1000]
    refused(tarball(tmp_path / "model.tar.gz", files), "model.pt is not a TorchScript model")


@pytest.mark.parametrize(
    ("name", "content", "match"),
    [
        ("metadata.json", b"{not json", "metadata.json is not valid JSON"),
        ("metadata.json", b"[1, 2]", "metadata.json is not a JSON object"),
        ("classes.json", b'{"a": 1}', "classes.json is not a list of class names"),
        ("metadata.json", b'{"image_size": 32}', "no usable image_size and preprocess"),
        (
            "metadata.json",
            b'{"image_size": 32, "preprocess": {"resize": [32, 32], "interpolation": "bilinear",'
            b' "mean": [0.5, 0.5, 0.5], "std": [0.2, 0.2, 0.2]}, "weights_file": "../model.pt"}',
            "bad weights_file",
        ),
    ],
)
def test_bad_metadata_or_classes(artifact, tmp_path, name, content, match):
    files = {**artifact_files(artifact[0]), name: content}
    refused(tarball(tmp_path / "model.tar.gz", files), match)


def test_a_champion_with_other_classes(artifact, tmp_path):
    message = refused(artifact[0], "trained on other classes", ["apple", "bee", "class_02"])
    assert "only the champion has 'class_00', 'class_01'" in message
    assert "only the training channel has 'apple', 'bee'" in message
    message = refused(artifact[0], "other classes", [*CLASSES, "class_03"])
    assert "the champion has 3 classes, the training channel 4" in message
    message = refused(artifact[0], "another order", ["class_01", "class_00", "class_02"])
    assert "index 0 is 'class_00' for the champion" in message


def test_a_model_with_another_number_of_outputs(tmp_path):
    write_champion(tmp_path / "model", num_outputs=5)
    refused(tmp_path / "model", r"returns \(1, 5\) for one image, not \(1, 3\) logits")


def test_an_entry_outside_the_archive_is_refused(artifact, tmp_path):
    files = {**artifact_files(artifact[0]), "../escaped.txt": b"x"}
    refused(tarball(tmp_path / "model.tar.gz", files), "unsafe entry")


def test_an_empty_missing_or_unrecognised_channel(tmp_path):
    (tmp_path / "empty").mkdir()
    refused(tmp_path / "empty", "is empty")
    refused(tmp_path / "absent", "does not exist")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "weights.bin").write_bytes(b"x")
    refused(tmp_path / "other", "is not a readable model.tar.gz")  # the one file: an archive
    (tmp_path / "other" / "notes.txt").write_bytes(b"x")
    refused(tmp_path / "other", "holds neither model.tar.gz nor an unpacked artifact")
