"""Managed spot checkpoints: one file, written atomically each epoch, read back at start.

SageMaker copies the job's CheckpointConfig S3 prefix into ``/opt/ml/checkpoints`` before the
script starts and syncs that folder back to S3 while it runs, so a reclaimed spot job that
restarts finds the last epoch's file here. As in torchvision's reference ``train.py``, the
file is a dict of state dicts (model, optimizer, lr scheduler, grad scaler) plus the epoch;
it also holds the RNG states (the resumed epochs draw the same batches, crops and dropout masks
as an uninterrupted run) and the metric history (metrics.json and the curves stay complete).

A checkpoint that cannot be read is a lost cache, not bad input: a warning, then a fresh start
(it is overwritten after the first epoch). One written with other settings is an error: it
belongs to another job, and training on from it, or over it, would be wrong.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from trainlib.errors import InputError
from trainlib.stderr import say

CHECKPOINT_FILE = "checkpoint.pt"
CHECKPOINT_FORMAT = 1
_TEMP_PREFIX = ".checkpoint-"
_KEYS = {
    "format",
    "settings",
    "epoch",
    "global_step",
    "model",
    "optimizer",
    "lr_scheduler",
    "scaler",
    "rng",
    "history",
}


def save_checkpoint(directory: Path, payload: dict[str, Any]) -> Path:
    """Write ``directory/checkpoint.pt`` via a temporary file and a rename (never half-written;
    the rename replaces the previous epoch's file, so at most one is kept)."""
    directory.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(prefix=_TEMP_PREFIX, suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save({"format": CHECKPOINT_FORMAT, **payload}, f)
            f.flush()
            os.fsync(f.fileno())
        target = directory / CHECKPOINT_FILE
        os.replace(temp, target)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    return target


def _warn(message: str) -> None:
    say(f"warning: {message}")


def load_checkpoint(directory: Path, settings: dict[str, Any]) -> dict[str, Any] | None:
    """The checkpoint in ``directory``, or None when there is none or it is unreadable.

    Raises InputError when it was written with other ``settings`` (hyperparameters that
    shape the model or the run; ``epochs`` may differ).
    """
    for stale in directory.glob(f"{_TEMP_PREFIX}*.tmp"):  # a write cut short by a reclaim
        stale.unlink(missing_ok=True)
    path = directory / CHECKPOINT_FILE
    if not path.is_file():
        return None
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # truncated, not a torch file, unpickling refused: all the same
        _warn(f"checkpoint {path} is unreadable ({type(e).__name__}); starting from scratch")
        return None
    if (
        not isinstance(payload, dict)
        or payload.get("format") != CHECKPOINT_FORMAT
        or not payload.keys() >= _KEYS
    ):
        _warn(
            f"checkpoint {path} is not a format-{CHECKPOINT_FORMAT} checkpoint; starting from scratch"
        )
        return None
    if payload["settings"] != settings:
        differ = sorted(
            k
            for k in settings.keys() | payload["settings"].keys()
            if settings.get(k) != payload["settings"].get(k)
        )
        raise InputError(
            f"checkpoint {path} was written with other settings ({', '.join(differ)}); "
            "remove it or pass another --checkpoint-dir"
        )
    return payload


def process_rng_state() -> dict[str, Any]:
    """This process's own generators: augmentation crops and dropout masks draw from them."""
    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def rng_state(
    generator: torch.Generator, ranks: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """The RNG states a resumed run needs: this process's and the batch-order generator
    (the same on every rank); ``ranks``: every rank's ``process_rng_state`` in a
    distributed job (each rank draws its own crops and dropout masks)."""
    state: dict[str, Any] = {**process_rng_state(), "batch_order": generator.get_state()}
    if ranks is not None:
        state["ranks"] = ranks
    return state


def restore_rng_state(
    state: dict[str, Any], generator: torch.Generator, rank: int | None = None
) -> None:
    """Restore ``rng_state``; ``rank``: take that rank's own states (a distributed job)."""
    own = state["ranks"][rank] if rank is not None and "ranks" in state else state
    torch.set_rng_state(own["torch"])
    generator.set_state(state["batch_order"])
    if "cuda" in own and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(own["cuda"])
