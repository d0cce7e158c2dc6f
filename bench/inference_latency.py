"""Endpoint handler latency: model_handler.inference in fp32 and int8 against a naive handler.

The naive handler mirrors the original project's inference script: an eager nn.Module, the
transforms rebuilt on every call, ``model.eval()`` per call, autograd left on, one image per
call. The handler serves the artifact the final training job ships: model.pt plus model.onnx
and model.int8.onnx, written by training's own ``trainlib.serving_graphs.write_serving_graphs``
(int8 calibrated on generated CIFAR-size images preprocessed as the handler preprocesses them),
once with INFERENCE_PRECISION=fp32 and once with int8. All three run the same ResNet-34 (100
classes, random weights, BatchNorm statistics from generated images) on the same thread count,
interleaved.

Prints, per model input size: int8 against fp32 on 300 other generated images (logit error,
top-1 agreement, accuracy drop: with random weights the accuracy means nothing, the agreement
and the logit error do); then per request image p50/p99 at batch 1 and images/s at batch 32
(handler: one "instances" request; naive: 32 single requests, its only form), the ratios to
naive and of int8 over fp32, and the share of the handler's batch-1 time spent outside the
network (decode + preprocess + postprocess). Last, int8's batch-1 speed-up over fp32 at 128x128
against its 1.8x target.

    python bench/inference_latency.py [--image-sizes 32 128] [--threads 2] [--requests 60]
        [--batches 3] [--backend auto|torch|onnxruntime] [--no-int8] [--check-images 300]
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import os
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import numpy.typing as npt
import skimage.data
import torch
import torchvision
from PIL import Image
from torchvision import transforms

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "training"))
from model_handler import inference  # noqa: E402
from trainlib.config import INT8_MAX_ACCURACY_DROP, INT8_MIN_AGREEMENT  # noqa: E402
from trainlib.serving_graphs import (  # noqa: E402
    INT8_FILE,
    Int8Check,
    open_session,
    run_session,
    write_serving_graphs,
)
from trainlib.synthetic import make_images  # noqa: E402

MEAN = [0.5071, 0.4865, 0.4409]
STD = [0.2673, 0.2564, 0.2762]
INT8_TARGET = 1.8  # int8 over fp32, batch-1 p50, 128x128 model input
TARGET_SIZE = 128


def write_artifact(model_dir: Path, net: torch.nn.Module, image_size: int) -> None:
    """model.pt / classes.json / metadata.json in the contract's format."""
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore", FutureWarning)
        traced = torch.jit.trace(net.eval(), torch.randn(1, 3, image_size, image_size))
        torch.jit.save(traced, str(model_dir / "model.pt"))
    (model_dir / "classes.json").write_text(json.dumps([f"class_{i}" for i in range(100)]))
    metadata = {
        "format_version": 1,
        "architecture": "resnet34",
        "weights_file": "model.pt",
        "weights_format": "torchscript",
        "num_classes": 100,
        "image_size": image_size,
        "preprocess": {
            "resize": [image_size, image_size],
            "interpolation": "bilinear",
            "mean": MEAN,
            "std": STD,
        },
        "model_version": "bench",
        "training_job_name": "bench",
    }
    (model_dir / "metadata.json").write_text(json.dumps(metadata))


@dataclass(frozen=True)
class Int8Figures:
    check: Int8Check  # int8 against fp32 on the generated images
    classes: int  # how many classes fp32 answers on them: 1 makes agreement trivial
    logit_error: float  # |int8 - fp32| over the spread of fp32's logits (Frobenius norms)


def random_resnet34(image_size: int) -> torch.nn.Module:
    """ResNet-34 (100 classes), random weights, its BatchNorm statistics taken from 64 generated
    images at ``image_size``: with the default statistics (0 and 1) the random network answers
    one or two classes whatever the image, which would make int8's agreement trivial. The speed
    is the same either way."""
    torch.manual_seed(0)
    net = torchvision.models.resnet34(weights=None, num_classes=100)
    pixels, _ = make_images(10, 7, size=32, seed=3)
    images = torch.from_numpy(pixels[:64]).permute(0, 3, 1, 2).float() / 255
    images = torch.nn.functional.interpolate(images, size=(image_size, image_size), mode="bilinear")
    images = (images - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)
    for module in net.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.reset_running_stats()
            module.momentum = None  # a plain average over the batch seen
    with torch.no_grad():
        net.train()(images)
    return net.eval()


