"""``main``: the one code path behind hpo.py and train_model.py."""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from trainlib.config import TrainConfig, parse_config
from trainlib.errors import InputError


def _report_failure(message: str) -> None:
    """One line on stderr; in SageMaker also /opt/ml/output/failure (the job's FailureReason)."""
    print(f"error: {message}", file=sys.stderr, flush=True)
    output_dir = os.environ.get("SM_OUTPUT_DIR")
    if output_dir and Path(output_dir).is_dir():
        with contextlib.suppress(OSError):  # reporting must not mask the error itself
            (Path(output_dir) / "failure").write_text(f"error: {message}\n")


def _unwrap(net):
    """The model inside a DataParallel wrapper (checkpoints hold unprefixed keys)."""
    return getattr(net, "module", net)


def run(config: TrainConfig, *, instrumented: bool) -> dict[str, float]:
    """Load data (and score the champion), train, evaluate, compare, write the artifact
    (unless a trial's config says not to). Returns the final metrics."""
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
    from trainlib.data import load_channel, split_train_val
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
        train_one_epoch,
        warmup_cosine,
    )
    from trainlib.model import build_model
    from trainlib.preprocess import build_eval_transform, preprocess_spec

    if config.num_workers:
        torch.set_num_threads(config.num_workers)
    torch.manual_seed(config.seed)

    # Everything that can be wrong with the input fails here, before any output exists.
    full = load_channel(config.train, "train", config.image_size)
    test = load_channel(config.test, "test", config.image_size, classes=full.classes)
    train, val = split_train_val(full, config.val_fraction, config.seed)
    runtime = Runtime.detect(config.amp)
    eval_batch = max(config.batch_size, 256)
    # The champion is scored now, before anything is trained: a broken one costs no training
    # run, and its model need not stay in memory through training.
    champion: ChampionResult | None = None
    if config.champion is not None:  # a final-job option: always None in a trial
        champion = evaluate_champion(config.champion, test, runtime, eval_batch)
        print(
            f"champion {champion.model_version or '(no model_version)'} from {champion.source}: "
            f"{champion.evaluation.accuracy:.4f} of {len(test)} test images right at "
            f"{champion.image_size}px; compared with the new model after training",
            flush=True,
        )
    model = build_model(
        len(full.classes),
        pretrained=config.pretrained,
        hidden_units=config.hidden_units,
        dropout=config.dropout,
        freeze_backbone=config.freeze_backbone,
    )
    print(
        f"data: {len(train)} train / {len(val)} val / {len(test)} test images, "
        f"{len(full.classes)} classes, stored {tuple(full.images.shape[2:])} -> {config.image_size}px",
        flush=True,
    )

    spec = preprocess_spec(config.image_size, source_size=full.source_size)
    transform = build_eval_transform(spec)
    net = prepare_model(model, runtime, config.num_gpus)
    steps_per_epoch = max(1, len(train) // config.batch_size + (len(train) % config.batch_size > 1))
    total_steps = steps_per_epoch * config.epochs
    warmup = min(round(config.warmup_epochs * steps_per_epoch), total_steps // 5)
    optimizer = torch.optim.SGD(
        model.trainable_parameters(),
        lr=config.learning_rate,
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
    )

    generator = torch.Generator().manual_seed(config.seed)
    resumed = (
        checkpoints.load_checkpoint(config.checkpoint_dir, config.resume_settings())
        if config.checkpoint_dir is not None
        else None
    )
    if resumed is not None and resumed["epoch"] > config.epochs:
        raise InputError(
            f"the checkpoint in {config.checkpoint_dir} is at epoch {resumed['epoch']}, "
            f"past --epochs {config.epochs}"
        )
    history = MetricsHistory(
        config.output_data_dir,
        {"job_name": config.job_name, "hyperparameters": config.hyperparameters()},
        plots=instrumented,
    )
    sinks: list = [MetricLines(config.log_interval), history]
    series: list = []  # sinks that keep a step series of their own
    if instrumented:
        series.append(TensorBoardScalars(config.tensorboard_dir))
        recorder = SmdebugScalars.create()
        if recorder is not None:
            series.append(recorder)
        sinks.extend(series)
    start_epoch = 1
    if resumed is not None:
        _unwrap(net).load_state_dict(resumed["model"])
        optimizer.load_state_dict(resumed["optimizer"])
        state.scheduler.load_state_dict(resumed["lr_scheduler"])
        state.scaler.load_state_dict(resumed["scaler"])
        state.global_step = resumed["global_step"]
        checkpoints.restore_rng_state(resumed["rng"], generator)
        history.restore(resumed["history"])
        for sink in series:  # fresh event files: give them the past too
            history.replay(sink)
        start_epoch = resumed["epoch"] + 1
        last = history.record["epochs"][-1]  # the values a finished-epochs resume reports
        val_loss, val_acc = last["val_loss"], last["val_acc"]
        print(
            f"resumed from epoch {resumed['epoch']} ({config.checkpoint_dir}); "
            f"continuing at epoch {start_epoch} of {config.epochs}",
            flush=True,
        )
    metrics = Sinks(sinks)

    comparison: Comparison | None = None
    started = time.perf_counter()
    try:
        for epoch in range(start_epoch, config.epochs + 1):
            train_loss, train_acc = train_one_epoch(
                state, train, config.batch_size, epoch, metrics, generator
            )
            val_loss, val_acc = evaluate(net, val, transform, runtime, eval_batch)
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
                checkpoints.save_checkpoint(
                    config.checkpoint_dir,
                    {
                        "settings": config.resume_settings(),
                        "epoch": epoch,
                        "global_step": state.global_step,
                        "model": _unwrap(net).state_dict(),
                        "optimizer": optimizer.state_dict(),
                        "lr_scheduler": state.scheduler.state_dict(),
                        "scaler": state.scaler.state_dict(),
                        "rng": checkpoints.rng_state(generator),
                        "history": history.snapshot(),
                    },
                )
        tested = evaluate_images(net, test, transform, runtime, eval_batch)
        test_loss, test_acc = tested.loss, tested.accuracy
        final = {"test_loss": test_loss, "test_acc": test_acc}
        metrics.final(final)
        if champion is not None:  # the line after the test metrics, read by the same regexes
            comparison = Comparison.of(tested.correct, champion.evaluation.correct)
            print(format_metrics(**comparison_metrics(champion, comparison)), flush=True)
    finally:
        metrics.close()
    elapsed = time.perf_counter() - started
    print(
        f"trained {config.epochs} epochs in {elapsed:.1f}s on {runtime.device.type} "
        f"({runtime.precision})",
        flush=True,
    )

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
        write_artifact(
            config.model_dir, net, full.classes, metadata, config.inference_code, evaluation
        )
    else:  # a trial: nothing reads its weights (the final job retrains), so none are kept
        print("model not saved (a tuning trial; --save_model true keeps it)", flush=True)
    compared = {}
    if champion is not None and comparison is not None:
        compared = comparison_metrics(champion, comparison)
    return {**final, "val_acc": val_acc, "val_loss": val_loss, **compared}


def main(argv: Sequence[str] | None, *, prog: str, description: str, instrumented: bool) -> int:
    """Parse, run, map bad input to one ``error:`` line and exit code 2."""
    try:
        config = parse_config(argv, prog, description, checkpointing=instrumented)
        run(config, instrumented=instrumented)
    except InputError as e:
        _report_failure(str(e))
        return 2
    return 0
