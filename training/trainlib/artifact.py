"""The model dir (docs/contracts.md, "Model artifact"), written all at once or not at all.

Files are first written to a staging folder beside the model dir and moved in only when all
of them exist, so a failed run leaves nothing half-written in the model dir.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import warnings
from collections.abc import Callable
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch
from torch import nn

from trainlib.distributed import revert_sync_batchnorm, unwrap
from trainlib.model import ARCHITECTURE

#: Writes graph files into the staging dir from model.pt's module; returns metadata entries.
ServingGraphsWriter = Callable[[Path, torch.jit.ScriptModule], dict[str, Any]]

FORMAT_VERSION = 1
WEIGHTS_FILE = "model.pt"
#: The final job's test statistics (candidate, champion, comparison), beside metadata.json.
EVALUATION_FILE = "evaluation.json"


def build_metadata(
    *,
    num_classes: int,
    image_size: int,
    preprocess: dict[str, Any],
    hyperparameters: dict[str, Any],
    metrics: dict[str, float],
    job_name: str,
) -> dict[str, Any]:
    """metadata.json, exactly the documented keys."""
    return {
        "format_version": FORMAT_VERSION,
        "architecture": ARCHITECTURE,
        "weights_file": WEIGHTS_FILE,
        "weights_format": "torchscript",
        "num_classes": num_classes,
        "image_size": image_size,
        "preprocess": preprocess,
        "hyperparameters": hyperparameters,
        "metrics": metrics,
        "training_job_name": job_name,
        "model_version": job_name,
        "created_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "torch_version": torch.__version__.split("+")[0],
    }


def export_torchscript(model: nn.Module, image_size: int, path: Path) -> torch.jit.ScriptModule:
    """Trace a CPU float32 copy in eval mode; batch size stays dynamic (flatten(x, 1)).
    A distributed job's model is unwrapped and its SyncBatchNorms made plain BatchNorms
    again, so the artifact is what one process would export."""
    model = revert_sync_batchnorm(unwrap(model))
    # Module.to takes memory_format with a device at run time; torch's stubs list it alone.
    cpu_model = model.to("cpu", memory_format=torch.contiguous_format).float().eval()  # type: ignore[call-overload]
    example = torch.zeros(2, 3, image_size, image_size)
    with torch.no_grad(), warnings.catch_warnings():
        # TorchScript is the contract's format; torch 2.x flags jit.trace as deprecated.
        warnings.simplefilter("ignore", FutureWarning)
        traced = torch.jit.trace(cpu_model, example)
    traced.save(str(path))
    return traced


@contextmanager
def staging_dir(model_dir: Path):
    """A temporary folder on the model dir's file system; removed whatever happens."""
    model_dir.mkdir(parents=True, exist_ok=True)
    try:
        staging = Path(tempfile.mkdtemp(prefix=f".{model_dir.name}-staging-", dir=model_dir.parent))
    except OSError:  # parent not writable: a hidden folder inside, never a final name
        staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=model_dir))
    try:
        yield staging
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def publish(staging: Path, model_dir: Path) -> None:
    """Move every staged entry into the model dir (a rename each, same file system)."""
    for entry in sorted(staging.iterdir()):
        target = model_dir / entry.name
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        shutil.move(str(entry), str(target))


def write_json(path: Path, content: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(content, indent=2) + "\n")


def write_artifact(
    model_dir: Path,
    model: nn.Module,
    classes: list[str],
    metadata: dict[str, Any],
    inference_code: Path | None,
    evaluation: dict[str, Any] | None = None,
    serving_graphs: ServingGraphsWriter | None = None,
) -> None:
    """The artifact; ``evaluation`` (the final job's) is staged with it as evaluation.json.

    ``serving_graphs`` writes extra graph files beside model.pt from its TorchScript module
    and returns the entries they add to metadata.json (trainlib.serving_graphs)."""
    with staging_dir(model_dir) as staging:
        traced = export_torchscript(model, metadata["image_size"], staging / WEIGHTS_FILE)
        if serving_graphs is not None:
            metadata = {**metadata, **serving_graphs(staging, traced)}
        (staging / "classes.json").write_text(json.dumps(classes) + "\n")
        (staging / "metadata.json").write_text(json.dumps(metadata, indent=2) + "\n")
        if evaluation is not None:
            write_json(staging / EVALUATION_FILE, evaluation)
        if inference_code is not None:
            shutil.copytree(
                inference_code,
                staging / "code",
                ignore=shutil.ignore_patterns("__pycache__", "*.pyc", ".*"),
            )
        publish(staging, model_dir)
