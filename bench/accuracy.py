"""Accuracy of the training recipe on real images: Fashion-MNIST through hpo.py, from scratch.

No CIFAR-100 or ImageNet weights can be fetched on the development machine, so this measures
the recipe on a real image data set that ships as a Debian package (``apt-get install
dataset-fashion-mnist``: 60,000 + 10,000 28x28 grayscale photos of clothing, 10 classes, as
IDX files). It

1. reads the IDX files (gzip or plain; magic numbers and sizes checked) with numpy,
2. writes them as ImageFolder channels (``train/`` and ``test/``, ``<class>/<n>.png``, grayscale
   copied to three channels, as the data loader expects RGB) with trainlib's own writer,
3. runs ``training/hpo.py`` on them as a subprocess (script-mode arguments, ``--pretrained
   false --freeze_backbone false``: the whole ResNet-34 trained from random weights), reading
   its metric lines with ``metric_definitions.parse_metrics`` and timing each line as it arrives,
4. prints the test accuracy (the full 10,000-image test set) against wall time and epochs,
   where the time went (start-up and image decoding, per-epoch training steps and validation
   pass, the test pass), the published references and a verdict against the target.

Target: test accuracy >= 92% within one hour (--time-budget-minutes) of training-job wall time
on the 2-core development machine. The run is stopped at the budget.

    .venv/bin/python bench/accuracy.py [--epochs N] [--limit-train N] [--json]
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "training"))

from metric_definitions import parse_metrics

TRAINING = Path(__file__).resolve().parents[1] / "training"

#: Where the Debian package ``dataset-fashion-mnist`` installs the IDX files (its
#: ``/usr/share/datasets/<name>`` convention; ``dpkg -L dataset-fashion-mnist`` lists them).
DEBIAN_PACKAGE = "dataset-fashion-mnist"
DEFAULT_DATA_DIR = Path("/usr/share/datasets") / "fashion-mnist"

#: The labels 0..9 as the data set's README documents them.
CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
SPLITS = {"train": "train", "test": "t10k"}  # channel -> IDX file prefix

#: IDX magic numbers: 0x0000 <type code> <number of dimensions>.
LABELS_MAGIC = 0x00000801  # 2049: unsigned bytes, 1 dimension
IMAGES_MAGIC = 0x00000803  # 2051: unsigned bytes, 3 dimensions
_IDX_TYPES = {0x08: "u1", 0x09: "i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}

TARGET_ACCURACY = 0.92
DEFAULT_BUDGET_MINUTES = 60.0
REFERENCE_SOURCE = "https://github.com/zalandoresearch/fashion-mnist#benchmark"
#: Rows of the benchmark table in the data set's README (submitted results, test accuracy).
REFERENCES: tuple[tuple[str, float], ...] = (
    ("ResNet18 (normalization, flips, random translation and rotation)", 0.949),
    ("2 Conv + pooling (TensorFlow's tutorial)", 0.916),
    ("MLP 256-128-100, no preprocessing", 0.8833),
    ("Human performance (crowd-sourced, 1000 test images)", 0.835),
)

_DATA_LINE = re.compile(r"^data: (\d+) train / (\d+) val / (\d+) test images")
_EPOCH = re.compile(r"\bepoch=(\d+)\b")  # on each line, but not one of the metric definitions
_TRAINED_LINE = re.compile(r"^trained \d+ epochs in [0-9.]+s on (\w+) \(([^)]*)\)")


class IdxError(ValueError):
    """An IDX file that is missing, truncated or not what it should be."""


def folder_name(label: str) -> str:
    """A label as a folder name: ``T-shirt/top`` -> ``T-shirt_top``, ``Ankle boot`` -> ``Ankle_boot``."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", label).strip("_")


# --- IDX -----------------------------------------------------------------------------------


