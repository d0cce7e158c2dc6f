"""Command line and SageMaker environment contract (docs/contracts.md, "Training entry points").

Every hyperparameter arrives as ``--name value`` (SageMaker script mode); every path has a
flag whose default is the matching ``SM_*`` variable, so the scripts also run on a laptop.

Each option is declared once, as a ``TrainConfig`` field whose metadata holds an ``Option``;
the parser, the hyperparameters dict and the resume settings are all read from those fields.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import MISSING, Field, dataclass, field, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, TypeVar

from trainlib.errors import InputError

#: Default input side. 32x32 through the ImageNet stem ends in a 1x1 feature map, which capped
#: the original project at 40.71%; 128 keeps a 4x4 map for layer4 at a third of 224's cost.
DEFAULT_IMAGE_SIZE = 128

_TRUE = {"true", "1", "yes", "y", "on"}
_FALSE = {"false", "0", "no", "n", "off"}

#: --amp choices: mixed precision on CUDA (as always) and on CPUs with native bf16 / forced / never.
AMP_MODES = ("auto", "on", "off")

#: --data_loading choices (trainlib.data): auto (memory unless the ImageFolder channels are too
#: big), memory, stream (ImageFolder channels only: the CIFAR pickles are read whole either way).
DATA_LOADING_MODES = ("auto", "memory", "stream")

#: --serving_graphs choices (trainlib.serving_graphs): what ONNX graphs the artifact ships
#: beside model.pt, and the int8 guard's defaults.
SERVING_GRAPH_MODES = ("int8", "fp32", "none")
INT8_MIN_AGREEMENT = 0.99
INT8_MAX_ACCURACY_DROP = 0.005
INT8_CALIBRATION_IMAGES = 256

#: CheckpointConfig's default LocalPath: SageMaker creates it only when the job has one.
SAGEMAKER_CHECKPOINT_DIR = Path("/opt/ml/checkpoints")

# --help groups, in the order they are shown.
HYPERPARAMETERS = "hyperparameters (SageMaker passes them as --name value)"
LIBRARY = "library options"
PATHS = "paths (defaults: the SageMaker environment)"
_GROUPS = (HYPERPARAMETERS, LIBRARY, PATHS)

#: The two entry points: train_model.py (the final job) and hpo.py (a tuning trial).
Job = Literal["final", "trial"]
T = TypeVar("T")

_OPTION = "option"  # the metadata key of a field that is a command-line option
_FIELD_DEFAULT: Any = object()  # Option.cli_default unset: the flag defaults to the field's


def _strip_quotes(text: str) -> str:
    # The SageMaker SDK JSON-encodes string hyperparameters ('"true"'); accept both forms.
    return text.strip().strip('"').strip("'")


def parse_bool(text: str) -> bool:
    # lower(): the training toolkit spells Python booleans True / False.
    value = _strip_quotes(text).lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def _ranged(
    kind: type[int] | type[float], low: float, high: float, *, low_open: bool = False
) -> Callable[[str], float]:
    """An argparse type that parses ``kind`` and checks ``low <(=) value <= high``."""

    def parse(text: str) -> float:
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


def _lowercase(text: str) -> str:
    return _strip_quotes(text).lower()


def default_checkpoint_dir() -> Path | None:
    return SAGEMAKER_CHECKPOINT_DIR if SAGEMAKER_CHECKPOINT_DIR.is_dir() else None


@dataclass(frozen=True)
class Option:
    """How a ``TrainConfig`` field appears on the command line and in the records."""

    help: str
    group: str
    parse: Callable[[str], Any] = str  # argparse ``type``; paths stay text until parse_config
    choices: tuple[str, ...] | None = None
    #: The ``SM_*`` variable whose value is the flag's default (named in --help too).
    env: str | None = None
    #: The flag's default when it is not the field's (or the variable is unset); a callable
    #: is called when the parser is built, so it sees the machine it runs on.
    cli_default: Any = _FIELD_DEFAULT
    hyperparameter: bool = False  # recorded in metadata.json and metrics.json
    resume: bool = False  # must equal the checkpoint's value to resume from it
    #: Only this entry point has the flag; the other one always gets the field's default.
    job: Job | None = None

    def flag(self, name: str) -> str:
        # SageMaker passes hyperparameters under their own names; paths keep the dashed flags
        # of the original scripts (--model-dir, --output-data-dir).
        return "--" + (name.replace("_", "-") if self.group == PATHS else name)


def _hyper(default: T, help: str, parse: Callable[[str], Any], *, resume: bool = True) -> T:
    """A documented hyperparameter; all but ``epochs`` must match a resumed checkpoint."""
    option = Option(help, HYPERPARAMETERS, parse, hyperparameter=True, resume=resume)
    return field(default=default, metadata={_OPTION: option})


def _lib(
    default: T,
    help: str,
    parse: Callable[[str], Any],
    *,
    resume: bool = False,
    choices: tuple[str, ...] | None = None,
    cli_default: Any = _FIELD_DEFAULT,
    job: Job | None = None,
) -> T:
    option = Option(help, LIBRARY, parse, choices, resume=resume, cli_default=cli_default, job=job)
    return field(default=default, metadata={_OPTION: option})


def _path(
    help: str, *, env: str | None = None, cli_default: Any = None, job: Job | None = None
) -> dict[str, Option]:
    """``field`` metadata of a path flag (text until parse_config makes it a Path)."""
    return {_OPTION: Option(help, PATHS, env=env, cli_default=cli_default, job=job)}


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    """Everything a run needs, validated. Field order is --help's order within each group."""

    learning_rate: float = _hyper(
        0.01,
        "peak learning rate of SGD after warm-up, for one process; under torchrun it is "
        "multiplied by the number of processes (linear scaling rule)",
        _ranged(float, 0, 10, low_open=True),
    )
    batch_size: int = _hyper(
        128,
        "images per step of one process; under torchrun each process takes this many, "
        "so the global batch is batch_size x processes",
        _ranged(int, 1, 4096),
    )
    # resume=False: a resumed run may be given more epochs (or fewer, down to its own).
    epochs: int = _hyper(10, "passes over the training split", _ranged(int, 1, 1000), resume=False)
    image_size: int = _hyper(
        DEFAULT_IMAGE_SIZE,
        "input side in pixels; images are resized to image_size x image_size",
        _ranged(int, 16, 1024),
    )
    pretrained: bool = _hyper(
        True,
        "start from torchvision's ImageNet weights (ResNet34_Weights.IMAGENET1K_V1)",
        parse_bool,
    )
    val_fraction: float = _lib(
        0.1,
        "share of each class in the training channel held out for validation (HPO objective)",
        _ranged(float, 0, 0.9, low_open=True),
        resume=True,
    )
    seed: int = _lib(
        42,
        "seed for the validation split, initialisation and batch order",
        _ranged(int, 0, 2**31 - 1),
        resume=True,
    )
    label_smoothing: float = _lib(
        0.1, "label smoothing of the training loss", _ranged(float, 0, 0.5), resume=True
    )
    weight_decay: float = _lib(5e-4, "SGD weight decay", _ranged(float, 0, 1), resume=True)
    momentum: float = _lib(0.9, "SGD Nesterov momentum", _ranged(float, 0, 0.999), resume=True)
    warmup_epochs: float = _lib(
        1.0,
        "linear warm-up length (capped at a fifth of the run), then cosine decay",
        _ranged(float, 0, 100),
        resume=True,
    )
    hidden_units: int = _lib(
        512,
        "width of the head's hidden layer (Linear-ReLU-Dropout-Linear)",
        _ranged(int, 1, 8192),
        resume=True,
    )
    dropout: float = _lib(0.2, "dropout in the head", _ranged(float, 0, 0.95), resume=True)
    # None: follows pretrained (a randomly initialised trunk is trained, not frozen).
    freeze_backbone: bool | None = _lib(
        None,
        "freeze the stem and layer1-3 and run them without autograd (default: the value of "
        "--pretrained: ImageNet weights are kept frozen, a random trunk is trained)",
        parse_bool,
        resume=True,
    )
    log_interval: int = _lib(10, "print a batch metric line every N steps", _ranged(int, 1, 100000))
    num_workers: int = _lib(0, "CPU threads for torch (0: torch's default)", _ranged(int, 0, 64))
    amp: str = _lib(
        "auto",
        "mixed precision: auto = on for CUDA (bf16, else fp16) and on CPUs with native bf16 "
        "(AVX512-BF16 / AMX / Arm BF16), where the forward pass runs under bf16 autocast (loss, "
        "gradients, optimizer and the exported model stay fp32); on = also on other CPUs "
        "(emulated, slow); off = fp32 everywhere",
        _lowercase,
        choices=AMP_MODES,
    )
    data_loading: str = _lib(
        "auto",
        "how ImageFolder channels are held: memory = decoded once into memory (the fast "
        "path); stream = decoded batch by batch by DataLoader workers (data larger than "
        "memory); auto = stream when the channels' estimated decoded size, times the "
        "processes on this machine, is over a quarter of the available memory. The CIFAR "
        "pickles are always read into memory. Same batches and metrics either way",
        _lowercase,
        choices=DATA_LOADING_MODES,
    )
    serving_graphs: str = _lib(
        "int8",
        "ONNX graphs shipped beside model.pt for the endpoint's ONNX Runtime backend: int8 = "
        "model.onnx (fp32) and model.int8.onnx (static quantization calibrated on "
        "--int8_calibration_images validation images), the int8 one only if it passes "
        "--int8_min_agreement and --int8_max_accuracy_drop on the validation split; fp32 = "
        "model.onnx only; none = model.pt only (the endpoint exports at load)",
        _lowercase,
        choices=SERVING_GRAPH_MODES,
    )
    int8_calibration_images: int = _lib(
        INT8_CALIBRATION_IMAGES,
        "validation images the int8 graph's activation ranges are calibrated on",
        _ranged(int, 1, 100_000),
    )
    int8_min_agreement: float = _lib(
        INT8_MIN_AGREEMENT,
        "least share of validation images on which int8's top-1 must equal fp32's",
        _ranged(float, 0, 1),
    )
    int8_max_accuracy_drop: float = _lib(
        INT8_MAX_ACCURACY_DROP,
        "most validation accuracy int8 may lose against fp32, as a fraction (0.005 = half a point)",
        _ranged(float, 0, 1),
    )
    # True for the final job, which has no flag: its artifact is what gets deployed.
    save_model: bool = _lib(
        True,
        "also write the model artifact (model.pt, classes.json, metadata.json: ~83 MB at 100 "
        "classes) to --model-dir. Off by default because nothing uses a trial's weights: the "
        "run's final job (train_model.py) retrains with the best trial's hyperparameters. Off, "
        "the model dir stays empty; the trial's results are its metric lines and "
        "<output-data-dir>/metrics.json",
        parse_bool,
        cli_default=False,
        job="trial",
    )
    train: Path = field(metadata=_path("training channel", env="SM_CHANNEL_TRAIN"))
    test: Path = field(metadata=_path("test channel", env="SM_CHANNEL_TEST"))
    model_dir: Path = field(
        metadata=_path("where the model artifact goes", env="SM_MODEL_DIR", cli_default="model")
    )
    output_data_dir: Path = field(
        metadata=_path("metrics.json, curves", env="SM_OUTPUT_DATA_DIR", cli_default="output")
    )
    # Optional paths default to None, and '' turns them off.
    inference_code: Path | None = field(
        default=None,
        metadata=_path(
            "optional: files copied to <model dir>/code/", env="SM_CHANNEL_INFERENCE_CODE"
        ),
    )
    # Trials never compare: only the final job's result goes through the quality gate.
    champion: Path | None = field(
        default=None,
        metadata=_path(
            "optional: the model in service, evaluated on the same test images as the new "
            "model (exact McNemar test, evaluation.json): a folder holding its model.tar.gz, "
            "the tarball itself, or an unpacked artifact (model.pt, metadata.json, "
            "classes.json); absent on a first run",
            env="SM_CHANNEL_CHAMPION",
            job="final",
        ),
    )
    tensorboard_dir: Path = field(
        metadata=_path(
            "TensorBoard event files (default: /opt/ml/output/tensorboard in "
            "SageMaker, else <output-data-dir>/tensorboard)"
        )
    )
    # Trials never checkpoint: all trials of a tuning job share one CheckpointConfig.
    checkpoint_dir: Path | None = field(
        default=None,
        metadata=_path(
            "save a checkpoint at the end of every epoch and resume from it at start "
            f"(managed spot training); default: {SAGEMAKER_CHECKPOINT_DIR} when SageMaker "
            "created it (the job has a CheckpointConfig), else off; '' turns it off",
            cli_default=default_checkpoint_dir,
            job="final",
        ),
    )
    # From the environment only: SageMaker sets it, no flag does.
    job_name: str

    def __post_init__(self) -> None:
        if self.freeze_backbone is None:  # unset: follow pretrained
            object.__setattr__(self, "freeze_backbone", self.pretrained)

    def resume_settings(self) -> dict[str, float | int | bool]:
        return {f.name: getattr(self, f.name) for f, o in _options() if o.resume}

    def hyperparameters(self) -> dict[str, float | int | bool]:
        """The documented hyperparameters, as metadata.json records them."""
        return {f.name: getattr(self, f.name) for f, o in _options() if o.hyperparameter}