def ship_serving_graphs(
    model_dir: Path, check_images: int, threads: int, mode: str = "int8"
) -> Int8Figures | None:
    """model.onnx + model.int8.onnx beside model.pt, as the final job writes them (the guard
    opened so that int8 always ships here); returns the int8 check's figures."""
    metadata = json.loads((model_dir / "metadata.json").read_text())
    preprocess = inference.Preprocess.from_metadata(metadata["preprocess"])

    def served_input(images: Sequence[Image.Image]) -> npt.NDArray[np.float32]:
        return np.concatenate(
            [preprocess.batch(images[i : i + 32]) for i in range(0, len(images), 32)]
        )

    # Calibrated on generated images like the checked ones, as training calibrates on its
    # validation split: the 512 px photos' wider activation ranges would cost the generated
    # images about twice the logit error.
    generated, _ = make_images(10, 13, size=32, seed=1)
    calibration = served_input([Image.fromarray(g) for g in generated])
    pixels, labels = make_images(10, max(1, check_images // 10), size=32, seed=2)
    check = served_input([Image.fromarray(p) for p in pixels])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        traced = torch.jit.load(str(model_dir / "model.pt")).eval()
    graphs = write_serving_graphs(
        model_dir,
        traced,
        metadata["image_size"],
        mode=mode,
        check_batches=lambda: [
            (check[i : i + 32], labels[i : i + 32]) for i in range(0, len(check), 32)
        ],
        calibration_batches=lambda: [
            calibration[i : i + 32] for i in range(0, len(calibration), 32)
        ],
        calibration_images=len(calibration),
        min_agreement=0.0,
        max_accuracy_drop=1.0,
        threads=threads,
    )
    metadata.update(graphs.metadata)
    (model_dir / "metadata.json").write_text(json.dumps(metadata))
    record = graphs.int8
    if record is None or not record.get("images"):
        return None
    int8 = open_session(model_dir / INT8_FILE, threads)
    with torch.inference_mode():
        fp32_logits = np.concatenate(
            [traced(torch.from_numpy(check[i : i + 32])).numpy() for i in range(0, len(check), 32)]
        )
    int8_logits = np.concatenate(
        [run_session(int8, check[i : i + 32]) for i in range(0, len(check), 32)]
    )
    spread = fp32_logits - fp32_logits.mean(axis=1, keepdims=True)
    return Int8Figures(
        Int8Check(
            record["images"], record["agreement"], record["fp32_accuracy"], record["int8_accuracy"]
        ),
        len(set(fp32_logits.argmax(axis=1).tolist())),
        float(np.linalg.norm(int8_logits - fp32_logits) / np.linalg.norm(spread)),
    )


def load(model_dir: Path, precision: str) -> inference.LoadedModel:
    os.environ["INFERENCE_PRECISION"] = precision
    try:
        return inference.model_fn(str(model_dir))
    finally:
        del os.environ["INFERENCE_PRECISION"]


class NaiveHandler:
    """The original project's style of handler, kept as the baseline."""

    def __init__(self, net: torch.nn.Module, image_size: int) -> None:
        self.net = net
        self.image_size = image_size

    def __call__(self, body: str) -> str:
        image = Image.open(io.BytesIO(base64.b64decode(json.loads(body)["image"]))).convert("RGB")
        transform = transforms.Compose(
            [
                transforms.Resize((self.image_size, self.image_size)),
                transforms.ToTensor(),
                transforms.Normalize(MEAN, STD),
            ]
        )
        self.net.eval()
        logits = self.net(transform(image).unsqueeze(0))
        probabilities, indices = torch.softmax(logits, dim=1).topk(5)
        return json.dumps({"indices": indices.tolist(), "probabilities": probabilities.tolist()})


def _repeat(call: Callable[[str], object], body: str, times: int) -> list[object]:
    return [call(body) for _ in range(times)]


def interleaved_timings(
    calls: Sequence[Callable[[], object]], repeats: int, warmup: int = 3, block: int = 10
) -> list[list[float]]:
    """Alternate blocks of calls so a noisy, shared CPU slows every variant alike.

    Blocks, not single calls: right after one variant, its thread pool is still spinning (torch's
    OpenMP) or asleep (ONNX Runtime), which taxes whichever call comes next. An endpoint serves
    its own requests back to back, so each block's first call (the one that pays for the switch)
    is run untimed, for every variant alike.
    """
    for _ in range(warmup):
        for call in calls:
            call()
    samples: list[list[float]] = [[] for _ in calls]
    for _ in range(max(1, -(-repeats // block))):
        for call, out in zip(calls, samples, strict=True):
            call()
            for _ in range(min(block, repeats)):
                start = time.perf_counter()
                call()
                out.append(time.perf_counter() - start)
    return samples


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def ours_single(model: inference.LoadedModel, body: str) -> str:
    data = inference.input_fn(body, "application/json")
    return inference.output_fn(inference.predict_fn(data, model), "application/json")


def stage_shares(model: inference.LoadedModel, body: str, repeats: int) -> dict[str, float]:
    """Median time of each stage of one batch-1 request, run the way predict_fn runs them."""
    # "parse": input_fn (JSON, base64, image header); "decode+pre": pixels decoded at the model's
    # size, resized and normalised (predict_fn's first step); "post": softmax, top-k, JSON.
    stages: dict[str, list[float]] = {"parse": [], "decode+pre": [], "network": [], "post": []}
    for _ in range(repeats):
        t0 = time.perf_counter()
        data = inference.input_fn(body, "application/json")
        t1 = time.perf_counter()
        batch = model.preprocess.batch(data.images)
        t2 = time.perf_counter()
        logits = model.logits(batch)
        t3 = time.perf_counter()
        probabilities, indices = torch.softmax(logits, dim=1).topk(5, dim=1)
        prediction = inference.Prediction(
            [list(zip(indices[0].tolist(), probabilities[0].tolist(), strict=True))],
            model.classes,
            model.identity,
            False,
        )
        inference.output_fn(prediction, "application/json")
        t4 = time.perf_counter()
        for name, value in zip(stages, (t1 - t0, t2 - t1, t3 - t2, t4 - t3), strict=True):
            stages[name].append(value)
    return {name: statistics.median(values) for name, values in stages.items()}


def photo_inputs() -> dict[str, bytes]:
    chelsea = Image.fromarray(skimage.data.chelsea())
    astronaut = Image.fromarray(skimage.data.astronaut())
    encoded = {}
    for name, image, fmt in [
        ("cifar 32x32 png", chelsea.resize((32, 32), Image.Resampling.BILINEAR), "PNG"),
        ("photo 512x512 jpeg", astronaut, "JPEG"),
        ("photo 512x512 png", astronaut, "PNG"),
    ]:
        buffer = io.BytesIO()
        image.save(buffer, fmt)
        encoded[name] = buffer.getvalue()
    return encoded


def _share_note(model: inference.LoadedModel, body: str, repeats: int) -> str:
    shares = stage_shares(model, body, repeats)
    total = sum(shares.values())
    outside = (total - shares["network"]) / total
    return (
        f"decode+pre+post {outside:.0%} of batch-1 time (parse {shares['parse'] * 1e3:.2f} "
        f"decode+pre {shares['decode+pre'] * 1e3:.2f} net {shares['network'] * 1e3:.2f} "
        f"post {shares['post'] * 1e3:.2f} ms)"
    )


def _ratio_line(
    label: str, slow: tuple[list[float], float], fast: tuple[list[float], float]
) -> str:
    (slow_b1, slow_b32), (fast_b1, fast_b32) = slow, fast
    return (
        f"{'':<20}{label:>11}{percentile(slow_b1, 0.5) / percentile(fast_b1, 0.5):>8.2f}x"
        f"{percentile(slow_b1, 0.99) / percentile(fast_b1, 0.99):>8.2f}x"
        f"{fast_b32 / slow_b32:>10.2f}x"
    )


def bench_size(
    image_size: int, requests: int, batches: int, int8: bool, check_images: int, threads: int
) -> dict[str, float]:
    """The tables of one model input size; returns int8's batch-1 p50 speed-up per image."""
    net = random_resnet34(image_size)
    photos = photo_inputs()
    with tempfile.TemporaryDirectory() as tmp:
        write_artifact(Path(tmp), net, image_size)
        torch_only = os.environ.get("INFERENCE_BACKEND") == "torch"
        mode = "none" if torch_only else "int8" if int8 else "fp32"
        figures = ship_serving_graphs(Path(tmp), check_images, threads, mode)
        handlers = {"fp32": load(Path(tmp), "fp32")}
        if int8 and handlers["fp32"].backend == "onnxruntime":
            handlers["int8"] = load(Path(tmp), "int8")
    naive = NaiveHandler(net, image_size)
    served = ", ".join(
        f"{name}: {m.backend} {m.precision} ({m.source})" for name, m in handlers.items()
    )
    print(f"\n== ResNet-34, model input {image_size}x{image_size}, {threads} threads; {served}")
    if figures is not None:
        check = figures.check
        ships = check.refusal(INT8_MIN_AGREEMENT, INT8_MAX_ACCURACY_DROP) is None
        print(
            f"int8 vs fp32 on {check.images} generated images (random weights; fp32 answers "
            f"{figures.classes} classes): logit error {figures.logit_error:.1%} of fp32's spread, "
            f"top-1 agreement {check.agreement:.2%}, accuracy "
            f"{check.fp32_accuracy:.4f} -> {check.int8_accuracy:.4f} (drop "
            f"{check.accuracy_drop * 100:.2f} points); training's guard (agreement >= "
            f"{INT8_MIN_AGREEMENT:.0%}, drop <= {INT8_MAX_ACCURACY_DROP * 100:.1f} points) would "
            + ("ship it" if ships else "refuse it")
        )
    print(f"{'request image':<20}{'':>11}{'p50 ms':>9}{'p99 ms':>9}{'img/s b32':>11}")
    speedups: dict[str, float] = {}
    for name, image in photos.items():
        body = json.dumps({"image": base64.b64encode(image).decode("utf-8")})
        batch_body = json.dumps({"instances": [{"image": base64.b64encode(image).decode()}] * 32})
        variants = {"naive": partial(naive, body)} | {
            label: partial(ours_single, model, body) for label, model in handlers.items()
        }
        batched = {"naive": partial(_repeat, naive, body, 32)} | {
            label: partial(ours_single, model, batch_body) for label, model in handlers.items()
        }
        single = dict(
            zip(variants, interleaved_timings(list(variants.values()), requests), strict=True)
        )
        rounds = interleaved_timings(list(batched.values()), batches, warmup=1)
        results = {
            label: (single[label], 32 / statistics.median(samples))
            for label, samples in zip(batched, rounds, strict=True)
        }
        for label, (samples, throughput) in results.items():
            p50, p99 = percentile(samples, 0.5) * 1e3, percentile(samples, 0.99) * 1e3
            print(f"{name:<20}{label:>11}{p50:>9.2f}{p99:>9.2f}{throughput:>11.1f}")
        for label, model in handlers.items():
            share = _share_note(model, body, requests)
            print(f"{_ratio_line(f'{label}/naive', results['naive'], results[label])}   {share}")
        if "int8" in results:
            print(_ratio_line("int8/fp32", results["fp32"], results["int8"]))
            speedups[name] = percentile(results["fp32"][0], 0.5) / percentile(
                results["int8"][0], 0.5
            )
    return speedups


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image-sizes", type=int, nargs="+", default=[32, 128])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--requests", type=int, default=60, help="batch-1 requests per case")
    parser.add_argument("--batches", type=int, default=3, help="batch-32 rounds per case")
    parser.add_argument("--backend", default="auto", choices=["auto", "torch", "onnxruntime"])
    parser.add_argument(
        "--int8", action=argparse.BooleanOptionalAction, default=True, help="the int8 handler too"
    )
    parser.add_argument(
        "--check-images", type=int, default=300, help="generated images for int8's agreement"
    )
    args = parser.parse_args()
    # Every handler shares one thread setting; model_fn reads it from the environment.
    os.environ["INFERENCE_NUM_THREADS"] = str(args.threads)
    os.environ["INFERENCE_BACKEND"] = args.backend
    torch.set_num_threads(args.threads)
    speedups = {
        size: bench_size(
            size, args.requests, args.batches, args.int8, args.check_images, args.threads
        )
        for size in args.image_sizes
    }
    at_target = speedups.get(TARGET_SIZE)
    if not at_target:
        print(
            f"\nint8 at {TARGET_SIZE}x{TARGET_SIZE} not measured: its {INT8_TARGET}x target unchecked"
        )
        return
    print(f"\nint8 over fp32, batch-1 p50, {TARGET_SIZE}x{TARGET_SIZE} (target {INT8_TARGET}x):")
    for name, ratio in at_target.items():
        verdict = "target met" if ratio >= INT8_TARGET else "target NOT met"
        print(f"  {name:<20}{ratio:>6.2f}x  {verdict}")


if __name__ == "__main__":
    main()