def parse_idx(data: bytes, name: str = "IDX data", magic: int | None = None) -> np.ndarray:
    """An IDX file's bytes as an array in native byte order.

    ``magic``: the magic number it must have (LABELS_MAGIC, IMAGES_MAGIC). The header's
    dimensions must account for every byte after it: fewer is a truncated file, more is not
    IDX.
    """
    if len(data) < 4:
        raise IdxError(f"{name}: truncated ({len(data)} bytes, less than the 4-byte magic number)")
    found = int.from_bytes(data[:4], "big")
    type_code, ndim = data[2], data[3]
    if data[0] or data[1] or type_code not in _IDX_TYPES or ndim == 0:
        raise IdxError(f"{name}: not an IDX file (magic number {found:#010x})")
    if magic is not None and found != magic:
        raise IdxError(f"{name}: magic number {found} where {magic} was expected")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise IdxError(f"{name}: truncated ({len(data)} bytes, less than its {header}-byte header)")
    dims = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    dtype = np.dtype(_IDX_TYPES[type_code])
    count = math.prod(dims)
    expected, body = count * dtype.itemsize, len(data) - header
    shape = "x".join(map(str, dims))
    if body < expected:
        raise IdxError(
            f"{name}: truncated: its header declares {shape} values ({expected} bytes) "
            f"but {body} bytes follow it"
        )
    if body > expected:
        raise IdxError(
            f"{name}: {body - expected} bytes after the {shape} values its header declares"
        )
    array = np.frombuffer(data, dtype=dtype, count=count, offset=header).reshape(dims)
    return array.astype(dtype.newbyteorder("="), copy=True)


def read_idx(path: Path, magic: int | None = None) -> np.ndarray:
    """Read a plain or gzip-compressed IDX file (told apart by the gzip signature)."""
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise IdxError(f"{path}: cannot read ({e.strerror or type(e).__name__})") from None
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (EOFError, OSError, zlib.error) as e:
            raise IdxError(f"{path}: truncated or corrupt gzip stream ({e})") from None
    return parse_idx(raw, str(path), magic)


@dataclass(frozen=True)
class Split:
    images: np.ndarray  # uint8 [N, H, W]
    labels: np.ndarray  # int64 [N]


def find_idx(data_dir: Path, stem: str) -> Path:
    """``stem`` or ``stem.gz`` in ``data_dir``; a missing file names the Debian package."""
    for candidate in (data_dir / f"{stem}.gz", data_dir / stem):
        if candidate.is_file():
            return candidate
    raise IdxError(
        f"Fashion-MNIST file {stem}[.gz] not found in {data_dir}: install the Debian package "
        f"{DEBIAN_PACKAGE} (apt-get install {DEBIAN_PACKAGE}) or pass --data-dir"
    )


def load_split(data_dir: Path, prefix: str) -> Split:
    """``<prefix>-images-idx3-ubyte`` + ``<prefix>-labels-idx1-ubyte``, checked together."""
    images = read_idx(find_idx(data_dir, f"{prefix}-images-idx3-ubyte"), IMAGES_MAGIC)
    labels = read_idx(find_idx(data_dir, f"{prefix}-labels-idx1-ubyte"), LABELS_MAGIC)
    if len(images) != len(labels) or len(images) == 0:
        raise IdxError(
            f"{data_dir}: {prefix} has {len(images)} images and {len(labels)} labels "
            "(they must match and not be zero)"
        )
    if int(labels.max()) >= len(CLASSES):
        raise IdxError(f"{data_dir}: a {prefix} label is outside 0..{len(CLASSES) - 1}")
    return Split(images, labels.astype(np.int64))


def load_fashion_mnist(data_dir: Path) -> dict[str, Split]:
    return {channel: load_split(data_dir, prefix) for channel, prefix in SPLITS.items()}


def subset(split: Split, limit: int | None, seed: int) -> Split:
    """A seeded random ``limit`` images (all of them without a limit)."""
    if limit is None or limit >= len(split.labels):
        return split
    keep = np.sort(np.random.default_rng(seed).permutation(len(split.labels))[:limit])
    return Split(split.images[keep], split.labels[keep])


# --- channels ------------------------------------------------------------------------------


