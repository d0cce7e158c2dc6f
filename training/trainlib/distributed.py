"""Several processes, one model: the torchrun contract, the process group and its collectives.

torchrun (and SageMaker's PyTorch container with ``torch_distributed``, which runs torchrun on
every instance) starts one process per GPU and gives each ``WORLD_SIZE``, ``RANK``,
``LOCAL_RANK``, ``LOCAL_WORLD_SIZE``, ``MASTER_ADDR`` and ``MASTER_PORT``
(docs/contracts.md). Without them, or with ``WORLD_SIZE=1``, this is one process and every
helper here is the identity: no process group, no collective, the numbers of a plain run.

The process group uses NCCL on CUDA (each process on ``cuda:LOCAL_RANK``) and gloo on CPUs.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from trainlib.errors import InputError

#: What torchrun sets for every process (MASTER_* are read by torch's env:// rendezvous).
ENV_VARIABLES = (
    "WORLD_SIZE",
    "RANK",
    "LOCAL_RANK",
    "LOCAL_WORLD_SIZE",
    "MASTER_ADDR",
    "MASTER_PORT",
)


def _env_int(env: Mapping[str, str], name: str, default: int) -> int:
    text = env.get(name, "").strip()
    if not text:
        return default
    try:
        return int(text)
    except ValueError:
        raise InputError(f"{name} must be an integer, got {text!r}") from None


def shard_bounds(n: int, rank: int, world_size: int) -> tuple[int, int]:
    """``[start, stop)`` of rank ``rank``'s contiguous share of ``n`` items: the first
    ``n % world_size`` ranks hold one more (evaluation shards; concatenated in rank order
    they are ``0..n-1``)."""
    base, extra = divmod(n, world_size)
    start = rank * base + min(rank, extra)
    return start, start + base + (rank < extra)


@dataclass
class Distributed:
    """This process's place in the job. The default is one process (rank 0 of 1)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    local_world_size: int = 1
    #: Set by ``start``: "nccl" or "gloo"; None for one process.
    backend: str | None = None
    #: Where the tensors of collectives live (cuda:LOCAL_RANK under NCCL).
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Distributed:
        """torchrun's variables; one process when WORLD_SIZE is unset or 1."""
        env = os.environ if env is None else env
        world_size = _env_int(env, "WORLD_SIZE", 1)
        if world_size <= 1:
            if world_size < 1:
                raise InputError(f"WORLD_SIZE must be at least 1, got {world_size}")
            return cls()
        missing = [
            name
            for name in ("RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")
            if not env.get(name)
        ]
        if missing:
            raise InputError(
                f"WORLD_SIZE is {world_size} but {', '.join(missing)} is not set: launch "
                "with torchrun (SageMaker: torch_distributed), which sets all of "
                + ", ".join(ENV_VARIABLES)
            )
        rank = _env_int(env, "RANK", 0)
        local_rank = _env_int(env, "LOCAL_RANK", 0)
        local_world_size = _env_int(env, "LOCAL_WORLD_SIZE", world_size)
        if not 0 <= rank < world_size or not 0 <= local_rank < local_world_size:
            raise InputError(
                f"RANK {rank} / LOCAL_RANK {local_rank} outside WORLD_SIZE {world_size} / "
                f"LOCAL_WORLD_SIZE {local_world_size}"
            )
        return cls(rank, world_size, local_rank, local_world_size)

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the one process that prints and writes."""
        return self.rank == 0

    # -- life cycle ------------------------------------------------------------------------

    def start(self) -> None:
        """Join the process group (NCCL on cuda:LOCAL_RANK, else gloo). One process: no-op."""
        if not self.enabled or self.backend is not None:
            return
        import torch.distributed as dist

        if torch.cuda.is_available():
            if self.local_rank >= torch.cuda.device_count():
                raise InputError(
                    f"LOCAL_RANK {self.local_rank} but this machine has "
                    f"{torch.cuda.device_count()} GPUs: run one process per GPU "
                    "(torchrun --nproc_per_node <GPUs>)"
                )
            self.device = torch.device("cuda", self.local_rank)
            torch.cuda.set_device(self.device)
            dist.init_process_group("nccl", device_id=self.device)
            self.backend = "nccl"
        else:
            dist.init_process_group("gloo")
            self.backend = "gloo"

    def stop(self) -> None:
        if self.backend is None:
            return
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()
        self.backend = None

    # -- output ----------------------------------------------------------------------------

    def log(self, message: str) -> None:
        """A log line from rank 0 only (the others would repeat it)."""
        if self.is_main:
            print(message, flush=True)

    # -- collectives (identities for one process) -----------------------------------------

    def barrier(self) -> None:
        if self.backend is not None:
            import torch.distributed as dist

            dist.barrier()

    def all_reduce_sums(self, values: Sequence[float]) -> list[float]:
        """Each value summed over the ranks (float64: counts stay exact up to 2**53)."""
        if self.backend is None:
            return list(values)
        import torch.distributed as dist

        tensor = torch.tensor(list(values), dtype=torch.float64, device=self.device)
        dist.all_reduce(tensor)
        return tensor.tolist()

    def gather_shards(self, part: torch.Tensor, total: int) -> torch.Tensor:
        """The ranks' contiguous shards (``shard_bounds``) of a length-``total`` 1-D tensor,
        concatenated in rank order: the whole tensor, on every rank, on the CPU."""
        if self.backend is None:
            return part
        import torch.distributed as dist

        sizes = [
            shard_bounds(total, r, self.world_size)[1] - shard_bounds(total, r, self.world_size)[0]
            for r in range(self.world_size)
        ]
        longest = max(sizes)
        # bytes on the wire: NCCL has no bool, and every rank sends the same padded length
        wire = torch.zeros(longest, dtype=torch.uint8, device=self.device)
        wire[: len(part)] = part.to(self.device, torch.uint8)
        received = [torch.empty_like(wire) for _ in range(self.world_size)]
        dist.all_gather(received, wire)
        whole = torch.cat([chunk[:size] for chunk, size in zip(received, sizes, strict=True)])
        return whole.cpu().to(part.dtype)

    def broadcast_object(self, obj: Any) -> Any:
        """Rank 0's ``obj`` on every rank (pickled)."""
        if self.backend is None:
            return obj
        import torch.distributed as dist

        box = [obj if self.is_main else None]
        dist.broadcast_object_list(box, src=0, device=self.device)
        return box[0]

    def all_gather_object(self, obj: Any) -> list[Any]:
        """Every rank's ``obj``, in rank order."""
        if self.backend is None:
            return [obj]
        import torch.distributed as dist

        gathered: list[Any] = [None] * self.world_size
        dist.all_gather_object(gathered, obj)
        return gathered

    def broadcast_buffers(self, module: nn.Module) -> None:
        """Rank 0's buffers (BatchNorm running statistics) on every rank, so all ranks
        evaluate, and rank 0 exports, the same model."""
        if self.backend is None:
            return
        import torch.distributed as dist

        for buffer in module.buffers():
            dist.broadcast(buffer.data, src=0)


def unwrap(model: nn.Module) -> nn.Module:
    """The model inside a DistributedDataParallel wrapper (checkpoints hold unprefixed keys)."""
    from torch.nn.parallel import DistributedDataParallel

    return model.module if isinstance(model, DistributedDataParallel) else model


def revert_sync_batchnorm(module: nn.Module) -> nn.Module:
    """``SyncBatchNorm`` layers back to ``BatchNorm2d`` (same weights and statistics), so the
    exported model is the one a single process would write. Returns the module, changed in
    place below the top."""
    if isinstance(module, nn.SyncBatchNorm):
        plain = nn.BatchNorm2d(
            module.num_features,
            module.eps,
            module.momentum,
            module.affine,
            module.track_running_stats,
        )
        if module.affine:
            with torch.no_grad():
                plain.weight = module.weight
                plain.bias = module.bias
        plain.running_mean = module.running_mean
        plain.running_var = module.running_var
        plain.num_batches_tracked = module.num_batches_tracked
        plain.train(module.training)
        return plain
    for name, child in module.named_children():
        module.add_module(name, revert_sync_batchnorm(child))
    return module
