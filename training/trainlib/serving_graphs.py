"""The serving graphs the final job ships beside model.pt: ``model.onnx`` and ``model.int8.onnx``.

The endpoint runs them with ONNX Runtime (model_handler/serving_backends.py), so a worker
starts by opening a file instead of exporting TorchScript at load. The int8 graph is made
with ONNX Runtime's static quantization (QDQ format, uint8 activations, per-channel int8
weights: the configuration ONNX Runtime's quantization guide recommends for CNNs on CPU),
calibrated on validation images preprocessed as serving preprocesses them, and shipped only
if it agrees with fp32 (docs/training.md, "Serving graphs").

Both graphs take ``input`` ``[batch, 3, H, W]`` (normalised float32) and give ``logits``
``[batch, classes]``; the batch size is dynamic. onnxruntime and onnx are optional here: a
job without them ships model.pt alone, which the endpoint exports at load as before.
"""

from __future__ import annotations

import tempfile
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from trainlib.config import INT8_CALIBRATION_IMAGES, INT8_MAX_ACCURACY_DROP, INT8_MIN_AGREEMENT
from trainlib.data import Images, load_batches, shard_batches

ONNX_FILE = "model.onnx"
INT8_FILE = "model.int8.onnx"

Batches = Iterable[tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]]


def preprocessed_batches(
    data: Images, transform: Callable[[torch.Tensor], torch.Tensor], batch_size: int
) -> Iterator[tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]]:
    """Every image of ``data`` in order, as the endpoint feeds the network: the serving
    preprocessing (``transform``, built from metadata.json's dict) on the CPU."""
    for images, labels in load_batches(data, shard_batches(len(data), batch_size)):
        yield transform(images).numpy(), labels.numpy()


def calibration_subset(data: Images, count: int, seed: int) -> Images:
    """``count`` images drawn without replacement (seeded), in index order."""
    if count >= len(data):
        return data
    chosen = torch.randperm(len(data), generator=torch.Generator().manual_seed(seed))[:count]
    return data.subset(chosen.sort().values)


def export_onnx(traced: torch.jit.ScriptModule, image_size: int, path: Path) -> None:
    """The TorchScript graph of model.pt as ONNX, batch dimension dynamic."""
    example = torch.zeros(1, 3, image_size, image_size)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter is deprecated, not gone
        torch.onnx.export(
            traced,
            (example,),
            str(path),
            dynamo=False,  # the artifact's graph is TorchScript; this exporter reads it as is
            input_names=["input"],
            output_names=["logits"],
            dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
        )


def open_session(path: Path, threads: int = 0) -> Any:
    """An ONNX Runtime CPU session (``threads`` 0: ONNX Runtime's default)."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def run_session(session: Any, inputs: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    logits: npt.NDArray[np.float32] = session.run(None, {"input": inputs})[0]
    return logits


def matches_torchscript(session: Any, traced: torch.jit.ScriptModule, image_size: int) -> bool:
    """The exported fp32 graph gives model.pt's logits (the handler's check at load, moved
    here: the endpoint trusts what the artifact ships)."""
    sample = torch.randn(2, 3, image_size, image_size, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        expected = traced(sample).float()
    got = torch.from_numpy(run_session(session, sample.numpy()))
    return bool(torch.allclose(got, expected, rtol=1e-3, atol=1e-3 * float(expected.abs().max())))


class _Calibration:
    """ONNX Runtime's CalibrationDataReader protocol over float32 batches."""

    def __init__(self, batches: Iterable[npt.NDArray[np.float32]]) -> None:
        self._batches: Iterator[npt.NDArray[np.float32]] = iter(batches)

    def get_next(self) -> dict[str, npt.NDArray[np.float32]] | None:
        batch = next(self._batches, None)
        return None if batch is None else {"input": batch}

    def rewind(self) -> None:  # part of the protocol; one pass (MinMax) is all it needs
        return None