def write_channel(channel: Path, split: Split) -> Path:
    """``channel/<class folder>/<n>.png``, grayscale copied into RGB (trainlib's writer)."""
    from trainlib.layouts import write_image_folder

    rgb = np.repeat(split.images[..., None], 3, axis=-1)
    return write_image_folder(channel, rgb, split.labels, [folder_name(c) for c in CLASSES])


def prepare_channels(
    dest: Path,
    data: dict[str, Split],
    limit_train: int | None,
    seed: int,
    limit_test: int | None = None,
) -> tuple[dict[str, Path], bool]:
    """Write ``dest/train`` and ``dest/test`` unless a complete copy with the same content is
    there (a ``channels.json`` written last). Returns the channels and whether they were reused."""
    splits = {
        "train": subset(data["train"], limit_train, seed),
        "test": subset(data["test"], limit_test, seed),
    }
    stamp = {
        "format": "imagefolder-rgb-png",
        "images": {name: len(s.labels) for name, s in splits.items()},
        "limit_train": limit_train,
        "limit_test": limit_test,
        "seed": seed,
    }
    marker = dest / "channels.json"
    channels = {name: dest / name for name in splits}
    with contextlib.suppress(OSError, ValueError):
        if json.loads(marker.read_text()) == stamp:
            return channels, True
    marker.unlink(missing_ok=True)
    for name, split in splits.items():
        if channels[name].exists():
            shutil.rmtree(channels[name])
        write_channel(channels[name], split)
    marker.write_text(json.dumps(stamp))
    return channels, False


# --- the training run ----------------------------------------------------------------------


@dataclass
class Line:
    t: float  # seconds since the process started
    text: str
    metrics: dict[str, float]


@dataclass
class Epoch:
    epoch: int
    seconds: float  # from the end of the previous epoch (or of start-up) to this epoch's line
    train_seconds: float  # up to its last training step's line
    val_seconds: float  # the validation pass after it
    train_loss: float
    train_acc: float
    val_loss: float
    val_acc: float


@dataclass
class Result:
    command: list[str]
    returncode: int | None
    wall_seconds: float
    stopped_at_budget: bool
    startup_seconds: float | None = None  # imports, decoding the PNGs, building the model
    test_seconds: float | None = None
    train_images: int | None = None
    val_images: int | None = None
    test_images: int | None = None
    device: str | None = None
    precision: str | None = None
    test_acc: float | None = None
    test_loss: float | None = None
    epochs: list[Epoch] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def hpo_command(args: argparse.Namespace, channels: dict[str, Path], work: Path) -> list[str]:
    """hpo.py in script mode: SageMaker's ``--name value`` hyperparameters and the paths."""
    hyperparameters: dict[str, Any] = {
        "epochs": args.epochs,
        "learning_rate": args.learning_rate,
        "batch_size": args.batch_size,
        "image_size": args.image_size,
        "pretrained": "false",
        "freeze_backbone": "false",  # from scratch the trunk must learn too (explicit, whatever the default)
        "weight_decay": args.weight_decay,
        "label_smoothing": args.label_smoothing,
        "warmup_epochs": args.warmup_epochs,
        "dropout": args.dropout,
        "val_fraction": args.val_fraction,
        "seed": args.seed,
        "amp": args.amp,
        "num_workers": args.threads,
        "log_interval": 1,  # a line per step: splits each epoch into steps and validation
    }
    command = [sys.executable, str(args.training_dir / "hpo.py")]
    for name, value in hyperparameters.items():
        command += [f"--{name}", str(value)]
    return [
        *command,
        "--train",
        str(channels["train"]),
        "--test",
        str(channels["test"]),
        "--model-dir",
        str(work / "model"),
        "--output-data-dir",
        str(work / "output"),
    ]


