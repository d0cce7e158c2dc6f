"""The ONNX graphs the artifact ships (metadata.json "serving_graphs"), opened from their files.

The final training job writes ``model.onnx`` (the TorchScript graph of model.pt, checked there
to give its logits) and, when it passes training's accuracy guard, ``model.int8.onnx``. A
worker opens one straight from its file: model.pt is not loaded, nothing is exported or
compared at start. A graph that is missing or cannot be opened is skipped with a warning; when
none opens, model_fn falls back to model.pt (exported at load, or torch).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from serving_backends import open_onnx_session
from serving_precision import precisions_to_try

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ShippedGraph:
    session: Any  # onnxruntime.InferenceSession
    precision: str  # "fp32" or "int8"
    file: str  # its name in the model dir


def shipped_graphs(metadata: Mapping[str, Any]) -> dict[str, str]:
    """precision -> file name; {} for older artifacts (no "serving_graphs") or none exported."""
    entries = metadata.get("serving_graphs") or {}
    if not isinstance(entries, dict):
        return {}
    return {
        precision: name
        for precision, name in entries.items()
        if precision in ("fp32", "int8") and isinstance(name, str) and name
    }


def open_checked(
    onnxruntime: Any, root: Path, name: str, threads: int, size: tuple[int, int], classes: int
) -> Any:
    """The session of ``root / name``, after one run shows it takes the model's input and
    gives one logit per class (a truncated or foreign file fails here, not on a request)."""
    path = root / name
    if not path.resolve().is_relative_to(root.resolve()):
        raise ValueError("not a file of the model dir")
    if not path.is_file():
        raise FileNotFoundError("no such file in the model dir")
    session = open_onnx_session(onnxruntime, str(path), threads)
    (logits,) = session.run(["logits"], {"input": np.zeros((1, 3, *size), dtype=np.float32)})
    if logits.shape != (1, classes):
        raise ValueError(f"it gives logits of shape {logits.shape}, not (1, {classes})")
    return session


def open_shipped_graph(
    root: Path,
    metadata: Mapping[str, Any],
    precision: str,
    threads: int,
    size: tuple[int, int],
    classes: int,
) -> ShippedGraph | None:
    """The shipped graph ``precision`` (INFERENCE_PRECISION) picks, or the next that opens;
    None when the artifact ships none, onnxruntime is missing or none opens."""
    graphs = shipped_graphs(metadata)
    order = precisions_to_try(precision, graphs, metadata.get("int8"))
    if not order:
        return None
    try:
        import onnxruntime
    except ImportError:
        logger.warning("onnxruntime is not installed: the artifact's ONNX graphs cannot serve")
        return None
    for position, wanted in enumerate(order):
        name = graphs[wanted]
        try:
            session = open_checked(onnxruntime, root, name, threads, size, classes)
        except Exception as exc:
            following = order[position + 1 :]
            instead = f"the {following[0]} graph" if following else "model.pt"
            why = (str(exc).splitlines() or [type(exc).__name__])[0]
            logger.warning(
                "cannot open the %s graph %s (%s); trying %s", wanted, name, why, instead
            )
            continue
        return ShippedGraph(session, wanted, name)
    return None
