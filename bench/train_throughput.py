"""Training throughput of the training library vs a baseline mirroring the original project.

Baseline (the original): every parameter handed to the optimizer, freezing only by
``requires_grad`` (the trunk still builds an autograd graph and updates its BatchNorm
statistics), and a DataLoader that decodes a PNG with PIL and runs ``ToTensor`` per sample.
Ours: decoded-once uint8 tensors, batched augmentation and preprocessing, the frozen trunk in
eval mode under ``torch.no_grad`` with its BatchNorms folded into the convs, only layer4 + head
in the optimizer, and mixed precision as the library's ``--amp auto`` picks it (bf16 autocast
on a CPU with native bf16, AMP on CUDA); the baseline stays fp32. Same model, input size, batch
size and step count, measured in the same run.

The machine may be shared and busy: both variants are built once, then timed in alternating
rounds (baseline, ours, baseline, ours, ...); each round gives a ratio and the median ratio is
reported, with the median images/s of each variant.

    python bench/train_throughput.py [--sizes 32:128 128:128] [--steps 3] [--rounds 5] [--amp auto]
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "training"))

from trainlib.config import AMP_MODES, DEFAULT_IMAGE_SIZE
from trainlib.data import ImageSet, iterate_batches
from trainlib.loop import Runtime, prepare_model
from trainlib.model import ResNet34Classifier
from trainlib.preprocess import augment_batch, build_eval_transform, preprocess_spec
from trainlib.synthetic import make_images

NUM_CLASSES = 10


class PngDataset(Dataset):
    """The original's input path: PNG bytes decoded with PIL, ToTensor per sample."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, image_size: int) -> None:
        self.pngs = []
        for image in images:
            buffer = io.BytesIO()
            Image.fromarray(image).save(buffer, format="PNG")
            self.pngs.append(buffer.getvalue())
        self.labels = labels
        spec = preprocess_spec(image_size)
        self.transform = transforms.Compose(
            [
                transforms.RandomCrop(32, padding=4),
                transforms.RandomHorizontalFlip(),
                transforms.Resize(spec["resize"]),
                transforms.ToTensor(),
                transforms.Normalize(spec["mean"], spec["std"]),
            ]
        )

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        with Image.open(io.BytesIO(self.pngs[i])) as im:
            return self.transform(im.convert("RGB")), int(self.labels[i])


Step = Callable[[torch.Tensor, torch.Tensor], None]


def time_steps(step_fn: Step, batches: Iterator, steps: int) -> float:
    """Images per second over ``steps`` steps."""
    seen, started = 0, time.perf_counter()
    for _ in range(steps):
        images, labels = next(batches)
        step_fn(images, labels)
        seen += len(labels)
    return seen / (time.perf_counter() - started)


def baseline(images, labels, image_size: int, batch_size: int, runtime: Runtime):
    """The original's step and input pipeline: (step function, endless batch iterator)."""
    model = ResNet34Classifier(NUM_CLASSES, freeze_backbone=False).to(runtime.device)
    model.trunk.requires_grad_(False)  # the original froze by requires_grad only
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    criterion = nn.CrossEntropyLoss(label_smoothing=0.1)
    loader = DataLoader(
        PngDataset(images, labels, image_size), batch_size=batch_size, shuffle=True, drop_last=True
    )
    model.train()

    def step(x, y):
        x, y = x.to(runtime.device), y.to(runtime.device)
        with runtime.autocast():
            loss = criterion(model(x).float(), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    return step, _repeat(lambda: loader)


def ours(images, labels, image_size: int, batch_size: int, runtime: Runtime):
    """The training library's step (prepare_model folds the trunk's BatchNorms)."""
    model = ResNet34Classifier(NUM_CLASSES)
    net = prepare_model(model, runtime)
    optimizer = torch.optim.SGD(
        model.trainable_parameters(), lr=0.01, momentum=0.9, nesterov=True, weight_decay=5e-4
    )
    criterion = nn.CrossEntropyLoss(label_smoothing=0.1)
    transform = build_eval_transform(preprocess_spec(image_size))
    data = ImageSet(
        torch.from_numpy(images).permute(0, 3, 1, 2).contiguous(), torch.from_numpy(labels), []
    )
    net.train()

    def step(x, y):
        x = transform(augment_batch(runtime.to_input(x)))
        y = y.to(runtime.device)
        with runtime.autocast():
            loss = criterion(net(x).float(), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    # Full batches only, as the baseline's drop_last=True.
    def full():
        return (
            b for b in iterate_batches(data, batch_size, shuffle=True) if len(b[1]) == batch_size
        )

    return step, _repeat(full)


def _repeat(make: Callable[[], Iterable]) -> Iterator:
    while True:
        yield from make()


def measure(image_size: int, batch_size: int, steps: int, rounds: int, runtime: Runtime) -> None:
    images, labels = make_images(NUM_CLASSES, batch_size * 2 // NUM_CLASSES + 1)
    fp32 = Runtime(runtime.device, None, runtime.channels_last)  # the original had no AMP
    variants = {
        "baseline": baseline(images, labels, image_size, batch_size, fp32),
        "ours": ours(images, labels, image_size, batch_size, runtime),
    }
    for step, batches in variants.values():  # warm-up: allocator, kernels, DataLoader
        step(*next(batches))
    rates: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(rounds):
        for name, (step, batches) in variants.items():
            rates[name].append(time_steps(step, batches, steps))
    ratios = [f / b for f, b in zip(rates["ours"], rates["baseline"], strict=True)]
    base, fast = statistics.median(rates["baseline"]), statistics.median(rates["ours"])
    print(f"{image_size}px, batch {batch_size}, {rounds} rounds x {steps} steps:")
    print(
        f"  baseline (fp32, all params, requires_grad freeze, PIL per sample): {base:8.1f} images/s"
    )
    print(
        f"  trainlib ({runtime.precision}, folded no-grad trunk, tensor batches): {fast:8.1f} images/s"
    )
    print(
        f"  speedup: median {statistics.median(ratios):.2f}x "
        f"(rounds: {', '.join(f'{r:.2f}' for r in ratios)})",
        flush=True,
    )


def _size(text: str) -> tuple[int, int]:
    size, _, batch = text.partition(":")
    return int(size), int(batch or 128)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--sizes",
        type=_size,
        nargs="+",
        # CIFAR's native size, and the training defaults (image_size and batch_size).
        default=[(32, 128), (DEFAULT_IMAGE_SIZE, 128)],
        metavar="SIZE:BATCH",
        help=f"input side and batch size pairs (default 32:128 {DEFAULT_IMAGE_SIZE}:128)",
    )
    parser.add_argument("--steps", type=int, default=3, help="timed steps per variant and round")
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds (median kept)")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument(
        "--amp",
        choices=AMP_MODES,
        default="auto",
        help="the library's --amp for ours (the baseline is always fp32)",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    runtime = Runtime.detect(args.amp)
    print(
        f"ResNet-34 training step, {runtime.device.type}, {args.threads} threads, "
        f"ours --amp {args.amp}: {runtime.precision}"
    )
    for image_size, batch_size in args.sizes:
        measure(image_size, batch_size, args.steps, args.rounds, runtime)


if __name__ == "__main__":
    main()
