"""Training and evaluation: device set-up, schedule, one epoch, evaluate."""

from __future__ import annotations

import math
import platform
import sys
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass

import torch
from torch import nn

from trainlib.config import AMP_MODES
from trainlib.data import ImageSet, iterate_batches
from trainlib.instrumentation import Sinks
from trainlib.model import ResNet34Classifier
from trainlib.preprocess import augment_batch


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bf16 in hardware (AVX512-BF16 or AMX on x86, BF16 on Arm).

    oneDNN also runs bf16 on plain AVX-512 by emulation, which is slower than fp32, so on x86
    torch's generic mkldnn check is not enough. Any failure of the probes means no.
    """
    try:
        if platform.machine().lower() in {"x86_64", "amd64", "i386", "i686"}:
            return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


@dataclass
class Runtime:
    """Where and how tensors run: device, AMP dtype, memory format."""

    device: torch.device
    amp_dtype: torch.dtype | None
    channels_last: bool

    @classmethod
    def detect(cls, amp: str = "auto") -> Runtime:
        """``amp``: auto (CUDA, or a CPU with native bf16), on (any device), off (fp32)."""
        if amp not in AMP_MODES:
            raise ValueError(f"amp must be one of {AMP_MODES}, got {amp!r}")
        if torch.cuda.is_available():
            dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
            return cls(torch.device("cuda"), None if amp == "off" else dtype, True)
        use_bf16 = amp == "on" or (amp == "auto" and cpu_has_native_bf16())
        return cls(torch.device("cpu"), torch.bfloat16 if use_bf16 else None, False)

    @property
    def precision(self) -> str:
        """For logs: what the forward pass computes in."""
        return "fp32" if self.amp_dtype is None else f"{str(self.amp_dtype)[6:]} autocast"

    def autocast(self):
        if self.amp_dtype is None:
            return nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def to_input(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 batch onto the device (the float conversion happens there)."""
        images = images.to(self.device, non_blocking=True)
        return (
            images.contiguous(memory_format=torch.channels_last) if self.channels_last else images
        )


def prepare_model(model: nn.Module, runtime: Runtime, num_gpus: int) -> nn.Module:
    """Fold the frozen trunk's BatchNorms, move to the device, DataParallel on several GPUs."""
    if isinstance(model, ResNet34Classifier):
        model.fuse_frozen_trunk()
    model = model.to(runtime.device)
    if runtime.channels_last:
        model = model.to(memory_format=torch.channels_last)
    if runtime.device.type == "cuda" and num_gpus > 1 and torch.cuda.device_count() > 1:
        model = nn.DataParallel(
            model, device_ids=list(range(min(num_gpus, torch.cuda.device_count())))
        )
    return model


def warmup_cosine(total_steps: int, warmup_steps: int) -> Callable[[int], float]:
    """LR multiplier: linear warm-up to 1, then cosine decay to 0 at ``total_steps``."""

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return factor


def _progress(iterable, total: int, desc: str):
    """A progress bar in a terminal; plain iteration (plain log lines) anywhere else."""
    if not sys.stderr.isatty():
        return iterable
    from tqdm import tqdm

    return tqdm(iterable, total=total, desc=desc, leave=False, file=sys.stderr)


@dataclass
class TrainState:
    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler
    criterion: nn.Module
    transform: Callable[[torch.Tensor], torch.Tensor]
    runtime: Runtime
    global_step: int = 0


def train_one_epoch(
    state: TrainState,
    data: ImageSet,
    batch_size: int,
    epoch: int,
    sinks: Sinks,
    generator: torch.Generator,
) -> tuple[float, float]:
    """One pass with augmentation; returns mean training loss and accuracy."""
    state.model.train()
    total_loss, correct, seen = 0.0, 0, 0
    n_batches = max(1, len(data) // batch_size + (len(data) % batch_size > 1))
    batches = iterate_batches(data, batch_size, shuffle=True, generator=generator)
    for images, labels in _progress(batches, n_batches, f"epoch {epoch}"):
        images = state.transform(augment_batch(state.runtime.to_input(images), generator=None))
        labels = labels.to(state.runtime.device, non_blocking=True)
        with state.runtime.autocast():
            logits = state.model(images)
            loss = state.criterion(logits.float(), labels)
        state.optimizer.zero_grad(set_to_none=True)
        state.scaler.scale(loss).backward()
        state.scaler.step(state.optimizer)
        state.scaler.update()
        state.scheduler.step()
        state.global_step += 1
        batch_loss = loss.item()
        batch_correct = (logits.argmax(1) == labels).sum().item()
        total_loss += batch_loss * len(labels)
        correct += batch_correct
        seen += len(labels)
        sinks.batch(epoch, state.global_step, batch_loss, batch_correct / len(labels))
    return total_loss / max(1, seen), correct / max(1, seen)


@dataclass(frozen=True)
class Evaluation:
    """One model on one image set: mean cross-entropy and, per image, whether its top-1
    prediction was the label (bool ``[N]`` on the CPU, in the set's order)."""

    loss: float
    correct: torch.Tensor

    @property
    def accuracy(self) -> float:
        return int(self.correct.sum()) / len(self.correct)


@torch.inference_mode()
def evaluate_images(
    model: nn.Module,
    data: ImageSet,
    transform: Callable[[torch.Tensor], torch.Tensor],
    runtime: Runtime,
    batch_size: int,
) -> Evaluation:
    """Per-image results (no smoothing in the loss), with the serving preprocessing
    ``transform``; the champion comparison pairs two of these on the same images."""
    model.eval()
    total_loss = 0.0
    correct: list[torch.Tensor] = []
    for images, labels in iterate_batches(data, batch_size, shuffle=False):
        inputs = transform(runtime.to_input(images))
        labels = labels.to(runtime.device)
        with runtime.autocast():
            logits = model(inputs).float()
        total_loss += nn.functional.cross_entropy(logits, labels, reduction="sum").item()
        correct.append((logits.argmax(1) == labels).cpu())
    return Evaluation(total_loss / len(data), torch.cat(correct))


def evaluate(
    model: nn.Module,
    data: ImageSet,
    transform: Callable[[torch.Tensor], torch.Tensor],
    runtime: Runtime,
    batch_size: int,
) -> tuple[float, float]:
    """Mean cross-entropy (no smoothing) and accuracy, with the serving preprocessing."""
    result = evaluate_images(model, data, transform, runtime, batch_size)
    return result.loss, result.accuracy
