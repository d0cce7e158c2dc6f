"""The serving graphs the final job ships: fp32 ONNX, int8 ONNX and the guard between them."""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from metric_definitions import METRIC_DEFINITIONS, format_metrics, parse_metrics
from trainlib import serving_graphs
from trainlib.artifact import build_metadata, write_artifact
from trainlib.data import ImageSet
from trainlib.preprocess import build_eval_transform, preprocess_spec
from trainlib.serving_graphs import (
    INT8_FILE,
    ONNX_FILE,
    Int8Check,
    calibration_subset,
    open_session,
    preprocessed_batches,
    run_session,
    write_serving_graphs,
)
from trainlib.synthetic import make_images

SIZE = 16
CLASSES = 4


class SmallNet(torch.nn.Module):
    """Conv-BN-ReLU twice, pooled, linear: every op the int8 graph of a ResNet quantizes."""

    def __init__(self) -> None:
        super().__init__()
        self.features = torch.nn.Sequential(
            torch.nn.Conv2d(3, 16, 3, padding=1),
            torch.nn.BatchNorm2d(16),
            torch.nn.ReLU(),
            torch.nn.Conv2d(16, 16, 3, padding=1),
            torch.nn.BatchNorm2d(16),
            torch.nn.ReLU(),
            torch.nn.AdaptiveAvgPool2d(1),
        )
        self.head = torch.nn.Linear(16, CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.flatten(self.features(x), 1))


def images(per_class: int, seed: int) -> ImageSet:
    pixels, labels = make_images(CLASSES, per_class, size=SIZE, seed=seed)
    return ImageSet(
        torch.from_numpy(pixels).permute(0, 3, 1, 2).contiguous(),
        torch.from_numpy(labels).long(),
        [f"class_{k:02d}" for k in range(CLASSES)],
    )


@pytest.fixture(scope="module")
def trained() -> tuple[torch.jit.ScriptModule, ImageSet]:
    """SmallNet trained to clear margins on the synthetic classes, traced as model.pt is."""
    torch.manual_seed(0)
    net = SmallNet()
    data = images(32, seed=0)
    transform = build_eval_transform(preprocess_spec(SIZE))
    inputs = transform(data.images)
    optimizer = torch.optim.Adam(net.parameters(), lr=0.01)
    for _ in range(60):
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(net(inputs), data.labels).backward()
        optimizer.step()
    net.eval()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(net, torch.zeros(2, 3, SIZE, SIZE))
    return traced, images(24, seed=1)


def write(directory: Path, traced, val: ImageSet, **options):
    transform = build_eval_transform(preprocess_spec(SIZE))
    return write_serving_graphs(
        directory,
        traced,
        SIZE,
        check_batches=lambda: preprocessed_batches(val, transform, 32),
        calibration_batches=lambda: (x for x, _ in preprocessed_batches(val, transform, 16)),
        calibration_images=len(val),
        **options,
    )


def test_int8_graph_that_agrees_ships_with_its_figures(tmp_path, trained):
    traced, val = trained
    graphs = write(tmp_path, traced, val)

    assert graphs.files == {"fp32": ONNX_FILE, "int8": INT8_FILE}
    assert (tmp_path / ONNX_FILE).is_file()
    assert (tmp_path / INT8_FILE).is_file()
    record = graphs.metadata["int8"]
    assert record["shipped"] is True
    assert record["reason"] == "accepted"
    assert record["images"] == len(val) == 96
    assert record["agreement"] >= 0.99
    assert record["fp32_accuracy"] >= 0.9  # the net really learnt the classes
    assert record["accuracy_drop"] == pytest.approx(
        record["fp32_accuracy"] - record["int8_accuracy"]
    )
    # The int8 graph is smaller (int8 weights) and really answers like fp32.
    assert (tmp_path / INT8_FILE).stat().st_size < (tmp_path / ONNX_FILE).stat().st_size
    transform = build_eval_transform(preprocess_spec(SIZE))
    inputs = transform(val.images).numpy()
    fp32 = run_session(open_session(tmp_path / ONNX_FILE), inputs)
    int8 = run_session(open_session(tmp_path / INT8_FILE), inputs)
    assert (fp32.argmax(1) == int8.argmax(1)).mean() == record["agreement"]
    assert not np.array_equal(fp32, int8)  # quantized, not a copy
    # The metric line the job prints reads back through the final job's definitions.
    line = format_metrics(**graphs.metrics)
    assert parse_metrics(line, METRIC_DEFINITIONS) == pytest.approx(
        {"int8_agreement": record["agreement"], "int8_accuracy_drop": record["accuracy_drop"]},
        abs=1e-4,
    )


def test_fp32_graph_gives_model_pt_logits_at_any_batch_size(tmp_path, trained):
    traced, val = trained
    write(tmp_path, traced, val, mode="fp32")
    assert not (tmp_path / INT8_FILE).exists()
    session = open_session(tmp_path / ONNX_FILE)
    for batch in (1, 5):
        inputs = torch.randn(batch, 3, SIZE, SIZE)
        with torch.no_grad():
            expected = traced(inputs).numpy()
        np.testing.assert_allclose(run_session(session, inputs.numpy()), expected, atol=1e-4)


