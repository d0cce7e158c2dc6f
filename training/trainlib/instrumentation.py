"""Where metrics go: stdout lines (always), metrics.json, TensorBoard, smdebug, PNG curves.

Every sink gets the same three calls (batch, epoch, final) and a ``close``; the entry points
choose the sinks (hpo.py: lines + metrics.json; train_model.py: all of them).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Protocol

from metric_definitions import format_metrics
from trainlib.stderr import say

#: SageMaker writes the DebugHookConfig here; outside SageMaker SMDEBUG_CONFIG_FILE_PATH points at one.
SAGEMAKER_HOOK_CONFIG = Path("/opt/ml/input/config/debughookconfig.json")


class MetricSink(Protocol):
    def batch(self, epoch: int, step: int, loss: float, acc: float) -> None: ...
    def epoch(self, epoch: int, values: dict[str, float]) -> None: ...
    def final(self, values: dict[str, float]) -> None: ...
    def close(self) -> None: ...


class MetricLines:
    """The stable ``name=value`` lines SageMaker's MetricDefinitions read (stdout, flushed)."""

    def __init__(self, log_interval: int, write=None) -> None:
        self.log_interval = log_interval
        self.write = write or (lambda line: print(line, flush=True))

    def batch(self, epoch: int, step: int, loss: float, acc: float) -> None:
        if step % self.log_interval == 0:
            self.write(format_metrics(epoch=epoch, step=step, batch_loss=loss, batch_acc=acc))

    def epoch(self, epoch: int, values: dict[str, float]) -> None:
        self.write(format_metrics(epoch=epoch, **values))

    def final(self, values: dict[str, float]) -> None:
        self.write(format_metrics(**values))

    def close(self) -> None:
        pass


class MetricsHistory:
    """Every value in memory; written to ``metrics.json`` (and drawn as curves) at close."""

    def __init__(self, output_dir: Path, extra: dict[str, Any], plots: bool) -> None:
        self.output_dir, self.plots = output_dir, plots
        self.record: dict[str, Any] = {**extra, "batches": [], "epochs": [], "final": {}}

    def batch(self, epoch: int, step: int, loss: float, acc: float) -> None:
        self.record["batches"].append(
            {"epoch": epoch, "step": step, "batch_loss": loss, "batch_acc": acc}
        )

    def epoch(self, epoch: int, values: dict[str, float]) -> None:
        self.record["epochs"].append({"epoch": epoch, **values})

    def final(self, values: dict[str, float]) -> None:
        self.record["final"] = dict(values)

    def snapshot(self) -> dict[str, list]:
        """The batch and epoch series so far (what a checkpoint carries)."""
        return {"batches": list(self.record["batches"]), "epochs": list(self.record["epochs"])}

    def restore(self, snapshot: dict[str, list]) -> None:
        """Continue from a checkpoint's series, so metrics.json and the curves stay whole."""
        self.record["batches"] = list(snapshot["batches"])
        self.record["epochs"] = list(snapshot["epochs"])

    def replay(self, sink: MetricSink) -> None:
        """Feed the series so far to ``sink`` in the original order (per epoch: its batches,
        then its epoch values), so a resumed run's TensorBoard and smdebug steps line up."""
        for row in self.record["epochs"]:
            for b in self.record["batches"]:
                if b["epoch"] == row["epoch"]:
                    sink.batch(b["epoch"], b["step"], b["batch_loss"], b["batch_acc"])
            sink.epoch(row["epoch"], {k: v for k, v in row.items() if k != "epoch"})

    def close(self) -> None:
        self.output_dir.mkdir(parents=True, exist_ok=True)
        (self.output_dir / "metrics.json").write_text(json.dumps(self.record, indent=2) + "\n")
        if self.plots:
            plot_curves(self.record, self.output_dir)


