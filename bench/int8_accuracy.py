"""int8 against fp32 on trained models: top-1 agreement and accuracy drop, in one run.

For each data set, ``training/train_model.py`` trains a ResNet-34 from scratch as a final job
does and writes the artifact with its serving graphs (trainlib/serving_graphs.py: the guard
measures int8 against fp32 on the validation split). This script then reads that record from
metadata.json and measures both shipped graphs again on the test split, which neither the
calibration nor the guard saw:

- generated: trainlib.synthetic's colour-and-stripe classes (6 classes, 32 px);
- real photos: a seeded subset of Fashion-MNIST (the Debian package ``dataset-fashion-mnist``,
  read by bench/accuracy.py's IDX reader; skipped with a note when it is not installed).

Targets (the guard's defaults): agreement >= 99%, accuracy drop <= 0.5 points. A random-weight
network agrees trivially (it answers one class), so only trained networks are measured.

    python bench/int8_accuracy.py [--epochs 2] [--limit-train 4000] [--limit-test 2000] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
TRAINING = ROOT / "training"
sys.path.insert(0, str(TRAINING))
sys.path.insert(0, str(ROOT / "bench"))

MIN_AGREEMENT = 0.99
MAX_DROP = 0.005


def run_final_job(train: Path, test: Path, work: Path, args: argparse.Namespace) -> dict[str, Any]:
    """train_model.py in script mode; returns its metadata.json."""
    model_dir = work / "model"
    command = [
        sys.executable,
        str(TRAINING / "train_model.py"),
        "--pretrained", "false",
        "--freeze_backbone", "false",
        "--epochs", str(args.epochs),
        "--image_size", "32",
        "--batch_size", "64",
        "--learning_rate", "0.05",
        "--num_workers", str(args.threads),
        "--log_interval", "1000",
        "--train", str(train),
        "--test", str(test),
        "--model-dir", str(model_dir),
        "--output-data-dir", str(work / "output"),
        "--checkpoint-dir", "",
    ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SM_", "SMDEBUG"))}
    env["PYTHONWARNINGS"] = "ignore"
    done = subprocess.run(command, cwd=TRAINING, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"train_model.py failed:\n{done.stderr[-2000:]}")
    for line in done.stdout.splitlines():
        if line.startswith(("test_loss=", "serving graphs:", "trained ")):
            print(f"    {line}")
    metadata: dict[str, Any] = json.loads((model_dir / "metadata.json").read_text())
    metadata["_model_dir"] = str(model_dir)
    return metadata


def on_test_split(metadata: dict[str, Any], test: Path, threads: int) -> dict[str, float] | None:
    """Both shipped graphs on every test image, with the serving preprocessing."""
    from trainlib.data import load_channel
    from trainlib.preprocess import build_eval_transform
    from trainlib.serving_graphs import compare_int8, open_session, preprocessed_batches

    files = metadata.get("serving_graphs", {})
    if "int8" not in files:
        return None
    model_dir = Path(metadata["_model_dir"])
    data = load_channel(test, "test", metadata["image_size"], loading="memory")
    transform = build_eval_transform(metadata["preprocess"])
    check = compare_int8(
        open_session(model_dir / files["fp32"], threads),
        open_session(model_dir / files["int8"], threads),
        preprocessed_batches(data, transform, 64),
    )
    return {
        "images": check.images,
        "agreement": check.agreement,
        "fp32_accuracy": check.fp32_accuracy,
        "int8_accuracy": check.int8_accuracy,
        "accuracy_drop": check.accuracy_drop,
    }


def describe(name: str, figures: dict[str, Any]) -> str:
    ok = figures["agreement"] >= MIN_AGREEMENT and figures["accuracy_drop"] <= MAX_DROP
    return (
        f"  {name:<11} {figures['images']:>5} images: agreement {figures['agreement']:.2%}, "
        f"accuracy {figures['fp32_accuracy']:.4f} (fp32) -> {figures['int8_accuracy']:.4f} "
        f"(int8), drop {figures['accuracy_drop'] * 100:+.2f} points  "
        f"[{'within' if ok else 'OUTSIDE'} the guard]"
    )


def measure(label: str, train: Path, test: Path, work: Path, args: argparse.Namespace) -> None:
    print(f"{label}:")
    started = time.perf_counter()
    metadata = run_final_job(train, test, work, args)
    record = metadata.get("int8")
    if record is None or not record.get("images"):
        print(f"  no int8 figures: {metadata.get('serving_graphs')!r}, {record!r}")
        return
    print(describe("validation", record) + f" (guard: {record['reason']})")
    tested = on_test_split(metadata, test, args.threads)
    if tested is None:
        print("  test split: not measured (the int8 graph was not shipped)")
    else:
        print(describe("test", tested))
    print(f"  ({time.perf_counter() - started:.0f}s)")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--limit-train", type=int, default=4000, help="Fashion-MNIST images")
    parser.add_argument("--limit-test", type=int, default=2000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    import accuracy  # bench/accuracy.py: the Fashion-MNIST IDX reader and channel writer

    from trainlib.synthetic import write_dataset

    print(
        f"int8 vs fp32 serving graphs of ResNet-34 trained from scratch, {args.epochs} epochs at "
        f"32 px; guard: agreement >= {MIN_AGREEMENT:.0%}, drop <= {MAX_DROP * 100:.1f} points"
    )
    with tempfile.TemporaryDirectory(prefix="int8-bench-") as tmp:
        work = Path(tmp)
        train, test = write_dataset(
            work / "generated", "imagefolder", num_classes=6, train_per_class=200,
            test_per_class=100, seed=args.seed,
        )  # fmt: skip
        measure("generated (6 classes)", train, test, work / "generated-run", args)
        try:
            data = accuracy.load_fashion_mnist(accuracy.DEFAULT_DATA_DIR)
        except accuracy.IdxError as e:
            print(f"real photos: skipped ({e})")
            return 0
        channels, _ = accuracy.prepare_channels(
            work / "fashion", data, args.limit_train, args.seed, args.limit_test
        )
        measure(
            f"Fashion-MNIST ({args.limit_train} train / {args.limit_test} test photos)",
            channels["train"],
            channels["test"],
            work / "fashion-run",
            args,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