def test_a_graph_that_disagrees_is_refused_and_fp32_ships_alone(tmp_path, trained, monkeypatch):
    traced, val = trained

    def quantize_a_different_model(fp32_path, int8_path, calibration):
        list(calibration)
        other = SmallNet().eval()  # fresh weights: its answers are not the trained net's
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            serving_graphs.export_onnx(
                torch.jit.trace(other, torch.zeros(1, 3, SIZE, SIZE)), SIZE, int8_path
            )

    monkeypatch.setattr(serving_graphs, "quantize_int8", quantize_a_different_model)
    graphs = write(tmp_path, traced, val)

    assert graphs.files == {"fp32": ONNX_FILE}
    assert not (tmp_path / INT8_FILE).exists()
    record = graphs.metadata["int8"]
    assert record["shipped"] is False
    assert record["agreement"] < 0.99
    assert record["reason"].startswith("refused: its top-1 agrees with fp32 on")
    assert "int8 refused" in graphs.note
    assert set(graphs.metrics) == {"int8_agreement", "int8_accuracy_drop"}  # still reported


def test_the_guard_reads_both_thresholds() -> None:
    assert Int8Check(1000, 0.995, 0.70, 0.697).refusal(0.99, 0.005) is None
    low = Int8Check(1000, 0.985, 0.70, 0.70).refusal(0.99, 0.005)
    assert low is not None
    assert "98.50% of 1000" in low
    drop = Int8Check(1000, 0.995, 0.70, 0.69).refusal(0.99, 0.005)
    assert drop is not None
    assert "loses 1.00 accuracy points" in drop
    assert Int8Check(0, 0.0, 0.0, 0.0).refusal(0.99, 0.005) == "no validation images to check it on"


def test_a_failed_quantization_leaves_fp32_and_says_why(tmp_path, trained, monkeypatch):
    traced, val = trained

    def broken(fp32_path, int8_path, calibration):
        int8_path.write_bytes(b"half a graph")
        raise RuntimeError("calibration ran out of memory")

    monkeypatch.setattr(serving_graphs, "quantize_int8", broken)
    graphs = write(tmp_path, traced, val)
    assert graphs.files == {"fp32": ONNX_FILE}
    assert not (tmp_path / INT8_FILE).exists()
    assert graphs.metadata["int8"]["reason"] == "quantization failed: calibration ran out of memory"
    assert graphs.metrics == {}


def test_without_onnxruntime_the_artifact_ships_model_pt_alone(tmp_path, trained, monkeypatch):
    traced, val = trained
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import fails as when absent
    graphs = write(tmp_path, traced, val)
    assert graphs.metadata == {"serving_graphs": {}}
    assert graphs.note == "serving graphs: none (onnxruntime is not installed)"
    assert list(tmp_path.iterdir()) == []


def test_mode_none_writes_nothing(tmp_path, trained):
    traced, val = trained
    graphs = write(tmp_path, traced, val, mode="none")
    assert graphs.metadata == {"serving_graphs": {}}
    assert list(tmp_path.iterdir()) == []


def test_calibration_subset_is_seeded_sized_and_ordered():
    data = images(10, seed=3)
    first = calibration_subset(data, 12, seed=7)
    assert len(first) == 12
    assert torch.equal(first.images, calibration_subset(data, 12, seed=7).images)
    assert not torch.equal(first.images, calibration_subset(data, 12, seed=8).images)
    assert calibration_subset(data, 500, seed=7) is data


def test_preprocessed_batches_are_the_serving_preprocessing_in_order():
    data = images(5, seed=4)
    spec = preprocess_spec(24, source_size=(SIZE, SIZE))
    transform = build_eval_transform(spec)
    batches = list(preprocessed_batches(data, transform, 8))
    assert [len(labels) for _, labels in batches] == [8, 8, 4]
    inputs = np.concatenate([x for x, _ in batches])
    assert inputs.dtype == np.float32
    assert inputs.shape == (20, 3, 24, 24)
    np.testing.assert_array_equal(inputs, transform(data.images).numpy())
    np.testing.assert_array_equal(np.concatenate([y for _, y in batches]), data.labels.numpy())


def test_write_artifact_merges_the_graphs_metadata(tmp_path, trained):
    _traced, val = trained
    net = SmallNet().eval()
    metadata = build_metadata(
        num_classes=CLASSES,
        image_size=SIZE,
        preprocess=preprocess_spec(SIZE),
        hyperparameters={},
        metrics={"test_acc": 0.5},
        job_name="cifar100-r20261128030512ab12-final",
    )
    seen = {}

    def graphs(staging: Path, module: torch.jit.ScriptModule) -> dict:
        seen["module"] = module
        return write(staging, module, val, mode="fp32").metadata

    write_artifact(tmp_path / "model", net, ["a", "b", "c", "d"], metadata, None, None, graphs)
    written = json.loads((tmp_path / "model" / "metadata.json").read_text())
    assert written["serving_graphs"] == {"fp32": ONNX_FILE}
    assert sorted(p.name for p in (tmp_path / "model").iterdir()) == [
        "classes.json",
        "metadata.json",
        ONNX_FILE,
        "model.pt",
    ]
    # The ONNX graph is model.pt's module, not a second trace of another copy.
    assert isinstance(seen["module"], torch.jit.ScriptModule)
