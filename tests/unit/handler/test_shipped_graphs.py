"""model_fn on artifacts that ship their ONNX graphs (model.onnx, model.int8.onnx).

The final training job writes them beside model.pt (trainlib.serving_graphs, used here to build
the artifacts): a CPU worker opens the graph INFERENCE_PRECISION picks straight from its file,
never loading model.pt, and falls back graph by graph, then to model.pt, when one cannot serve.
"""

from __future__ import annotations

import json
import logging
import shutil
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
import serving_precision
import torch

from model_handler import inference
from tests.unit.handler.artifacts import PHOTOS, encode, invoke, normalised_noise

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit:FutureWarning")


@pytest.fixture
def no_torchscript(monkeypatch: pytest.MonkeyPatch) -> list[tuple]:
    """Spies on torch.jit.load and torch.onnx.export: each call is recorded, then refused."""
    calls: list[tuple] = []

    def refuse(name: str):
        def call(*args, **kwargs):
            calls.append((name, args))
            raise AssertionError(f"{name} called")

        return call

    monkeypatch.setattr(torch.jit, "load", refuse("torch.jit.load"))
    monkeypatch.setattr(torch.onnx, "export", refuse("torch.onnx.export"))
    return calls


def variant(src: Path, dst: Path, *, drop=(), corrupt=(), metadata: dict | None = None) -> Path:
    """A copy of the artifact ``src`` with files removed or overwritten, metadata changed."""
    shutil.copytree(src, dst)
    for name in drop:
        (dst / name).unlink()
    for name in corrupt:
        (dst / name).write_bytes(b"not an onnx graph")
    if metadata is not None:  # a None value removes the key
        document = json.loads((dst / "metadata.json").read_text())
        document.update(metadata)
        document = {key: value for key, value in document.items() if value is not None}
        (dst / "metadata.json").write_text(json.dumps(document))
    return dst


def fp32_only(int8_record: dict | None) -> dict:
    """metadata.json of an artifact whose int8 graph training refused (or never made)."""
    return {"serving_graphs": {"fp32": "model.onnx"}, "int8": int8_record}


def load_with(monkeypatch: pytest.MonkeyPatch, model_dir: Path, **env: str):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return inference.model_fn(str(model_dir))


def top1(model, photos) -> list[int]:
    return [
        invoke(model, encode(photos[name], "PNG"), "image/png")["predictions"][0]["index"]
        for name in PHOTOS
    ]


BATCH = normalised_noise(6, 16, seed=7)


def test_the_shipped_fp32_graph_serves_without_loading_model_pt(
    monkeypatch, shipped_dir, tiny_model, no_torchscript, photos
) -> None:
    model = load_with(monkeypatch, shipped_dir, INFERENCE_PRECISION="fp32")
    assert no_torchscript == []
    assert (model.backend, model.precision, model.source) == ("onnxruntime", "fp32", "model.onnx")
    assert model.module is None
    # The same answers as the old path (model.pt exported at load) on the same model.pt.
    assert tiny_model.source == "model.pt exported at load"
    torch.testing.assert_close(model.logits(BATCH), tiny_model.logits(BATCH), rtol=1e-5, atol=1e-5)
    for name in PHOTOS:
        body = encode(photos[name], "PNG")
        assert invoke(model, body, "image/png") == invoke(tiny_model, body, "image/png")