def _options() -> Iterator[tuple[Field[Any], Option]]:
    """Every option field with its Option, in declaration order."""
    for f in fields(TrainConfig):
        if _OPTION in f.metadata:
            yield f, f.metadata[_OPTION]


class _Parser(argparse.ArgumentParser):
    """argparse that raises InputError instead of printing usage and exiting."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise InputError(message)


def _flag_default(f: Field[Any], option: Option) -> Any:
    default = option.cli_default
    if default is _FIELD_DEFAULT:
        default = f.default
    elif callable(default):
        default = default()
    if option.env:
        # Read when the parser is built (not at import), like the toolkit's environment.
        default = os.environ.get(option.env, default)
    if f.default is None and not default:  # an optional path set to '' is unset (None)
        default = None
    return default


def _job(checkpointing: bool) -> Job:
    # Only the final job checkpoints, so the flag that has always told the two apart says it.
    return "final" if checkpointing else "trial"


def build_parser(
    prog: str, description: str, *, checkpointing: bool = True
) -> argparse.ArgumentParser:
    """train_model.py's parser; hpo.py's (no --checkpoint-dir, --save_model) without
    ``checkpointing``."""
    p = _Parser(
        prog=prog,
        description=description,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        allow_abbrev=False,
    )
    groups = {title: p.add_argument_group(title) for title in _GROUPS}
    for f, option in _options():
        if option.job not in (None, _job(checkpointing)):
            continue
        help_text = f"{option.help} ({option.env})" if option.env else option.help
        groups[option.group].add_argument(
            option.flag(f.name),
            type=option.parse,
            choices=option.choices,
            default=_flag_default(f, option),
            help=help_text,
        )
    # SageMaker adds it to every trial's hyperparameters; accepted and ignored.
    groups[LIBRARY].add_argument("--_tuning_objective_metric", default=None, help=argparse.SUPPRESS)
    return p


def _job_name(env: Mapping[str, str]) -> str:
    if env.get("TRAINING_JOB_NAME"):
        return env["TRAINING_JOB_NAME"]
    try:
        name = json.loads(env.get("SM_TRAINING_ENV", "{}")).get("job_name")
    except (ValueError, AttributeError):
        name = None
    return name or "local-" + datetime.now(UTC).strftime("%Y%m%d%H%M%S")


def parse_config(
    argv: Sequence[str] | None,
    prog: str,
    description: str,
    env: Mapping[str, str] | None = None,
    *,
    checkpointing: bool = True,
) -> TrainConfig:
    """Parse and validate; raises InputError with a one-line message on any bad input.

    ``env`` supplies the job name; the path defaults come from ``os.environ``
    when the parser is built, as in the container.
    """
    env = os.environ if env is None else env
    args = vars(build_parser(prog, description, checkpointing=checkpointing).parse_args(argv))
    for channel in ("train", "test"):
        if not args[channel]:
            raise InputError(
                f"no {channel} channel: pass --{channel} or set SM_CHANNEL_{channel.upper()}"
            )
    values: dict[str, Any] = {}
    for f, option in _options():
        if f.name not in args:  # the other entry point's option: the field default stays
            continue
        value = args[f.name]
        if option.group == PATHS and value is not None:
            # '' turns an optional path (default None) off; a required one is a Path as given.
            value = Path(value) if value or f.default is MISSING else None
        values[f.name] = value
    if not args["tensorboard_dir"]:
        if Path("/opt/ml/output").is_dir():  # SageMaker's TensorBoardOutputConfig LocalPath
            values["tensorboard_dir"] = Path("/opt/ml/output/tensorboard")
        else:
            values["tensorboard_dir"] = values["output_data_dir"] / "tensorboard"
    inference_code = values["inference_code"]
    if inference_code is not None and not inference_code.is_dir():
        raise InputError(f"inference code directory {inference_code} does not exist")
    return TrainConfig(**values, job_name=_job_name(env))
