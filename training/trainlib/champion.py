"""The champion (the model in service), scored in the candidate's final job on the same images.

The ``champion`` channel (``--champion``, ``SM_CHANNEL_CHAMPION``) holds the champion's
``model.tar.gz``: the orchestration points the channel's S3Prefix at that exact key. Locally
it may also be the tarball itself or an unpacked artifact (``model.pt``, ``metadata.json``,
``classes.json``). Each model is evaluated with its own serving preprocessing (its
``metadata.json`` ``preprocess``), and the paired per-image results feed an exact McNemar test.
A champion that cannot be read, or that was trained on other classes, is an InputError: the
comparison is the gate's evidence, so it never silently passes.
"""

from __future__ import annotations

import json
import tarfile
import tempfile
import warnings
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from metric_definitions import CHAMPION_GATE_METRIC, GATE_P_VALUE_METRIC
from trainlib.artifact import WEIGHTS_FILE
from trainlib.data import Images
from trainlib.distributed import Distributed
from trainlib.errors import InputError
from trainlib.loop import Evaluation, Runtime, evaluate_images
from trainlib.mcnemar import TEST_NAME, exact_mcnemar_p_value
from trainlib.preprocess import build_eval_transform

ARCHIVE = "model.tar.gz"
METADATA_FILE = "metadata.json"
CLASSES_FILE = "classes.json"
_ARTIFACT = f"{WEIGHTS_FILE}, {METADATA_FILE}, {CLASSES_FILE}"


@dataclass(frozen=True)
class Champion:
    """A loaded champion: its TorchScript model (on the run's device) and eval transform."""

    model: torch.nn.Module
    transform: Callable[[Any], torch.Tensor]
    metadata: dict[str, Any]
    source: str  # what was read, for log lines

    @property
    def model_version(self) -> str | None:
        return self.metadata.get("model_version")

    @property
    def training_job_name(self) -> str | None:
        return self.metadata.get("training_job_name")


@dataclass(frozen=True)
class ChampionResult:
    """The champion's per-image results on the job's test images (the model is not kept)."""

    model_version: str | None
    training_job_name: str | None
    image_size: int
    source: str
    evaluation: Evaluation


def _reason(e: BaseException) -> str:
    """``Type: first line``: torch's messages run over many lines, an error line may not."""
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0][:200]}" if text else type(e).__name__


def load_champion(path: Path, classes: Sequence[str], device: torch.device) -> Champion:
    """Read the champion from ``path`` (the channel folder, its tarball, or an unpacked
    artifact); ``classes`` are the training channel's, which the champion's must equal."""
    if path.is_file():
        archive = path
    elif path.is_dir():
        files = [p for p in path.iterdir() if p.is_file() and not p.name.startswith(".")]
        if (path / ARCHIVE).is_file():
            archive = path / ARCHIVE
        elif (path / METADATA_FILE).is_file():
            return _load_artifact(path, str(path), classes, device)
        elif len(files) == 1 and not any(p.is_dir() for p in path.iterdir()):
            # The channel's S3Prefix is the object's own key: the docs do not say what file
            # name SageMaker downloads it as, so the one file there is the archive.
            archive = files[0]
        else:
            found = sorted(p.name for p in path.iterdir() if not p.name.startswith("."))
            if not found:
                raise InputError(f"champion channel {path} is empty")
            listed = ", ".join(found[:5]) + (", ..." if len(found) > 5 else "")
            raise InputError(
                f"champion channel {path} holds neither {ARCHIVE} nor an unpacked artifact "
                f"({_ARTIFACT}); found {listed}"
            )
    else:
        raise InputError(f"champion channel {path} does not exist")
    with tempfile.TemporaryDirectory(prefix="champion-") as unpacked:
        _unpack(archive, Path(unpacked))
        # Everything is read into memory here: the folder goes when the block ends.
        return _load_artifact(Path(unpacked), str(archive), classes, device)


def _unpack(archive: Path, target: Path) -> None:
    try:
        with tarfile.open(archive, "r:*") as tar:
            # "data": no absolute paths, no links or files outside target, no devices.
            tar.extractall(target, filter="data")
    except tarfile.FilterError as e:  # before TarError, its base class
        raise InputError(f"champion {archive} holds an unsafe entry ({_reason(e)})") from None
    except (tarfile.TarError, EOFError, zlib.error, OSError) as e:
        raise InputError(f"champion {archive} is not a readable {ARCHIVE} ({_reason(e)})") from None


def _read_json(root: Path, name: str, label: str) -> Any:
    path = root / name
    if not path.is_file():
        raise InputError(f"champion {label} has no {name} (a model artifact holds {_ARTIFACT})")
    try:
        return json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as e:
        raise InputError(f"champion {label}: {name} is not valid JSON ({_reason(e)})") from None


def _class_difference(champion: list[str], candidate: list[str]) -> str:
    if set(champion) == set(candidate) and len(champion) == len(candidate):
        i = next(i for i, (a, b) in enumerate(zip(champion, candidate, strict=True)) if a != b)
        return (
            f"the same names in another order: index {i} is {champion[i]!r} for the "
            f"champion, {candidate[i]!r} for the training channel"
        )
    only_champion = [c for c in champion if c not in set(candidate)][:3]
    only_candidate = [c for c in candidate if c not in set(champion)][:3]
    parts = [f"the champion has {len(champion)} classes, the training channel {len(candidate)}"]
    if only_champion:
        parts.append(f"only the champion has {', '.join(map(repr, only_champion))}")
    if only_candidate:
        parts.append(f"only the training channel has {', '.join(map(repr, only_candidate))}")
    return "; ".join(parts)


