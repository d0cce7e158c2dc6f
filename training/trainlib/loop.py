"""Training and evaluation: device set-up, schedule, one epoch, evaluate.

Under torchrun every function here runs on every rank: ``prepare_model`` wraps the model in
DistributedDataParallel, ``train_one_epoch`` trains on the rank's share of each epoch and
reports metrics summed over all ranks, ``evaluate_images`` scores a contiguous shard per rank
and gathers the per-image results, so every rank returns what one process would.
"""

from __future__ import annotations

import math
import platform
import sys
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field

import torch
from torch import nn

from trainlib.config import AMP_MODES
from trainlib.data import Images, epoch_batches, load_batches, shard_batches
from trainlib.distributed import Distributed, unwrap
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
    def detect(cls, amp: str = "auto", device_index: int | None = None) -> Runtime:
        """``amp``: auto (CUDA, or a CPU with native bf16), on (any device), off (fp32).
        ``device_index``: the GPU of this rank (LOCAL_RANK) under torchrun; one process
        uses the current one."""
        if amp not in AMP_MODES:
            raise ValueError(f"amp must be one of {AMP_MODES}, got {amp!r}")
        if torch.cuda.is_available():
            # The current device: distributed.start made it cuda:LOCAL_RANK.
            dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
            device = torch.device("cuda", device_index) if device_index is not None else None
            return cls(device or torch.device("cuda"), None if amp == "off" else dtype, True)
        use_bf16 = amp == "on" or (amp == "auto" and cpu_has_native_bf16())
        # oneDNN's bf16 convolutions run NHWC natively: channels_last saved ~10% a step of
        # ResNet-34 at 28 px (bench/accuracy.py's recipe) and cost ~5% in fp32, so only bf16.
        return cls(torch.device("cpu"), torch.bfloat16 if use_bf16 else None, use_bf16)

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


def prepare_model(
    model: nn.Module,
    runtime: Runtime,
    dist: Distributed | None = None,
) -> nn.Module:
    """Fold the frozen trunk's BatchNorms and move to the device. Under torchrun (``dist``
    with several ranks): trainable BatchNorms become SyncBatchNorm on CUDA (batch statistics
    over the global batch; torch's SyncBatchNorm refuses CPU tensors, so under gloo each
    rank normalises with its own batch), then DistributedDataParallel. A process drives one
    device: several GPUs are several processes (torchrun), not DataParallel.
    """
    if isinstance(model, ResNet34Classifier):
        model.fuse_frozen_trunk()
    distributed = dist is not None and dist.enabled
    if distributed and runtime.device.type == "cuda":
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    model = model.to(runtime.device)
    if runtime.channels_last:
        model = model.to(memory_format=torch.channels_last)
    if distributed:
        from torch.nn.parallel import DistributedDataParallel

        device_ids = [runtime.device.index] if runtime.device.type == "cuda" else None
        model = DistributedDataParallel(model, device_ids=device_ids)
    return model


def scaled_learning_rate(learning_rate: float, world_size: int) -> float:
    """The linear scaling rule (Goyal et al. 2017): ``world_size`` ranks with per-rank batch
    b take one step on a global batch of ``b * world_size``, whose averaged gradient has
    about ``1 / world_size`` of the variance; the tuned ``learning_rate`` came from
    single-process trials with batch b, so it is multiplied by ``world_size`` (with the
    existing warm-up easing the first steps). One process: unchanged."""
    return learning_rate * world_size


def warmup_cosine(total_steps: int, warmup_steps: int) -> Callable[[int], float]:
    """LR multiplier: linear warm-up to 1, then cosine decay to 0 at ``total_steps``."""

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return factor


def _progress(iterable, total: int, desc: str, show: bool = True):
    """A progress bar in a terminal; plain iteration (plain log lines) anywhere else, and on
    every rank but 0."""
    if not show or not sys.stderr.isatty():
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
    #: This rank's place in the job (one process by default).
    dist: Distributed = field(default_factory=Distributed)


def train_one_epoch(
    state: TrainState,
    data: Images,
    batch_size: int,
    epoch: int,
    sinks: Sinks,
    generator: torch.Generator,
) -> tuple[float, float]:
    """One pass with augmentation over this rank's share (``epoch_batches``) of ``data``;
    returns the mean training loss and accuracy over all ranks' images. ``batch_size`` is
    per rank. Every batch metric given to ``sinks`` is the global batch's too."""
    dist = state.dist
    state.model.train()
    total_loss, correct, seen = 0.0, 0, 0
    batches = epoch_batches(len(data), batch_size, generator, dist.rank, dist.world_size)
    loaded = load_batches(data, batches)
    for images, labels in _progress(loaded, len(batches), f"epoch {epoch}", dist.is_main):
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
        batch_correct = int((logits.argmax(1) == labels).sum().item())
        batch_seen = len(labels)
        if dist.enabled:  # the global batch: sums of loss x count and of right answers
            loss_sum, right, count = dist.all_reduce_sums(
                [batch_loss * batch_seen, batch_correct, batch_seen]
            )
            batch_correct, batch_seen = round(right), round(count)
            batch_loss = loss_sum / batch_seen
            total_loss += loss_sum
        else:
            total_loss += batch_loss * batch_seen
        correct += batch_correct
        seen += batch_seen
        sinks.batch(epoch, state.global_step, batch_loss, batch_correct / batch_seen)
    # Without SyncBatchNorm each rank's running statistics followed its own batches: rank
    # 0's go to all, so every rank evaluates (and rank 0 exports) the same model.
    dist.broadcast_buffers(unwrap(state.model))
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
    data: Images,
    transform: Callable[[torch.Tensor], torch.Tensor],
    runtime: Runtime,
    batch_size: int,
    dist: Distributed | None = None,
) -> Evaluation:
    """Per-image results (no smoothing in the loss), with the serving preprocessing
    ``transform``; the champion comparison pairs two of these on the same images.

    Under torchrun each rank scores its contiguous shard (``shard_batches``); the loss sums
    are all-reduced and the per-image results gathered, so every rank returns the whole
    set's ``Evaluation`` in the set's order, as one process computes it on the same weights.
    """
    dist = dist or Distributed()
    # The bare model: DDP's forward may sync buffers, a collective that shards of unequal
    # batch counts would deadlock on; evaluation needs none of it.
    model = unwrap(model)
    model.eval()
    total_loss = 0.0
    correct: list[torch.Tensor] = []
    batches = shard_batches(len(data), batch_size, dist.rank, dist.world_size)
    for images, labels in load_batches(data, batches):
        inputs = transform(runtime.to_input(images))
        labels = labels.to(runtime.device)
        with runtime.autocast():
            logits = model(inputs).float()
        total_loss += nn.functional.cross_entropy(logits, labels, reduction="sum").item()
        correct.append((logits.argmax(1) == labels).cpu())
    right = torch.cat(correct) if correct else torch.zeros(0, dtype=torch.bool)
    if dist.enabled:
        (total_loss,) = dist.all_reduce_sums([total_loss])
        right = dist.gather_shards(right, len(data))
    return Evaluation(total_loss / len(data), right)


def evaluate(
    model: nn.Module,
    data: Images,
    transform: Callable[[torch.Tensor], torch.Tensor],
    runtime: Runtime,
    batch_size: int,
    dist: Distributed | None = None,
) -> tuple[float, float]:
    """Mean cross-entropy (no smoothing) and accuracy, with the serving preprocessing."""
    result = evaluate_images(model, data, transform, runtime, batch_size, dist)
    return result.loss, result.accuracy