def quantize_int8(
    fp32_path: Path, int8_path: Path, calibration: Iterable[npt.NDArray[np.float32]]
) -> None:
    """Static int8 quantization of ``fp32_path`` calibrated on the given input batches."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quant_pre_process,
        quantize_static,
    )

    class Reader(_Calibration, CalibrationDataReader):
        pass

    with tempfile.TemporaryDirectory(dir=int8_path.parent) as scratch:
        # Shape inference and graph fusion first, as the quantization guide asks.
        prepared = Path(scratch) / "prepared.onnx"
        quant_pre_process(str(fp32_path), str(prepared))
        quantize_static(
            str(prepared),
            str(int8_path),
            Reader(calibration),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
        )


@dataclass(frozen=True)
class Int8Check:
    """int8 against fp32 on the same images: top-1 agreement and both accuracies."""

    images: int
    agreement: float
    fp32_accuracy: float
    int8_accuracy: float

    @property
    def accuracy_drop(self) -> float:
        return self.fp32_accuracy - self.int8_accuracy

    def refusal(self, min_agreement: float, max_drop: float) -> str | None:
        """Why the int8 graph may not ship, or None when it may."""
        if self.images == 0:
            return "no validation images to check it on"
        if self.agreement < min_agreement:
            return (
                f"its top-1 agrees with fp32 on {self.agreement:.2%} of {self.images} "
                f"validation images, under the {min_agreement:.2%} required"
            )
        if self.accuracy_drop > max_drop:
            return (
                f"it loses {self.accuracy_drop * 100:.2f} accuracy points on {self.images} "
                f"validation images ({self.fp32_accuracy:.4f} -> {self.int8_accuracy:.4f}), "
                f"over the {max_drop * 100:.2f} allowed"
            )
        return None


def compare_int8(fp32: Any, int8: Any, batches: Batches) -> Int8Check:
    """Both sessions on every batch; the top-1 answers compared image by image."""
    images = agree = fp32_right = int8_right = 0
    for inputs, labels in batches:
        a = run_session(fp32, inputs).argmax(1)
        b = run_session(int8, inputs).argmax(1)
        images += len(labels)
        agree += int((a == b).sum())
        fp32_right += int((a == labels).sum())
        int8_right += int((b == labels).sum())
    if images == 0:
        return Int8Check(0, 0.0, 0.0, 0.0)
    return Int8Check(images, agree / images, fp32_right / images, int8_right / images)


@dataclass(frozen=True)
class ServingGraphs:
    """What was shipped, and the int8 decision with its figures (metadata.json)."""

    files: dict[str, str]  # precision -> file name in the model dir
    int8: dict[str, Any] | None  # the check's record, None when int8 was not attempted
    note: str  # one line for the job's log

    @property
    def metadata(self) -> dict[str, Any]:
        entries: dict[str, Any] = {"serving_graphs": self.files}
        if self.int8 is not None:
            entries["int8"] = self.int8
        return entries

    @property
    def metrics(self) -> dict[str, float]:
        """The figures as metric lines read them (int8_agreement, int8_accuracy_drop)."""
        if self.int8 is None or not self.int8.get("images"):
            return {}
        return {
            "int8_agreement": self.int8["agreement"],
            "int8_accuracy_drop": self.int8["accuracy_drop"],
        }


def write_serving_graphs(
    directory: Path,
    traced: torch.jit.ScriptModule,
    image_size: int,
    *,
    mode: str = "int8",
    check_batches: Callable[[], Batches],
    calibration_batches: Callable[[], Iterable[npt.NDArray[np.float32]]],
    calibration_images: int = INT8_CALIBRATION_IMAGES,
    min_agreement: float = INT8_MIN_AGREEMENT,
    max_accuracy_drop: float = INT8_MAX_ACCURACY_DROP,
    threads: int = 0,
) -> ServingGraphs:
    """Write model.onnx (and, in mode int8, model.int8.onnx when it passes) into ``directory``.

    Never fails the job: a graph that cannot be made or does not agree is left out with the
    reason in the note and metadata, and the endpoint serves what remains (model.pt last).
    """
    if mode == "none":
        return ServingGraphs({}, None, "serving graphs: none (--serving_graphs none)")
    try:
        import onnx  # noqa: F401  # the exporter and the quantizer need it
        import onnxruntime  # noqa: F401
    except ImportError as e:
        return ServingGraphs({}, None, f"serving graphs: none ({e.name} is not installed)")
    fp32_path = directory / ONNX_FILE
    try:
        export_onnx(traced, image_size, fp32_path)
        fp32 = open_session(fp32_path, threads)
        faithful = matches_torchscript(fp32, traced, image_size)
    except Exception as e:  # an exotic graph the exporter cannot take: model.pt still serves
        fp32_path.unlink(missing_ok=True)
        return ServingGraphs({}, None, f"serving graphs: none (ONNX export failed: {e})")
    if not faithful:
        fp32_path.unlink()
        return ServingGraphs(
            {}, None, "serving graphs: none (the ONNX graph disagrees with model.pt)"
        )
    files = {"fp32": ONNX_FILE}
    if mode == "fp32":
        return ServingGraphs(files, None, f"serving graphs: {ONNX_FILE} (--serving_graphs fp32)")

    int8_path = directory / INT8_FILE
    record: dict[str, Any] = {
        "shipped": False,
        "calibration_images": calibration_images,
        "min_agreement": min_agreement,
        "max_accuracy_drop": max_accuracy_drop,
    }
    try:
        quantize_int8(fp32_path, int8_path, calibration_batches())
        check = compare_int8(fp32, open_session(int8_path, threads), check_batches())
    except Exception as e:
        int8_path.unlink(missing_ok=True)
        record["reason"] = f"quantization failed: {e}"
        return ServingGraphs(files, record, f"serving graphs: {ONNX_FILE}; int8 {record['reason']}")
    record.update(asdict(check), accuracy_drop=check.accuracy_drop)
    refusal = check.refusal(min_agreement, max_accuracy_drop)
    figures = (
        f"agreement {check.agreement:.4f}, accuracy {check.fp32_accuracy:.4f} -> "
        f"{check.int8_accuracy:.4f} on {check.images} validation images"
    )
    if refusal is not None:
        int8_path.unlink()
        record["reason"] = f"refused: {refusal}"
        return ServingGraphs(
            files, record, f"serving graphs: {ONNX_FILE} only; int8 refused: {refusal}"
        )
    record.update(shipped=True, reason="accepted")
    files["int8"] = INT8_FILE
    return ServingGraphs(files, record, f"serving graphs: {ONNX_FILE}, {INT8_FILE} ({figures})")