def test_int8_requested_serves_the_int8_graph(
    monkeypatch, shipped_dir, tiny_model, no_torchscript, photos
) -> None:
    model = load_with(monkeypatch, shipped_dir, INFERENCE_PRECISION="int8")
    assert no_torchscript == []
    assert (model.backend, model.precision, model.source) == (
        "onnxruntime",
        "int8",
        "model.int8.onnx",
    )
    operators = {node.op_type for node in onnx.load(str(shipped_dir / model.source)).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= operators
    int8, fp32 = model.logits(BATCH), tiny_model.logits(BATCH)
    assert not torch.equal(int8, fp32)  # a different graph, quantized ...
    torch.testing.assert_close(int8, fp32, rtol=0.05, atol=0.05)  # ... close to fp32
    assert top1(model, photos) == top1(tiny_model, photos)


@pytest.mark.parametrize(("dot_product", "expected"), [(True, "int8"), (False, "fp32")])
def test_auto_picks_int8_by_the_cpus_instructions(
    monkeypatch, shipped_dir, dot_product, expected
) -> None:
    monkeypatch.setattr(serving_precision, "cpu_has_int8_dot_product", lambda: dot_product)
    model = inference.model_fn(str(shipped_dir))  # INFERENCE_PRECISION unset: auto
    assert (model.backend, model.precision) == ("onnxruntime", expected)


def test_fp32_is_served_as_asked_even_with_vnni(monkeypatch, shipped_dir) -> None:
    monkeypatch.setattr(serving_precision, "cpu_has_int8_dot_product", lambda: True)
    assert load_with(monkeypatch, shipped_dir, INFERENCE_PRECISION="fp32").precision == "fp32"


@pytest.mark.parametrize(
    ("int8_record", "says"),
    [
        (
            {"shipped": False, "reason": "refused: its top-1 agrees with fp32 on 97.00%"},
            "training refused the int8 graph: its top-1 agrees with fp32 on 97.00%",
        ),
        (None, "the artifact ships no int8 graph"),
    ],
)
def test_int8_requested_but_not_shipped_serves_fp32_with_a_warning(
    monkeypatch, caplog, tmp_path, shipped_dir, int8_record, says
) -> None:
    refused = variant(
        shipped_dir, tmp_path / "m", drop=["model.int8.onnx"], metadata=fp32_only(int8_record)
    )
    model = load_with(monkeypatch, refused, INFERENCE_PRECISION="int8")
    assert (model.backend, model.precision, model.source) == ("onnxruntime", "fp32", "model.onnx")
    (warning,) = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert "INFERENCE_PRECISION=int8" in warning.getMessage()
    assert says in warning.getMessage()


def test_without_onnxruntime_the_artifact_serves_with_torch(
    monkeypatch, caplog, shipped_dir, tiny_model, photos
) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # makes the import fail
    model = inference.model_fn(str(shipped_dir))
    assert (model.backend, model.precision, model.source) == ("torch", "fp32", "model.pt")
    assert list(model.module.parameters()) == []  # frozen, as today's torch path
    assert any("onnxruntime is not installed" in r.getMessage() for r in caplog.records)
    torch.testing.assert_close(model.logits(BATCH), tiny_model.logits(BATCH), rtol=1e-4, atol=1e-4)
    assert top1(model, photos) == top1(tiny_model, photos)


@pytest.mark.parametrize(
    ("requested", "broken", "how", "serves"),
    [
        ("int8", ["model.int8.onnx"], "drop", "model.onnx"),
        ("int8", ["model.int8.onnx"], "corrupt", "model.onnx"),
        ("fp32", ["model.onnx"], "drop", "model.pt exported at load"),
        ("int8", ["model.int8.onnx", "model.onnx"], "corrupt", "model.pt exported at load"),
    ],
)
def test_a_missing_or_unreadable_shipped_graph_falls_back(
    monkeypatch, caplog, tmp_path, shipped_dir, requested, broken, how, serves
) -> None:
    copy = variant(shipped_dir, tmp_path / "m", **{how: broken})
    model = load_with(monkeypatch, copy, INFERENCE_PRECISION=requested)
    assert (model.backend, model.precision, model.source) == ("onnxruntime", "fp32", serves)
    # One warning line for each graph that cannot serve, naming it.
    lines = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(lines) == len(broken), lines
    for line, name in zip(lines, broken, strict=True):
        assert line.startswith("cannot open the ")
        assert name in line
        assert "\n" not in line


def test_explicit_onnxruntime_still_exports_at_load_when_no_graph_opens(
    monkeypatch, tmp_path, shipped_dir
) -> None:
    copy = variant(shipped_dir, tmp_path / "m", drop=["model.onnx", "model.int8.onnx"])
    model = load_with(monkeypatch, copy, INFERENCE_BACKEND="onnxruntime")
    assert (model.backend, model.source) == ("onnxruntime", "model.pt exported at load")


def test_explicit_onnxruntime_without_it_still_raises(monkeypatch, shipped_dir) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(RuntimeError, match="onnxruntime"):
        load_with(monkeypatch, shipped_dir, INFERENCE_BACKEND="onnxruntime")


def test_the_torch_backend_ignores_the_shipped_graphs(monkeypatch, shipped_dir) -> None:
    model = load_with(monkeypatch, shipped_dir, INFERENCE_BACKEND="torch")
    assert (model.backend, model.precision, model.source) == ("torch", "fp32", "model.pt")


@pytest.mark.parametrize("graphs", [None, {}])
def test_older_artifacts_export_at_load_as_before(monkeypatch, tmp_path, tiny_dir, graphs) -> None:
    copy = variant(
        tiny_dir, tmp_path / "m", metadata=None if graphs is None else {"serving_graphs": graphs}
    )
    model = load_with(monkeypatch, copy, INFERENCE_PRECISION="auto")
    assert (model.backend, model.precision, model.source) == (
        "onnxruntime",
        "fp32",
        "model.pt exported at load",
    )


def test_the_load_line_names_backend_precision_and_file(monkeypatch, caplog, shipped_dir) -> None:
    caplog.set_level(logging.INFO)
    load_with(monkeypatch, shipped_dir, INFERENCE_PRECISION="int8")
    (line,) = [r.getMessage() for r in caplog.records if r.message.startswith("loaded ")]
    assert "(onnxruntime, int8, model.int8.onnx)" in line


@pytest.mark.parametrize("value", ["fp16", "int4", "bf16"])
def test_an_unknown_precision_is_refused(monkeypatch, tiny_dir, value) -> None:
    with pytest.raises(ValueError, match="INFERENCE_PRECISION"):
        load_with(monkeypatch, tiny_dir, INFERENCE_PRECISION=value)


def test_precision_is_case_and_blank_tolerant(monkeypatch, shipped_dir) -> None:
    assert load_with(monkeypatch, shipped_dir, INFERENCE_PRECISION=" INT8 ").precision == "int8"
    monkeypatch.setattr(serving_precision, "cpu_has_int8_dot_product", lambda: False)
    assert load_with(monkeypatch, shipped_dir, INFERENCE_PRECISION="").precision == "fp32"


def test_the_batch_dimension_of_a_shipped_graph_is_dynamic(monkeypatch, shipped_dir) -> None:
    model = load_with(monkeypatch, shipped_dir, INFERENCE_PRECISION="int8")
    for count in (1, 3, 32):
        assert tuple(model.logits(normalised_noise(count, 16, seed=count)).shape) == (count, 10)
    assert np.isfinite(model.logits(BATCH).numpy()).all()