def run_training(
    command: Sequence[str], budget_seconds: float, echo: bool
) -> tuple[list[Line], int, float, bool]:
    """Run ``command``, timestamp each output line; stop it at ``budget_seconds``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SM_")}
    env["PYTHONUNBUFFERED"] = "1"
    started = time.perf_counter()
    process = subprocess.Popen(
        list(command),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        bufsize=1,
        env=env,
    )
    stopped = threading.Event()

    def stop() -> None:
        stopped.set()
        process.terminate()

    timer = threading.Timer(budget_seconds, stop)
    timer.daemon = True
    timer.start()
    lines: list[Line] = []
    try:
        assert process.stdout is not None
        for text in process.stdout:
            text = text.rstrip("\n")
            line = Line(time.perf_counter() - started, text, parse_metrics(text))
            lines.append(line)
            if echo and "batch_loss" not in line.metrics:
                print(f"  [{line.t:7.1f}s] {text}", file=sys.stderr, flush=True)
        returncode = process.wait()
    finally:
        timer.cancel()
        if process.poll() is None:
            process.kill()
            process.wait()
    return lines, returncode, time.perf_counter() - started, stopped.is_set()


def summarise(
    command: list[str], lines: list[Line], returncode: int | None, wall: float, stopped: bool
) -> Result:
    """The figures from the timestamped metric lines."""
    result = Result(command, returncode, wall, stopped)
    mark: float | None = None  # end of start-up, then of each epoch
    last_step: dict[int, float] = {}
    for line in lines:
        if m := _DATA_LINE.match(line.text):
            result.startup_seconds = mark = line.t
            result.train_images, result.val_images, result.test_images = map(int, m.groups())
        elif m := _TRAINED_LINE.match(line.text):
            result.device, result.precision = m.group(1), m.group(2)
        elif line.text.startswith("error:"):
            result.errors.append(line.text)
        values = line.metrics
        epoch = _EPOCH.search(line.text)
        if "batch_loss" in values and epoch:
            last_step[int(epoch.group(1))] = line.t
        elif "val_acc" in values and epoch and mark is not None:
            number = int(epoch.group(1))
            step_end = last_step.get(number, line.t)
            result.epochs.append(
                Epoch(
                    number,
                    line.t - mark,
                    step_end - mark,
                    line.t - step_end,
                    values["train_loss"],
                    values["train_acc"],
                    values["val_loss"],
                    values["val_acc"],
                )
            )
            mark = line.t
        elif "test_acc" in values:
            result.test_acc, result.test_loss = values["test_acc"], values.get("test_loss")
            if mark is not None:
                result.test_seconds = line.t - mark
    if returncode not in (0, None) and not result.errors and not stopped:
        result.errors = [line.text for line in lines[-5:]]
    return result


# --- report --------------------------------------------------------------------------------


def projection(result: Result, budget_seconds: float, full_train: int) -> dict[str, Any] | None:
    """Epochs of the full training split that fit the budget, at this run's per-epoch pace."""
    if not result.epochs or not result.train_images:
        return None
    per_epoch = sum(e.seconds for e in result.epochs) / len(result.epochs)
    full_per_epoch = per_epoch * full_train / result.train_images
    fixed = (result.startup_seconds or 0.0) * full_train / max(result.train_images, 1)
    fixed += result.test_seconds or 0.0
    return {
        "seconds_per_epoch_measured": per_epoch,
        "seconds_per_epoch_full_train_split": full_per_epoch,
        "fixed_seconds_estimate": fixed,
        "full_epochs_within_budget": max(0, math.floor((budget_seconds - fixed) / full_per_epoch)),
    }


def verdict(result: Result, budget_seconds: float, full_run: bool) -> tuple[bool, str]:
    minutes = result.wall_seconds / 60
    if result.test_acc is None:
        why = (
            f"stopped at the {budget_seconds / 60:.0f}-minute budget"
            if result.stopped_at_budget
            else f"training failed (exit {result.returncode})"
        )
        if result.epochs:
            last = result.epochs[-1]
            why += f" after {last.epoch} epochs, val_acc {last.val_acc:.2%}"
        return False, f"NOT MET: no test accuracy ({why})"
    reached = result.test_acc >= TARGET_ACCURACY
    within = result.wall_seconds <= budget_seconds
    met = reached and within and full_run
    text = (
        f"{'MET' if met else 'NOT MET'}: test accuracy {result.test_acc:.2%} "
        f"({'>=' if reached else '<'} {TARGET_ACCURACY:.0%}) in {minutes:.1f} min "
        f"({'within' if within else 'over'} the {budget_seconds / 60:.0f}-minute budget)"
    )
    if not full_run:
        text += "; on a subset (--limit-train / --limit-test), so not a verdict on the recipe"
    return met, text


