"""Command line and SageMaker environment contract (docs/contracts.md, "Training entry points").

Every hyperparameter arrives as ``--name value`` (SageMaker script mode); every path has a
flag whose default is the matching ``SM_*`` variable, so the scripts also run on a laptop.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from trainlib.errors import InputError

#: Default input side. 32x32 through the ImageNet stem ends in a 1x1 feature map, which capped
#: the original project at 40.71%; 128 keeps a 4x4 map for layer4 at a third of 224's cost.
DEFAULT_IMAGE_SIZE = 128

_TRUE = {"true", "1", "yes", "y", "on"}
_FALSE = {"false", "0", "no", "n", "off"}

#: --amp choices: mixed precision on CUDA (as always) and on CPUs with native bf16 / forced / never.
AMP_MODES = ("auto", "on", "off")

#: CheckpointConfig's default LocalPath: SageMaker creates it only when the job has one.
SAGEMAKER_CHECKPOINT_DIR = Path("/opt/ml/checkpoints")

#: Settings a checkpoint must share with the run that resumes it (``epochs`` may change).
RESUME_SETTINGS = (
    "learning_rate",
    "batch_size",
    "image_size",
    "pretrained",
    "val_fraction",
    "seed",
    "label_smoothing",
    "weight_decay",
    "momentum",
    "warmup_epochs",
    "hidden_units",
    "dropout",
    "freeze_backbone",
)


@dataclass(frozen=True)
class TrainConfig:
    """Everything a run needs, validated."""

    train: Path
    test: Path
    model_dir: Path
    output_data_dir: Path
    inference_code: Path | None
    tensorboard_dir: Path
    learning_rate: float
    batch_size: int
    epochs: int
    image_size: int
    pretrained: bool
    val_fraction: float
    seed: int
    label_smoothing: float
    weight_decay: float
    momentum: float
    warmup_epochs: float
    hidden_units: int
    dropout: float
    freeze_backbone: bool
    log_interval: int
    num_workers: int
    num_gpus: int
    job_name: str
    amp: str = "auto"
    checkpoint_dir: Path | None = None

    def resume_settings(self) -> dict[str, float | int | bool]:
        values = asdict(self)
        return {name: values[name] for name in RESUME_SETTINGS}

    def hyperparameters(self) -> dict[str, float | int | bool]:
        """The documented hyperparameters, as metadata.json records them."""
        values = asdict(self)
        names = ("learning_rate", "batch_size", "epochs", "image_size", "pretrained")
        return {name: values[name] for name in names}


class _Parser(argparse.ArgumentParser):
    """argparse that raises InputError instead of printing usage and exiting."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise InputError(message)


def _strip_quotes(text: str) -> str:
    # The SageMaker SDK JSON-encodes string hyperparameters ('"true"'); accept both forms.
    return text.strip().strip('"').strip("'")


def parse_bool(text: str) -> bool:
    value = _strip_quotes(text).lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def _ranged(kind: type, low: float, high: float, *, low_open: bool = False):
    """An argparse type that parses ``kind`` and checks ``low <(=) value <= high``."""

    def parse(text: str) -> float | int:
        try:
            value = kind(_strip_quotes(text))
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a valid {kind.__name__}: {text!r}") from None
        too_low = value <= low if low_open else value < low
        if too_low or value > high or value != value:  # value != value: NaN
            bracket = "(" if low_open else "["
            raise argparse.ArgumentTypeError(f"{value} is outside {bracket}{low}, {high}]")
        return value

    parse.__name__ = kind.__name__
    return parse


def default_checkpoint_dir() -> Path | None:
    return SAGEMAKER_CHECKPOINT_DIR if SAGEMAKER_CHECKPOINT_DIR.is_dir() else None


