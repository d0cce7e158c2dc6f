"""``main``: the one code path behind hpo.py and train_model.py."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trainlib.config import TrainConfig, parse_config
from trainlib.errors import InputError
from trainlib.stderr import say

if TYPE_CHECKING:  # torch is imported when a run starts, not for --help
    from trainlib.distributed import Distributed


def _report_failure(message: str) -> None:
    """One line on stderr; in SageMaker also /opt/ml/output/failure (the job's FailureReason)."""
    say(f"error: {message}")
    output_dir = os.environ.get("SM_OUTPUT_DIR")
    if output_dir and Path(output_dir).is_dir():
        with contextlib.suppress(OSError):  # reporting must not mask the error itself
            (Path(output_dir) / "failure").write_text(f"error: {message}\n")


def run(
    config: TrainConfig, *, instrumented: bool, dist: Distributed | None = None
) -> dict[str, float]:
    """Load data (and score the champion), train, evaluate, compare, write the artifact
    (unless a trial's config says not to). Returns the final metrics.

    Under torchrun (``dist`` from the environment by default) every rank runs this; rank 0
    alone prints and writes (docs/training.md, "Distributed training")."""
    from trainlib.distributed import Distributed

    dist = Distributed.from_env() if dist is None else dist
    dist.start()
    try:
        result = _run(config, instrumented, dist)
        # The ranks leave together, once rank 0 has written everything: a gloo rank whose
        # peer has already torn down its connections can abort at exit.
        dist.barrier()
        return result
    finally:
        dist.stop()


def _run(config: TrainConfig, instrumented: bool, dist: Distributed) -> dict[str, float]:
    import torch

    from metric_definitions import format_metrics
    from trainlib import checkpoint as checkpoints
    from trainlib.artifact import EVALUATION_FILE, build_metadata, write_artifact, write_json
    from trainlib.champion import (
        ChampionResult,
        Comparison,
        comparison_metrics,
        evaluate_champion,
        evaluation_record,
    )
    from trainlib.data import (
        choose_loading,
        load_channel,
        loader_workers,
        split_train_val,
        steps_per_epoch,
    )
    from trainlib.distributed import unwrap
    from trainlib.instrumentation import (
        MetricLines,
        MetricsHistory,
        Sinks,
        SmdebugScalars,
        TensorBoardScalars,
    )
    from trainlib.loop import (
        Runtime,
        TrainState,
        evaluate,
        evaluate_images,
        prepare_model,
        scaled_learning_rate,
        train_one_epoch,
        warmup_cosine,
    )
    from trainlib.model import build_model
    from trainlib.preprocess import build_eval_transform, preprocess_spec
    from trainlib.serving_graphs import (
        calibration_subset,
        preprocessed_batches,
        write_serving_graphs,
    )

    if config.num_workers:
        torch.set_num_threads(config.num_workers)
    torch.manual_seed(config.seed)

    # Everything that can be wrong with the input fails here, before any output exists.
    # Every rank loads the same channels and makes the same split.
    loading, why = choose_loading(
        config.data_loading, [config.train, config.test], config.image_size, dist.local_world_size
    )
    workers = loader_workers(dist.local_world_size) if loading == "stream" else 0
    full = load_channel(config.train, "train", config.image_size, loading=loading, workers=workers)
    test = load_channel(
        config.test,
        "test",
        config.image_size,
        classes=full.classes,
        loading=loading,
        workers=workers,
    )
    train, val = split_train_val(full, config.val_fraction, config.seed)
    runtime = Runtime.detect(
        config.amp, device_index=dist.local_rank if dist.backend == "nccl" else None
    )
    eval_batch = max(config.batch_size, 256)
    # The champion is scored now, before anything is trained: a broken one costs no training
    # run, and its model need not stay in memory through training.
    champion: ChampionResult | None = None
    if config.champion is not None:  # a final-job option: always None in a trial
        champion = evaluate_champion(config.champion, test, runtime, eval_batch, dist)
        dist.log(
            f"champion {champion.model_version or '(no model_version)'} from {champion.source}: "
            f"{champion.evaluation.accuracy:.4f} of {len(test)} test images right at "
            f"{champion.image_size}px; compared with the new model after training"
        )
    freeze_backbone = bool(config.freeze_backbone)  # resolved: never None after parsing
    model = build_model(
        len(full.classes),
        pretrained=config.pretrained,
        hidden_units=config.hidden_units,
        dropout=config.dropout,
        freeze_backbone=freeze_backbone,
    )
    streamed = (
        f", streamed from files by {workers} DataLoader worker(s) per process ({why})"
        if full.streamed
        else ""
    )
    dist.log(
        f"data: {len(train)} train / {len(val)} val / {len(test)} test images, "
        f"{len(full.classes)} classes, stored {full.stored_size} -> {config.image_size}px"
        + streamed
    )

    spec = preprocess_spec(config.image_size, source_size=full.source_size)
    transform = build_eval_transform(spec)
    net = prepare_model(model, runtime, dist)
    learning_rate = scaled_learning_rate(config.learning_rate, dist.world_size)
    if dist.enabled:
        # Each rank draws its own crops and dropout masks (the model itself came from the
        # common seed, and DDP starts every rank from rank 0's weights anyway).
        torch.manual_seed(config.seed + dist.rank)
        norm = "SyncBatchNorm" if runtime.device.type == "cuda" else "per-rank BatchNorm"
        dist.log(
            f"distributed: {dist.world_size} processes ({dist.backend}), batch "
            f"{config.batch_size} per process = global batch "
            f"{config.batch_size * dist.world_size}, learning rate {config.learning_rate:g} x "
            f"{dist.world_size} = {learning_rate:g} (linear scaling rule), {norm}"
        )
    elif runtime.device.type == "cuda" and torch.cuda.device_count() > 1:
        dist.log(
            f"note: {torch.cuda.device_count()} GPUs visible, one process uses one; "
            "torchrun --nproc_per_node <GPUs> (SageMaker: torch_distributed) uses them all"
        )
    steps = steps_per_epoch(len(train), config.batch_size, dist.world_size)
    total_steps = steps * config.epochs
    warmup = min(round(config.warmup_epochs * steps), total_steps // 5)
    optimizer = torch.optim.SGD(
        model.trainable_parameters(),
        lr=learning_rate,
        momentum=config.momentum,
        nesterov=config.momentum > 0,
        weight_decay=config.weight_decay,
    )
    state = TrainState(
        model=net,
        optimizer=optimizer,
        scheduler=torch.optim.lr_scheduler.LambdaLR(
            optimizer, warmup_cosine(total_steps, max(1, warmup))
        ),
        scaler=torch.amp.GradScaler(
            runtime.device.type, enabled=runtime.amp_dtype == torch.float16
        ),
        criterion=torch.nn.CrossEntropyLoss(label_smoothing=config.label_smoothing),
        transform=transform,
        runtime=runtime,
        dist=dist,
    )

    generator = torch.Generator().manual_seed(config.seed)  # the batch order: alike on all ranks
    # A checkpoint belongs to one world size: another would change the global batch, the
    # learning rate and the dealing of the epochs.
    settings = config.resume_settings()
    if dist.enabled:
        settings["world_size"] = dist.world_size
    resumed = _load_resume(config.checkpoint_dir, settings, dist)
    if resumed is not None and resumed["epoch"] > config.epochs:
        raise InputError(
            f"the checkpoint in {config.checkpoint_dir} is at epoch {resumed['epoch']}, "
            f"past --epochs {config.epochs}"
        )
    extra: dict = {"job_name": config.job_name, "hyperparameters": config.hyperparameters()}
    if dist.enabled:
        extra["distributed"] = {
            "world_size": dist.world_size,
            "backend": dist.backend,
            "global_batch_size": config.batch_size * dist.world_size,
            "learning_rate": learning_rate,
        }
    history = MetricsHistory(config.output_data_dir, extra, plots=instrumented)
    sinks: list = []
    series: list = []  # sinks that keep a step series of their own
    if dist.is_main:  # the other ranks print and write nothing
        sinks = [MetricLines(config.log_interval), history]
        if instrumented:
            series.append(TensorBoardScalars(config.tensorboard_dir))
            recorder = SmdebugScalars.create()
            if recorder is not None:
                series.append(recorder)
            sinks.extend(series)
    start_epoch = 1
    if resumed is not None:
        unwrap(net).load_state_dict(resumed["model"])
        optimizer.load_state_dict(resumed["optimizer"])
        state.scheduler.load_state_dict(resumed["lr_scheduler"])
        state.scaler.load_state_dict(resumed["scaler"])
        state.global_step = resumed["global_step"]
        checkpoints.restore_rng_state(
            resumed["rng"], generator, dist.rank if dist.enabled else None
        )
        history.restore(resumed["history"])
        for sink in series:  # fresh event files: give them the past too
            history.replay(sink)
        start_epoch = resumed["epoch"] + 1
        last = history.record["epochs"][-1]  # the values a finished-epochs resume reports
        val_loss, val_acc = last["val_loss"], last["val_acc"]
        dist.log(
            f"resumed from epoch {resumed['epoch']} ({config.checkpoint_dir}); "
            f"continuing at epoch {start_epoch} of {config.epochs}"
        )
    metrics = Sinks(sinks)

    comparison: Comparison | None = None
    started = time.perf_counter()
    try:
        for epoch in range(start_epoch, config.epochs + 1):
            train_loss, train_acc = train_one_epoch(
                state, train, config.batch_size, epoch, metrics, generator
            )
            val_loss, val_acc = evaluate(net, val, transform, runtime, eval_batch, dist)
            metrics.epoch(
                epoch,
                {
                    "train_loss": train_loss,
                    "train_acc": train_acc,
                    "val_loss": val_loss,
                    "val_acc": val_acc,
                },
            )
            if config.checkpoint_dir is not None:
                # Each rank's own crops and dropout masks continue where they were.
                ranks = dist.all_gather_object(checkpoints.process_rng_state())
                if dist.is_main:
                    checkpoints.save_checkpoint(
                        config.checkpoint_dir,
                        {
                            "settings": settings,
                            "epoch": epoch,
                            "global_step": state.global_step,
                            "model": unwrap(net).state_dict(),
                            "optimizer": optimizer.state_dict(),
                            "lr_scheduler": state.scheduler.state_dict(),
                            "scaler": state.scaler.state_dict(),
                            "rng": checkpoints.rng_state(
                                generator, ranks if dist.enabled else None
                            ),
                            "history": history.snapshot(),
                        },
                    )
                dist.barrier()  # the epoch's checkpoint is on disk before any rank goes on
        tested = evaluate_images(net, test, transform, runtime, eval_batch, dist)
        test_loss, test_acc = tested.loss, tested.accuracy
        final = {"test_loss": test_loss, "test_acc": test_acc}
        metrics.final(final)
        if champion is not None:  # the line after the test metrics, read by the same regexes
            comparison = Comparison.of(tested.correct, champion.evaluation.correct)
            dist.log(format_metrics(**comparison_metrics(champion, comparison)))
    finally:
        metrics.close()
    elapsed = time.perf_counter() - started
    dist.log(
        f"trained {config.epochs} epochs in {elapsed:.1f}s on {runtime.device.type} "
        f"({runtime.precision})"
    )

    compared = {}
    if champion is not None and comparison is not None:
        compared = comparison_metrics(champion, comparison)
    result = {**final, "val_acc": val_acc, "val_loss": val_loss, **compared}
    if not dist.is_main:
        return result
    # The final job's statistics: in the model dir (it ships with the model) and in the
    # output data dir (readable without downloading the 83 MB model.tar.gz).
    evaluation = evaluation_record(tested, champion, comparison) if instrumented else None
    if evaluation is not None:
        write_json(config.output_data_dir / EVALUATION_FILE, evaluation)
    if config.save_model:
        metadata = build_metadata(
            num_classes=len(full.classes),
            image_size=config.image_size,
            preprocess=spec,
            hyperparameters=config.hyperparameters(),
            metrics={"test_acc": test_acc, "test_loss": test_loss, "val_acc": val_acc},
            job_name=config.job_name,
        )

        def serving_graphs(staging: Path, traced: torch.jit.ScriptModule) -> dict[str, Any]:
            began = time.perf_counter()
            calibration = calibration_subset(val, config.int8_calibration_images, config.seed)
            graphs = write_serving_graphs(
                staging,
                traced,
                config.image_size,
                mode=config.serving_graphs,
                check_batches=lambda: preprocessed_batches(val, transform, 64),
                calibration_batches=lambda: (
                    inputs for inputs, _ in preprocessed_batches(calibration, transform, 16)
                ),
                calibration_images=len(calibration),
                min_agreement=config.int8_min_agreement,
                max_accuracy_drop=config.int8_max_accuracy_drop,
                threads=config.num_workers,
            )
            dist.log(f"{graphs.note} in {time.perf_counter() - began:.1f}s")
            if graphs.metrics:
                dist.log(format_metrics(**graphs.metrics))
            return graphs.metadata

        write_artifact(
            config.model_dir,
            unwrap(net),
            full.classes,
            metadata,
            config.inference_code,
            evaluation,
            serving_graphs,
        )
    else:  # a trial: nothing reads its weights (the final job retrains), so none are kept
        print("model not saved (a tuning trial; --save_model true keeps it)", flush=True)
    return result


def _load_resume(
    directory: Path | None, settings: dict, dist: Distributed
) -> dict[str, Any] | None:
    """The checkpoint to resume from, the same on every rank: rank 0 reads it (warning or
    error included) and sends it to the others."""
    from trainlib import checkpoint as checkpoints

    if directory is None:
        return None
    if not dist.enabled:
        return checkpoints.load_checkpoint(directory, settings)
    outcome: tuple[str, Any] = ("none", None)
    if dist.is_main:
        try:
            outcome = ("ok", checkpoints.load_checkpoint(directory, settings))
        except InputError as e:
            outcome = ("error", str(e))
    kind, value = dist.broadcast_object(outcome)
    if kind == "error":
        raise InputError(value)
    return value


def main(argv: Sequence[str] | None, *, prog: str, description: str, instrumented: bool) -> int:
    """Parse, run, map bad input to one ``error:`` line and exit code 2."""
    try:
        config = parse_config(argv, prog, description, checkpointing=instrumented)
        run(config, instrumented=instrumented)
    except InputError as e:
        _report_failure(str(e))
        return 2
    return 0