def _load_artifact(
    root: Path, label: str, classes: Sequence[str], device: torch.device
) -> Champion:
    # Cheap checks first: a wrong champion fails before its weights are read.
    metadata = _read_json(root, METADATA_FILE, label)
    if not isinstance(metadata, dict):
        raise InputError(f"champion {label}: {METADATA_FILE} is not a JSON object")
    champion_classes = _read_json(root, CLASSES_FILE, label)
    if not isinstance(champion_classes, list) or not all(
        isinstance(c, str) for c in champion_classes
    ):
        raise InputError(f"champion {label}: {CLASSES_FILE} is not a list of class names")
    if champion_classes != list(classes):
        raise InputError(
            f"champion {label} was trained on other classes than this job "
            f"({_class_difference(champion_classes, list(classes))}); a comparison needs the "
            "same class names in the same order"
        )
    try:
        image_size = int(metadata["image_size"])
        transform = build_eval_transform(metadata["preprocess"])
        probe = transform(torch.zeros(1, 3, image_size, image_size, dtype=torch.uint8))
    except Exception as e:  # KeyError, TypeError, ValueError from a malformed spec alike
        raise InputError(
            f"champion {label}: {METADATA_FILE} has no usable image_size and preprocess "
            f"({_reason(e)})"
        ) from None
    weights = metadata.get("weights_file", WEIGHTS_FILE)
    if not isinstance(weights, str) or Path(weights).name != weights or weights in ("", ".."):
        raise InputError(f"champion {label}: {METADATA_FILE} names a bad weights_file {weights!r}")
    if not (root / weights).is_file():
        raise InputError(f"champion {label} has no {weights} (a model artifact holds {_ARTIFACT})")
    try:
        with warnings.catch_warnings():
            # TorchScript is the contract's format; torch 2.x flags jit.load as deprecated.
            warnings.simplefilter("ignore", FutureWarning)
            model = torch.jit.load(str(root / weights), map_location=device)
    except Exception as e:  # torch raises RuntimeError, ValueError, ... for a bad file
        raise InputError(
            f"champion {label}: {weights} is not a TorchScript model ({_reason(e)})"
        ) from None
    # One image through it now, so a model that cannot run here fails before training.
    try:
        with torch.inference_mode():
            logits = model.eval()(probe.to(device))
    except Exception as e:
        raise InputError(
            f"champion {label}: {weights} does not run on a {image_size}px image ({_reason(e)})"
        ) from None
    if not isinstance(logits, torch.Tensor) or tuple(logits.shape) != (1, len(classes)):
        shape = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise InputError(
            f"champion {label}: {weights} returns {shape} for one image, not "
            f"(1, {len(classes)}) logits"
        )
    return Champion(model, transform, metadata, label)


def evaluate_champion(
    path: Path,
    test: Images,
    runtime: Runtime,
    batch_size: int,
    dist: Distributed | None = None,
) -> ChampionResult:
    """Load the champion and score it on ``test`` with its own preprocessing, under the
    same runtime (device, precision) as the candidate. Under torchrun every rank loads it
    and scores its shard; the per-image results are gathered (``evaluate_images``), so the
    paired table's counts are those of the whole test set."""
    champion = load_champion(path, test.classes, runtime.device)
    evaluation = evaluate_images(
        champion.model, test, champion.transform, runtime, batch_size, dist
    )
    return ChampionResult(
        champion.model_version,
        champion.training_job_name,
        int(champion.metadata["image_size"]),
        champion.source,
        evaluation,
    )


@dataclass(frozen=True)
class Comparison:
    """The 2x2 table of paired results and its exact McNemar p-value."""

    candidate_only_correct: int  # b
    champion_only_correct: int  # c
    both_correct: int
    both_wrong: int
    mcnemar_p_value: float

    @classmethod
    def of(cls, candidate: torch.Tensor, champion: torch.Tensor) -> Comparison:
        """From two per-image correctness vectors over the same images, in the same order."""
        if candidate.shape != champion.shape:
            raise ValueError(
                f"unpaired results: {tuple(candidate.shape)} vs {tuple(champion.shape)}"
            )
        candidate, champion = candidate.bool(), champion.bool()
        b = int((candidate & ~champion).sum())
        c = int((~candidate & champion).sum())
        both = int((candidate & champion).sum())
        return cls(b, c, both, len(candidate) - b - c - both, exact_mcnemar_p_value(b, c))

    def record(self) -> dict[str, Any]:
        return {
            "candidate_only_correct": self.candidate_only_correct,
            "champion_only_correct": self.champion_only_correct,
            "both_correct": self.both_correct,
            "both_wrong": self.both_wrong,
            "mcnemar_p_value": self.mcnemar_p_value,
            "test": TEST_NAME,
        }


def comparison_metrics(champion: ChampionResult, comparison: Comparison) -> dict[str, float | int]:
    """The metric line after the test metrics (names: metric_definitions.COMPARISON_METRICS)."""
    return {
        CHAMPION_GATE_METRIC: champion.evaluation.accuracy,
        GATE_P_VALUE_METRIC: comparison.mcnemar_p_value,
        "candidate_only_correct": comparison.candidate_only_correct,
        "champion_only_correct": comparison.champion_only_correct,
    }


def evaluation_record(
    candidate: Evaluation, champion: ChampionResult | None, comparison: Comparison | None
) -> dict[str, Any]:
    """evaluation.json (docs/contracts.md): ``champion`` and ``comparison`` are null on a
    first run, which has no champion."""
    return {
        "test_images": len(candidate.correct),
        "candidate": {"test_acc": candidate.accuracy, "test_loss": candidate.loss},
        "champion": None
        if champion is None
        else {
            "test_acc": champion.evaluation.accuracy,
            "model_version": champion.model_version,
            "training_job_name": champion.training_job_name,
        },
        "comparison": None if comparison is None else comparison.record(),
    }