def build_parser(
    prog: str, description: str, *, checkpointing: bool = True
) -> argparse.ArgumentParser:
    env = os.environ
    p = _Parser(
        prog=prog,
        description=description,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        allow_abbrev=False,
    )
    hp = p.add_argument_group("hyperparameters (SageMaker passes them as --name value)")
    hp.add_argument(
        "--learning_rate",
        type=_ranged(float, 0, 10, low_open=True),
        default=0.01,
        help="peak learning rate of SGD after warm-up",
    )
    hp.add_argument(
        "--batch_size",
        type=_ranged(int, 1, 4096),
        default=128,
        help="images per step (split across GPUs)",
    )
    hp.add_argument(
        "--epochs", type=_ranged(int, 1, 1000), default=10, help="passes over the training split"
    )
    hp.add_argument(
        "--image_size",
        type=_ranged(int, 16, 1024),
        default=DEFAULT_IMAGE_SIZE,
        help="input side in pixels; images are resized to image_size x image_size",
    )
    hp.add_argument(
        "--pretrained",
        type=parse_bool,
        default=True,
        help="start from torchvision's ImageNet weights (ResNet34_Weights.IMAGENET1K_V1)",
    )
    lib = p.add_argument_group("library options")
    lib.add_argument(
        "--val_fraction",
        type=_ranged(float, 0, 0.9, low_open=True),
        default=0.1,
        help="share of each class in the training channel held out for validation (HPO objective)",
    )
    lib.add_argument(
        "--seed",
        type=_ranged(int, 0, 2**31 - 1),
        default=42,
        help="seed for the validation split, initialisation and batch order",
    )
    lib.add_argument(
        "--label_smoothing",
        type=_ranged(float, 0, 0.5),
        default=0.1,
        help="label smoothing of the training loss",
    )
    lib.add_argument(
        "--weight_decay", type=_ranged(float, 0, 1), default=5e-4, help="SGD weight decay"
    )
    lib.add_argument(
        "--momentum", type=_ranged(float, 0, 0.999), default=0.9, help="SGD Nesterov momentum"
    )
    lib.add_argument(
        "--warmup_epochs",
        type=_ranged(float, 0, 100),
        default=1.0,
        help="linear warm-up length (capped at a fifth of the run), then cosine decay",
    )
    lib.add_argument(
        "--hidden_units",
        type=_ranged(int, 1, 8192),
        default=512,
        help="width of the head's hidden layer (Linear-ReLU-Dropout-Linear)",
    )
    lib.add_argument(
        "--dropout", type=_ranged(float, 0, 0.95), default=0.2, help="dropout in the head"
    )
    lib.add_argument(
        "--freeze_backbone",
        type=parse_bool,
        default=True,
        help="freeze the stem and layer1-3 and run them without autograd",
    )
    lib.add_argument(
        "--log_interval",
        type=_ranged(int, 1, 100000),
        default=10,
        help="print a batch metric line every N steps",
    )
    lib.add_argument(
        "--num_workers",
        type=_ranged(int, 0, 64),
        default=0,
        help="CPU threads for torch (0: torch's default)",
    )
    lib.add_argument(
        "--amp",
        type=lambda text: _strip_quotes(text).lower(),
        choices=AMP_MODES,
        default="auto",
        help="mixed precision: auto = on for CUDA (bf16, else fp16) and on CPUs with native bf16 "
        "(AVX512-BF16 / AMX / Arm BF16), where the forward pass runs under bf16 autocast (loss, "
        "gradients, optimizer and the exported model stay fp32); on = also on other CPUs "
        "(emulated, slow); off = fp32 everywhere",
    )
    lib.add_argument("--_tuning_objective_metric", default=None, help=argparse.SUPPRESS)
    paths = p.add_argument_group("paths (defaults: the SageMaker environment)")
    paths.add_argument(
        "--train", default=env.get("SM_CHANNEL_TRAIN"), help="training channel (SM_CHANNEL_TRAIN)"
    )
    paths.add_argument(
        "--test", default=env.get("SM_CHANNEL_TEST"), help="test channel (SM_CHANNEL_TEST)"
    )
    paths.add_argument(
        "--model-dir",
        default=env.get("SM_MODEL_DIR", "model"),
        help="where the model artifact goes (SM_MODEL_DIR)",
    )
    paths.add_argument(
        "--output-data-dir",
        default=env.get("SM_OUTPUT_DATA_DIR", "output"),
        help="metrics.json, curves (SM_OUTPUT_DATA_DIR)",
    )
    paths.add_argument(
        "--inference-code",
        default=env.get("SM_CHANNEL_INFERENCE_CODE") or None,
        help="optional: files copied to <model dir>/code/ (SM_CHANNEL_INFERENCE_CODE)",
    )
    paths.add_argument(
        "--tensorboard-dir",
        default=None,
        help="TensorBoard event files (default: /opt/ml/output/tensorboard in "
        "SageMaker, else <output-data-dir>/tensorboard)",
    )
    if checkpointing:  # hpo.py trials never checkpoint: they share one CheckpointConfig
        paths.add_argument(
            "--checkpoint-dir",
            default=default_checkpoint_dir(),
            help=f"save a checkpoint at the end of every epoch and resume from it at start "
            f"(managed spot training); default: {SAGEMAKER_CHECKPOINT_DIR} when SageMaker "
            "created it (the job has a CheckpointConfig), else off; '' turns it off",
        )
    return p