def report(
    args: argparse.Namespace,
    result: Result,
    prep_seconds: float,
    reused: bool,
    full_train: int,
) -> dict[str, Any]:
    budget = args.time_budget_minutes * 60
    full_run = args.limit_train is None and args.limit_test is None
    met, text = verdict(result, budget, full_run)
    return {
        "settings": {
            "epochs": args.epochs,
            "image_size": args.image_size,
            "batch_size": args.batch_size,
            "learning_rate": args.learning_rate,
            "weight_decay": args.weight_decay,
            "label_smoothing": args.label_smoothing,
            "warmup_epochs": args.warmup_epochs,
            "dropout": args.dropout,
            "val_fraction": args.val_fraction,
            "seed": args.seed,
            "amp": args.amp,
            "threads": args.threads,
            "limit_train": args.limit_train,
            "limit_test": args.limit_test,
            "time_budget_minutes": args.time_budget_minutes,
        },
        "machine": {"cpus": os.cpu_count(), "device": result.device, "precision": result.precision},
        "prepare_channels_seconds": prep_seconds,
        "channels_reused": reused,
        "result": asdict(result),
        "projection": projection(result, budget, full_train),
        "target": {"test_acc": TARGET_ACCURACY, "minutes": args.time_budget_minutes},
        "met": met,
        "verdict": text,
        "references": {"source": REFERENCE_SOURCE, "test_acc": dict(REFERENCES)},
    }


