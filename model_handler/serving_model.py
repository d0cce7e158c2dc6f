"""The artifact's files checked against the contract, and the loaded model predict_fn runs."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from serving_preprocess import Preprocess


def read_artifact(model_dir: Path) -> tuple[dict[str, Any], list[str]]:
    """metadata.json and classes.json; a mismatch fails the load, not a request."""
    metadata = json.loads((model_dir / "metadata.json").read_text())
    classes = json.loads((model_dir / "classes.json").read_text())
    if metadata.get("format_version") != 1:
        raise ValueError(f"unsupported artifact format_version {metadata.get('format_version')!r}")
    if metadata.get("weights_format", "torchscript") != "torchscript":
        raise ValueError(f"unsupported weights_format {metadata.get('weights_format')!r}")
    if not isinstance(classes, list) or not all(isinstance(c, str) for c in classes):
        raise ValueError("classes.json must be a list of label names")
    if metadata.get("num_classes", len(classes)) != len(classes):
        raise ValueError(
            f"metadata.json says {metadata['num_classes']} classes, classes.json has {len(classes)}"
        )
    return metadata, classes


@dataclass
class LoadedModel:
    """model_fn's result: everything predict_fn needs, built once per worker."""

    module: torch.nn.Module | torch.jit.ScriptModule | None  # None: a shipped ONNX graph serves
    device: torch.device
    classes: list[str]
    metadata: dict[str, Any]
    preprocess: Preprocess
    onnx_session: Any = None  # an onnxruntime.InferenceSession when that backend serves
    precision: str = "fp32"  # "int8" when the artifact's int8 graph serves
    source: str = "model.pt"  # the file that serves, as the load log line names it

    @property
    def backend(self) -> str:
        return "onnxruntime" if self.onnx_session is not None else "torch"

    @property
    def identity(self) -> dict[str, Any]:
        return {
            "version": self.metadata.get("model_version"),
            "training_job_name": self.metadata.get("training_job_name"),
            "architecture": self.metadata.get("architecture"),
        }

    def logits(self, batch: npt.NDArray[np.float32]) -> torch.Tensor:
        if self.onnx_session is not None:
            return torch.from_numpy(self.onnx_session.run(None, {"input": batch})[0])
        if self.module is None:
            raise RuntimeError("LoadedModel has neither an ONNX Runtime session nor a module")
        with torch.inference_mode():
            inputs = torch.from_numpy(batch).to(self.device, non_blocking=True)
            output: torch.Tensor = self.module(inputs)
            return output.float()