def _job_name(env: Mapping[str, str]) -> str:
    if env.get("TRAINING_JOB_NAME"):
        return env["TRAINING_JOB_NAME"]
    try:
        name = json.loads(env.get("SM_TRAINING_ENV", "{}")).get("job_name")
    except (ValueError, AttributeError):
        name = None
    return name or "local-" + datetime.now(UTC).strftime("%Y%m%d%H%M%S")


def _num_gpus(env: Mapping[str, str]) -> int:
    try:
        return max(0, int(env.get("SM_NUM_GPUS", "0")))
    except ValueError:
        raise InputError(f"SM_NUM_GPUS must be an integer, got {env['SM_NUM_GPUS']!r}") from None


def parse_config(
    argv: Sequence[str] | None,
    prog: str,
    description: str,
    env: Mapping[str, str] | None = None,
    *,
    checkpointing: bool = True,
) -> TrainConfig:
    """Parse and validate; raises InputError with a one-line message on any bad input."""
    env = os.environ if env is None else env
    args = build_parser(prog, description, checkpointing=checkpointing).parse_args(argv)
    for channel in ("train", "test"):
        if not getattr(args, channel):
            raise InputError(
                f"no {channel} channel: pass --{channel} or set SM_CHANNEL_{channel.upper()}"
            )
    output_data_dir = Path(args.output_data_dir)
    if args.tensorboard_dir:
        tensorboard_dir = Path(args.tensorboard_dir)
    elif Path("/opt/ml/output").is_dir():  # SageMaker's TensorBoardOutputConfig default LocalPath
        tensorboard_dir = Path("/opt/ml/output/tensorboard")
    else:
        tensorboard_dir = output_data_dir / "tensorboard"
    inference_code = Path(args.inference_code) if args.inference_code else None
    if inference_code is not None and not inference_code.is_dir():
        raise InputError(f"inference code directory {inference_code} does not exist")
    return TrainConfig(
        train=Path(args.train),
        test=Path(args.test),
        model_dir=Path(args.model_dir),
        output_data_dir=output_data_dir,
        inference_code=inference_code,
        tensorboard_dir=tensorboard_dir,
        learning_rate=args.learning_rate,
        batch_size=args.batch_size,
        epochs=args.epochs,
        image_size=args.image_size,
        pretrained=args.pretrained,
        val_fraction=args.val_fraction,
        seed=args.seed,
        label_smoothing=args.label_smoothing,
        weight_decay=args.weight_decay,
        momentum=args.momentum,
        warmup_epochs=args.warmup_epochs,
        hidden_units=args.hidden_units,
        dropout=args.dropout,
        freeze_backbone=args.freeze_backbone,
        log_interval=args.log_interval,
        num_workers=args.num_workers,
        num_gpus=_num_gpus(env),
        job_name=_job_name(env),
        amp=args.amp,
        checkpoint_dir=Path(args.checkpoint_dir) if getattr(args, "checkpoint_dir", None) else None,
    )