def print_report(summary: dict[str, Any]) -> None:
    r, s = summary["result"], summary["settings"]
    print(
        f"Fashion-MNIST through hpo.py from scratch: ResNet-34, {s['image_size']}px, batch "
        f"{s['batch_size']}, lr {s['learning_rate']}, {s['epochs']} epochs, "
        f"{r['device'] or '?'} ({r['precision'] or '?'}), {summary['machine']['cpus']} CPUs"
    )
    print(
        f"images: {r['train_images']} train / {r['val_images']} val / {r['test_images']} test"
        f"{' (--limit-train ' + str(s['limit_train']) + ')' if s['limit_train'] else ''}"
        f"{' (--limit-test ' + str(s['limit_test']) + ')' if s['limit_test'] else ''}"
    )
    reused = " (reused)" if summary["channels_reused"] else ""
    print(f"\nwriting the PNG channels: {summary['prepare_channels_seconds']:.1f}s{reused}")
    if r["startup_seconds"] is not None:
        print(f"start-up (imports, decoding the PNGs, model): {r['startup_seconds']:.1f}s")
    if r["epochs"]:
        print("\nepoch  seconds  steps_s  val_s  img/s  train_loss  train_acc  val_loss  val_acc")
        for e in r["epochs"]:
            rate = (r["train_images"] or 0) / e["train_seconds"] if e["train_seconds"] else 0.0
            print(
                f"{e['epoch']:5d}  {e['seconds']:7.1f}  {e['train_seconds']:7.1f}  "
                f"{e['val_seconds']:5.1f}  {rate:5.0f}  {e['train_loss']:10.4f}  "
                f"{e['train_acc']:9.4f}  {e['val_loss']:8.4f}  {e['val_acc']:7.4f}"
            )
    if r["test_seconds"] is not None:
        print(f"test pass ({r['test_images']} images): {r['test_seconds']:.1f}s")
    print(f"training job wall time: {r['wall_seconds']:.1f}s ({r['wall_seconds'] / 60:.1f} min)")
    if r["test_acc"] is not None:
        print(f"test accuracy: {r['test_acc']:.4f} (test loss {r['test_loss']:.4f})")
    for error in r["errors"]:
        print(f"  {error}")
    if p := summary["projection"]:
        print(
            f"\npace: {p['seconds_per_epoch_full_train_split']:.0f}s per epoch of the full "
            f"training split; about {p['full_epochs_within_budget']} such epochs fit "
            f"{s['time_budget_minutes']:.0f} min (accuracy at that length not measured by this run)"
        )
    print(f"\nreferences ({summary['references']['source']}):")
    for name, acc in summary["references"]["test_acc"].items():
        print(f"  {acc:.2%}  {name}")
    print(f"\n{summary['verdict']}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    add = parser.add_argument
    add("--epochs", type=int, default=24, help="passes over the training split")
    add(
        "--image-size",
        type=int,
        default=28,
        help="model input side (hpo.py accepts 16 and up; 28 is native, larger is upsampled)",
    )
    add("--batch-size", type=int, default=128)
    add("--learning-rate", type=float, default=0.1, help="peak SGD learning rate")
    add("--weight-decay", type=float, default=5e-4)
    add("--label-smoothing", type=float, default=0.1)
    add("--warmup-epochs", type=float, default=1.0)
    add("--dropout", type=float, default=0.2)
    add("--val-fraction", type=float, default=0.1, help="held out of the training split")
    add("--seed", type=int, default=42)
    add("--amp", choices=("auto", "on", "off"), default="auto", help="hpo.py's --amp")
    add(
        "--threads",
        type=int,
        default=0,
        help="torch CPU threads (0: torch's default, every core); on the 2-core development "
        "machine 2 threads trained 1.8x as fast as 1 when it was idle, but half as fast "
        "while other jobs shared its cores",
    )
    add(
        "--limit-train",
        type=int,
        default=None,
        metavar="N",
        help="train on a seeded random N of the 60,000 training images (a quick run)",
    )
    add(
        "--limit-test",
        type=int,
        default=None,
        metavar="N",
        help="test on a seeded random N of the 10,000 test images (tuning only: no verdict)",
    )
    add(
        "--time-budget-minutes",
        type=float,
        default=DEFAULT_BUDGET_MINUTES,
        help="the target's time limit; the training job is stopped when it runs past it",
    )
    add(
        "--data-dir",
        type=Path,
        default=DEFAULT_DATA_DIR,
        help=f"the IDX files (the {DEBIAN_PACKAGE} Debian package's location by default)",
    )
    add(
        "--channels-dir",
        type=Path,
        default=None,
        help="write (and reuse) the PNG channels here; default: a temporary folder",
    )
    add(
        "--training-dir",
        type=Path,
        default=TRAINING,
        help="the training source dir whose hpo.py runs (this checkout's by default)",
    )
    add("--json", action="store_true", help="print one JSON object instead of the report")
    add("--quiet", action="store_true", help="no progress lines on stderr")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    for name in ("limit_train", "limit_test"):
        if getattr(args, name) is not None and getattr(args, name) < 20:
            print(f"error: --{name.replace('_', '-')} must be at least 20", file=sys.stderr)
            return 2
    if not (args.training_dir / "hpo.py").is_file():
        print(f"error: no hpo.py in --training-dir {args.training_dir}", file=sys.stderr)
        return 2
    try:
        data = load_fashion_mnist(args.data_dir)
    except IdxError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    full_train = round(len(data["train"].labels) * (1 - args.val_fraction))
    with tempfile.TemporaryDirectory(prefix="fashion-mnist-") as tmp:
        work = Path(tmp)
        channels_dir = args.channels_dir or work / "channels"
        channels_dir.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        channels, reused = prepare_channels(
            channels_dir, data, args.limit_train, args.seed, args.limit_test
        )
        prep_seconds = time.perf_counter() - started
        command = hpo_command(args, channels, work)
        lines, returncode, wall, stopped = run_training(
            command, args.time_budget_minutes * 60, echo=not args.quiet
        )
        result = summarise(command, lines, returncode, wall, stopped)
    summary = report(args, result, prep_seconds, reused, full_train)
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print_report(summary)
    return 0 if result.test_acc is not None else 1


if __name__ == "__main__":
    sys.exit(main())
