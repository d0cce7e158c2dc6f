"""Endpoint worker start: model_fn on an artifact with shipped ONNX graphs against one without.

Each round runs model_fn once per variant in a fresh interpreter (a model-server worker is a
fresh process), interleaved, on the same random-weight ResNet-34 (100 classes, 128 px):

  before  model.pt alone (an older artifact): torch.jit.load, ONNX export at load, the
          agreement check against torch, warm-up
  fp32    the same model.pt plus model.onnx / model.int8.onnx as the final training job ships
          them (trainlib.serving_graphs.write_serving_graphs), INFERENCE_PRECISION=fp32: the
          ONNX Runtime session opened from model.onnx, warm-up; model.pt is not read
  int8    the same, INFERENCE_PRECISION=int8: model.int8.onnx

Prints the median model_fn seconds of each variant, the worker's resident memory after the
load (and its peak) over what the handler's imports left, and before/after ratios against the
3x target. The imports (torch, onnxruntime: the same for all three) are timed apart.

    python bench/worker_start.py [--rounds 5] [--threads 2] [--image-size 128]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
TARGET = 3.0  # before / after, model_fn seconds
VARIANTS = {"before": "auto", "fp32": "fp32", "int8": "int8"}  # -> INFERENCE_PRECISION


def memory_mb(field: str) -> float:
    """This process's VmRSS (resident now) or VmHWM (peak resident since exec), MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    return float("nan")  # not Linux


# --- child: one model_fn in a fresh interpreter ----------------------------------------------


def child(model_dir: str) -> None:
    started = time.perf_counter()
    sys.path.insert(0, str(ROOT))
    import onnxruntime  # noqa: F401  # imported by the handler anyway; timed with the imports

    from model_handler import inference

    imported = time.perf_counter()
    base_rss = memory_mb("VmRSS")
    model = inference.model_fn(model_dir)
    loaded = time.perf_counter()
    result = {
        "import_s": imported - started,
        "model_fn_s": loaded - imported,
        "rss_mb": memory_mb("VmRSS") - base_rss,
        "peak_mb": memory_mb("VmHWM") - base_rss,
        "served": f"{model.backend} {model.precision} ({model.source})",
    }
    print(json.dumps(result))


# --- parent ------------------------------------------------------------------------------------


def build_artifacts(root: Path, image_size: int, threads: int) -> dict[str, Path]:
    """before/: model.pt alone; after/: the same model.pt with the serving graphs."""
    import torch
    import torchvision

    sys.path.insert(0, str(ROOT))
    from bench.inference_latency import ship_serving_graphs, write_artifact

    torch.manual_seed(0)
    net = torchvision.models.resnet34(weights=None, num_classes=100).eval()
    before, after = root / "before", root / "after"
    before.mkdir()
    write_artifact(before, net, image_size)
    shutil.copytree(before, after)
    started = time.perf_counter()
    check = ship_serving_graphs(after, 100, threads)
    if check is None:
        raise SystemExit("error: no int8 graph was written (is onnxruntime installed?)")
    sizes = ", ".join(
        f"{p.name} {p.stat().st_size / 1e6:.1f} MB" for p in sorted(after.glob("model*"))
    )
    made = time.perf_counter() - started
    print(f"artifact: ResNet-34, {image_size} px; {sizes} (serving graphs made in {made:.1f} s)")
    return {"before": before, "fp32": after, "int8": after}


def run_child(model_dir: Path, precision: str, threads: int) -> dict[str, Any]:
    env = dict(os.environ, INFERENCE_NUM_THREADS=str(threads), INFERENCE_PRECISION=precision)
    env.pop("INFERENCE_BACKEND", None)
    env.pop("INFERENCE_DEVICE", None)
    done = subprocess.run(
        [sys.executable, __file__, "--child", str(model_dir)],
        capture_output=True,
        text=True,
        check=True,
        env=env,
        cwd=ROOT,
    )
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="fresh workers per variant")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--image-size", type=int, default=128)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        dirs = build_artifacts(Path(tmp), args.image_size, args.threads)
        results: dict[str, list[dict[str, Any]]] = {name: [] for name in VARIANTS}
        for _ in range(args.rounds):
            for name, precision in VARIANTS.items():  # interleaved: load hits all alike
                results[name].append(run_child(dirs[name], precision, args.threads))

    def median(name: str, key: str) -> float:
        return statistics.median(r[key] for r in results[name])

    print(f"{args.rounds} fresh workers per variant, {args.threads} threads, medians")
    print(
        f"{'variant':8}{'model_fn s':>12}{'RSS +MB':>10}{'peak +MB':>10}{'imports s':>11}  serves"
    )
    for name in VARIANTS:
        print(
            f"{name:8}{median(name, 'model_fn_s'):>12.3f}{median(name, 'rss_mb'):>10.0f}"
            f"{median(name, 'peak_mb'):>10.0f}{median(name, 'import_s'):>11.2f}  "
            f"{results[name][0]['served']}"
        )
    for name in ("fp32", "int8"):
        ratio = median("before", "model_fn_s") / median(name, "model_fn_s")
        verdict = "target met" if ratio >= TARGET else "target NOT met"
        print(f"model_fn before / {name}: {ratio:.2f}x (target >= {TARGET}x: {verdict})")


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        child(sys.argv[2])
    else:
        main()
