"""Data-parallel scaling: one training process with N threads vs N processes under torchrun
(DistributedDataParallel, gloo on CPU, NCCL on GPUs) with one thread each, same global batch.

Both variants run training/hpo.py as a job would, on the same generated ImageFolder data, and
their throughput is the training split's images x epochs over the "trained ... in Xs" time the
script prints (data loading and start-up excluded). Rounds alternate (single, distributed,
single, ...) because the machine may be busy; the median ratio of the rounds is reported.
With CUDA, the distributed variant runs one process per GPU instead.

    .venv/bin/python bench/ddp_scaling.py [--processes 2] [--rounds 3] [--epochs 1]
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HPO = ROOT / "training" / "hpo.py"
TRAINED = re.compile(r"trained (\d+) epochs in ([0-9.]+)s")
TRAIN_IMAGES = re.compile(r"data: (\d+) train")


def write_data(root: Path, per_class: int, size: int) -> Path:
    sys.path.insert(0, str(ROOT))
    from local.sample_data import write_split

    write_split(root / "train", per_class, size, classes=10, seed=1)
    write_split(root / "test", max(2, per_class // 4), size, classes=10, seed=2)
    return root


def run(command: list[str], threads: int, timeout: float) -> float:
    """Images per second of one training run."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONUNBUFFERED": "1"}
    done = subprocess.run(
        command, cwd=ROOT / "training", env=env, capture_output=True, text=True, timeout=timeout
    )
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command[:4])} failed:\n{(done.stdout + done.stderr)[-3000:]}")
    trained, images = TRAINED.search(done.stdout), TRAIN_IMAGES.search(done.stdout)
    if trained is None or images is None:
        raise SystemExit(f"no 'data:'/'trained' line in the output:\n{done.stdout[-2000:]}")
    epochs, seconds = int(trained.group(1)), float(trained.group(2))
    return int(images.group(1)) * epochs / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", type=int, default=2, help="torchrun processes (CPU)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=64, help="the global batch")
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--per-class", type=int, default=80, help="training images per class")
    args = parser.parse_args()

    import torch

    gpus = torch.cuda.device_count()
    processes = gpus if gpus > 1 else args.processes
    if args.batch_size % processes:
        raise SystemExit(f"--batch-size {args.batch_size} must divide by {processes} processes")
    threads = (os.cpu_count() or 2) if gpus else processes  # single: all the threads
    with tempfile.TemporaryDirectory(prefix="ddp-scaling-") as scratch:
        data = write_data(Path(scratch), args.per_class, args.image_size)
        common = [
            *("--train", str(data / "train"), "--test", str(data / "test")),
            *("--epochs", str(args.epochs), "--image_size", str(args.image_size)),
            *("--pretrained", "false", "--learning_rate", "0.01", "--amp", "off"),
            # Outputs into the scratch dir: the default is ./output, inside training/.
            *("--model-dir", str(data / "model"), "--output-data-dir", str(data / "output")),
        ]
        single = [
            sys.executable,
            str(HPO),
            *common,
            *("--batch_size", str(args.batch_size), "--num_workers", str(threads)),
        ]
        distributed = [
            *(sys.executable, "-m", "torch.distributed.run", "--standalone"),
            *("--nnodes", "1", "--nproc_per_node", str(processes)),
            str(HPO),
            *common,
            *("--batch_size", str(args.batch_size // processes), "--num_workers", "1"),
        ]
        singles, ratios = [], []
        for _ in range(args.rounds):
            one = run(single, threads, timeout=1800)
            many = run(distributed, 1, timeout=1800)
            singles.append(one)
            ratios.append(many / one)
            print(
                f"round: 1 process x {threads} threads {one:8.1f} img/s, "
                f"{processes} processes x 1 thread {many:8.1f} img/s, {many / one:.2f}x"
            )
    where = f"{gpus} GPUs" if gpus > 1 else f"CPU, {os.cpu_count()} cores"
    print(
        f"ddp scaling ({where}, global batch {args.batch_size}, {args.image_size}px): "
        f"{processes} processes / 1 process = {statistics.median(ratios):.2f}x "
        f"(median of {args.rounds} rounds; single process {statistics.median(singles):.1f} img/s)"
    )


if __name__ == "__main__":
    main()