def plot_curves(record: dict[str, Any], output_dir: Path) -> list[Path]:
    """batch_curves.png (loss/accuracy per step) and epoch_curves.png (train vs val)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    batches, epochs = record["batches"], record["epochs"]
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    steps = [b["step"] for b in batches]
    ax_loss.plot(steps, [b["batch_loss"] for b in batches])
    ax_acc.plot(steps, [b["batch_acc"] for b in batches])
    for ax, label in ((ax_loss, "batch loss"), (ax_acc, "batch accuracy")):
        ax.set_xlabel("step")
        ax.set_title(label)
    fig.tight_layout()
    written.append(output_dir / "batch_curves.png")
    fig.savefig(written[-1], dpi=80)
    plt.close(fig)

    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    xs = [e["epoch"] for e in epochs]
    for split in ("train", "val"):
        ax_loss.plot(xs, [e[f"{split}_loss"] for e in epochs], marker="o", label=split)
        ax_acc.plot(xs, [e[f"{split}_acc"] for e in epochs], marker="o", label=split)
    for ax, label in ((ax_loss, "loss"), (ax_acc, "accuracy")):
        ax.set_xlabel("epoch")
        ax.set_title(label)
        ax.legend()
    fig.tight_layout()
    written.append(output_dir / "epoch_curves.png")
    fig.savefig(written[-1], dpi=80)
    plt.close(fig)
    return written


class TensorBoardScalars:
    def __init__(self, log_dir: Path) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(log_dir))
        self.global_step = 0

    def batch(self, epoch: int, step: int, loss: float, acc: float) -> None:
        self.writer.add_scalar("batch/loss", loss, step)
        self.writer.add_scalar("batch/accuracy", acc, step)

    def epoch(self, epoch: int, values: dict[str, float]) -> None:
        for name, value in values.items():
            split, _, kind = name.partition("_")
            self.writer.add_scalar(f"epoch/{kind}/{split}", value, epoch)

    def final(self, values: dict[str, float]) -> None:
        for name, value in values.items():
            self.writer.add_scalar(f"final/{name}", value, 0)

    def close(self) -> None:
        self.writer.close()


def smdebug_config_path() -> Path | None:
    """The hook config to use, if any: SMDEBUG_CONFIG_FILE_PATH, else SageMaker's."""
    configured = os.environ.get("SMDEBUG_CONFIG_FILE_PATH")
    if configured:
        return Path(configured) if Path(configured).is_file() else None
    return SAGEMAKER_HOOK_CONFIG if SAGEMAKER_HOOK_CONFIG.is_file() else None


class SmdebugScalars:
    """smdebug tensors: ``batch_loss``/``batch_accuracy`` per TRAIN step, epoch values per
    EVAL step (one per epoch).

    smdebug writes values saved with ``save_tensor`` in the forward hook of the *next* step,
    so the last one before ``close()`` would be lost. Each record here queues its values and
    then advances the step by calling a registered marker module: the values are written
    at once, under the step they belong to, and nothing is left pending at close.
    """

    COLLECTION = "metrics"

    def __init__(self, hook: Any) -> None:
        import smdebug.pytorch as smd
        import torch
        from smdebug import modes

        self.hook, self.modes, self.torch = hook, modes, torch
        collection = hook.get_collection(self.COLLECTION)
        collection.include("^batch_|^epoch_")
        # Every step, whatever save_interval the job's DebugHookConfig sets for the others.
        collection.save_config = smd.SaveConfig(save_interval=1)
        if self.COLLECTION not in hook.include_collections:
            hook.include_collections.append(self.COLLECTION)
        self.marker = torch.nn.Identity()
        hook.register_module(self.marker)

    @classmethod
    def create(cls) -> SmdebugScalars | None:
        """A recorder when smdebug is importable and a hook config exists, else None."""
        config = smdebug_config_path()
        if config is None:
            return None
        try:
            import smdebug.pytorch as smd
        except Exception as e:
            # PyTorch 2.x containers may not ship smdebug: the job asked for Debugger, so say
            # loudly that its rules will get no tensors, then train the same without the hook.
            reason = str(e).splitlines()[0] if str(e) else ""
            say(
                f"warning: a Debugger hook config exists ({config}) but smdebug cannot be"
                f" imported ({type(e).__name__}: {reason}); training without the hook,"
                " so Debugger rules get no tensors"
            )
            return None
        return cls(smd.Hook.create_from_json_file(str(config)))

    def _record(self, mode: Any, values: dict[str, float]) -> None:
        self.hook.set_mode(mode)
        for name, value in values.items():
            self.hook.save_tensor(name, self.torch.tensor(float(value)), self.COLLECTION)
        self.marker(self.torch.zeros(1))

    def batch(self, epoch: int, step: int, loss: float, acc: float) -> None:
        self._record(self.modes.TRAIN, {"batch_loss": loss, "batch_accuracy": acc})

    def epoch(self, epoch: int, values: dict[str, float]) -> None:
        renamed = {f"epoch_{k.replace('_acc', '_accuracy')}": v for k, v in values.items()}
        self._record(self.modes.EVAL, renamed)

    def final(self, values: dict[str, float]) -> None:
        pass  # test metrics are in metrics.json and the log; smdebug holds the curves

    def close(self) -> None:
        self.hook.close()


class Sinks:
    """Fan one call out to every sink."""

    def __init__(self, sinks: list[MetricSink]) -> None:
        self.sinks = sinks

    def batch(self, epoch: int, step: int, loss: float, acc: float) -> None:
        for s in self.sinks:
            s.batch(epoch, step, loss, acc)

    def epoch(self, epoch: int, values: dict[str, float]) -> None:
        for s in self.sinks:
            s.epoch(epoch, values)

    def final(self, values: dict[str, float]) -> None:
        for s in self.sinks:
            s.final(values)

    def close(self) -> None:
        for s in self.sinks:
            s.close()
