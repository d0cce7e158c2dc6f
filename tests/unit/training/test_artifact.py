import json

import pytest
import torch

from trainlib import artifact
from trainlib.artifact import build_metadata, write_artifact
from trainlib.model import ResNet34Classifier
from trainlib.preprocess import preprocess_spec

CONTRACT_KEYS = {
    "format_version",
    "architecture",
    "weights_file",
    "weights_format",
    "num_classes",
    "image_size",
    "preprocess",
    "hyperparameters",
    "metrics",
    "training_job_name",
    "model_version",
    "created_at",
    "torch_version",
}


def metadata(image_size=32):
    return build_metadata(
        num_classes=3,
        image_size=image_size,
        preprocess=preprocess_spec(image_size),
        hyperparameters={
            "learning_rate": 0.1,
            "batch_size": 8,
            "epochs": 1,
            "image_size": image_size,
            "pretrained": False,
        },
        metrics={"test_acc": 0.5, "test_loss": 1.0, "val_acc": 0.4},
        job_name="cifar100-r20261128030512ab12-final",
    )


def test_metadata_has_exactly_the_documented_keys():
    meta = metadata()
    assert set(meta) == CONTRACT_KEYS
    assert meta["architecture"] == "resnet34"
    assert meta["weights_file"] == "model.pt"
    assert meta["weights_format"] == "torchscript"
    assert meta["model_version"] == meta["training_job_name"]
    assert meta["created_at"].endswith("Z")
    assert "+" not in meta["torch_version"]


def test_artifact_is_a_traced_model_with_dynamic_batch(tmp_path):
    model = ResNet34Classifier(3, hidden_units=8).eval()
    code = tmp_path / "handler"
    code.mkdir()
    (code / "inference.py").write_text("def model_fn(d): ...\n")
    (code / "requirements.txt").write_text("pillow\n")
    write_artifact(tmp_path / "model", model, ["a", "b", "c"], metadata(), code)
    files = {
        p.relative_to(tmp_path / "model").as_posix()
        for p in (tmp_path / "model").rglob("*")
        if p.is_file()
    }
    assert files == {
        "model.pt",
        "classes.json",
        "metadata.json",
        "code/inference.py",
        "code/requirements.txt",
    }
    assert json.loads((tmp_path / "model" / "classes.json").read_text()) == ["a", "b", "c"]
    loaded = torch.jit.load(str(tmp_path / "model" / "model.pt"))
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        assert loaded(x[:1]).shape == (1, 3)
        assert torch.allclose(loaded(x), model(x), atol=1e-4)
    assert [p.name for p in tmp_path.iterdir() if "staging" in p.name] == []


def test_a_failed_export_leaves_nothing_in_the_model_dir(tmp_path, monkeypatch):
    def broken(model, image_size, path):
        path.write_bytes(b"half")
        raise RuntimeError("disk full")

    monkeypatch.setattr(artifact, "export_torchscript", broken)
    with pytest.raises(RuntimeError):
        write_artifact(
            tmp_path / "model",
            ResNet34Classifier(3, hidden_units=8),
            ["a", "b", "c"],
            metadata(),
            None,
        )
    assert list((tmp_path / "model").iterdir()) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_artifact_of_a_fused_trunk_predicts_as_the_unfused_model(
    tmp_path, random_batchnorm_statistics
):
    """Training exports the BatchNorm-folded trunk: same predictions, same metadata."""
    import copy

    torch.manual_seed(1)
    unfused = random_batchnorm_statistics(ResNet34Classifier(3, hidden_units=8)).eval()
    fused = copy.deepcopy(unfused)
    fused.fuse_frozen_trunk()
    meta = metadata()
    write_artifact(tmp_path / "model", fused, ["a", "b", "c"], meta, None)
    loaded = torch.jit.load(str(tmp_path / "model" / "model.pt"))
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), unfused(x), rtol=1e-3, atol=1e-3)
        assert torch.equal(loaded(x).argmax(1), unfused(x).argmax(1))
    assert json.loads((tmp_path / "model" / "metadata.json").read_text()) == meta
