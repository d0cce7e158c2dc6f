"""train_model.py's ``main`` with the hooks the distributed tests need (not collected).

Run as ``python ddp_harness.py <train_model.py args>``, alone or under torchrun. Switches, from
the environment:

- ``HARNESS_NO_AUGMENT=1``: no random crops or flips (rank streams would differ from one
  process's);
- ``HARNESS_FROZEN_BATCHNORM=1``: every BatchNorm stays in eval mode (no batch statistics:
  under gloo each rank would normalise with its own half of the global batch);
- ``HARNESS_EXIT_AFTER_EPOCH=N``: every rank dies (``os._exit(3)``, no clean-up) right after
  epoch N's checkpoint is on disk, like a reclaimed spot instance.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "training"))

import torch

from trainlib import cli, distributed, loop, model


def _no_augment(images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    return images


def _patch() -> None:
    if os.environ.get("HARNESS_NO_AUGMENT"):
        loop.augment_batch = _no_augment  # type: ignore[assignment]
    if os.environ.get("HARNESS_FROZEN_BATCHNORM"):
        train = model.ResNet34Classifier.train

        def frozen_batchnorm(self, mode: bool = True):
            train(self, mode)
            for module in self.modules():
                if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
                    module.eval()
            return self

        model.ResNet34Classifier.train = frozen_batchnorm  # type: ignore[method-assign]
    exit_after = int(os.environ.get("HARNESS_EXIT_AFTER_EPOCH", "0"))
    if exit_after:
        barrier = distributed.Distributed.barrier
        done = {"epochs": 0}

        def barrier_then_die(self) -> None:
            barrier(self)  # called once per epoch, after rank 0 saved its checkpoint
            done["epochs"] += 1
            if done["epochs"] == exit_after:
                sys.stdout.flush()
                os._exit(3)

        distributed.Distributed.barrier = barrier_then_die  # type: ignore[method-assign]


if __name__ == "__main__":
    _patch()
    sys.exit(cli.main(sys.argv[1:], prog="ddp_harness.py", description="test", instrumented=True))
