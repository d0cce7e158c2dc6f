import os
from pathlib import Path

import pytest

from trainlib import config as config_module
from trainlib.config import DEFAULT_IMAGE_SIZE, build_parser, parse_config
from trainlib.errors import InputError


def parse(argv, env=None):
    return parse_config(argv, "train_model.py", "test", env=env or {})


def test_paths_default_to_the_sagemaker_environment(sm_env):
    config = parse([], env={"TRAINING_JOB_NAME": "cifar100-r1-final"})
    assert config.train == Path(sm_env["SM_CHANNEL_TRAIN"])
    assert config.test == Path(sm_env["SM_CHANNEL_TEST"])
    assert config.model_dir == Path(sm_env["SM_MODEL_DIR"])
    assert config.output_data_dir == Path(sm_env["SM_OUTPUT_DATA_DIR"])
    assert config.inference_code is None
    assert config.job_name == "cifar100-r1-final"


def test_hyperparameters_arrive_as_sagemaker_passes_them(sm_env):
    config = parse(
        [
            "--learning_rate",
            "0.05",
            "--batch_size",
            "64",
            "--epochs",
            "3",
            "--image_size",
            "96",
            "--pretrained",
            '"false"',
            "--_tuning_objective_metric",
            "val_acc",
        ]
    )
    assert config.hyperparameters() == {
        "learning_rate": 0.05,
        "batch_size": 64,
        "epochs": 3,
        "image_size": 96,
        "pretrained": False,
    }


def test_default_image_size_is_not_the_32px_setting(sm_env):
    assert parse([]).image_size == DEFAULT_IMAGE_SIZE >= 96


def test_job_name_falls_back_to_sm_training_env(sm_env):
    assert parse([], env={"SM_TRAINING_ENV": '{"job_name": "from-env"}'}).job_name == "from-env"
    assert parse([]).job_name.startswith("local-")


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["--learning_rate", "fast"], "--learning_rate"),
        (["--learning_rate", "0"], "--learning_rate"),
        (["--learning_rate", "nan"], "--learning_rate"),
        (["--batch_size", "0"], "--batch_size"),
        (["--batch_size", "1.5"], "--batch_size"),
        (["--epochs", "-1"], "--epochs"),
        (["--image_size", "8"], "--image_size"),
        (["--pretrained", "maybe"], "--pretrained"),
        (["--val_fraction", "1"], "--val_fraction"),
        (["--bogus", "1"], "--bogus"),
        (["--inference-code", "/nonexistent/code"], "/nonexistent/code"),
    ],
)
def test_bad_input_is_one_line_naming_it(sm_env, argv, needle):
    with pytest.raises(InputError) as info:
        parse(argv)
    assert needle in str(info.value)
    assert "\n" not in str(info.value)


def test_missing_channel_is_named(monkeypatch):
    monkeypatch.delenv("SM_CHANNEL_TEST", raising=False)
    monkeypatch.setenv("SM_CHANNEL_TRAIN", "/data/train")
    with pytest.raises(InputError, match="no test channel"):
        parse([])


def test_help_documents_every_option():
    text = build_parser("train_model.py", "x").format_help()
    for name in (
        "--learning_rate",
        "--batch_size",
        "--epochs",
        "--image_size",
        "--pretrained",
        "--val_fraction",
        "--seed",
        "--train",
        "--test",
        "--model-dir",
        "--output-data-dir",
        "--inference-code",
        "SM_CHANNEL_TRAIN",
        "SM_MODEL_DIR",
    ):
        assert name in text
    assert "_tuning_objective_metric" not in text  # accepted, but SageMaker's own business


#: Every flag of train_model.py and its default outside SageMaker: the contract scripts,
#: tuning jobs and the local stack already use.
FLAGS = {
    "--learning_rate": 0.01,
    "--batch_size": 128,
    "--epochs": 10,
    "--image_size": DEFAULT_IMAGE_SIZE,
    "--pretrained": True,
    "--val_fraction": 0.1,
    "--seed": 42,
    "--label_smoothing": 0.1,
    "--weight_decay": 5e-4,
    "--momentum": 0.9,
    "--warmup_epochs": 1.0,
    "--hidden_units": 512,
    "--dropout": 0.2,
    "--freeze_backbone": None,  # follows --pretrained
    "--log_interval": 10,
    "--num_workers": 0,
    "--amp": "auto",
    "--data_loading": "auto",
    "--serving_graphs": "int8",
    "--int8_calibration_images": 256,
    "--int8_min_agreement": 0.99,
    "--int8_max_accuracy_drop": 0.005,
    "--_tuning_objective_metric": None,
    "--train": None,
    "--test": None,
    "--model-dir": "model",
    "--output-data-dir": "output",
    "--inference-code": None,
    "--champion": None,
    "--tensorboard-dir": None,
    "--checkpoint-dir": None,
}


def flag_defaults(parser):
    return {
        flag: action.default
        for action in parser._actions
        for flag in action.option_strings
        if flag != "-h" and flag != "--help"
    }


def test_every_flag_keeps_its_name_and_default(monkeypatch):
    for name in [n for n in os.environ if n.startswith("SM_")]:
        monkeypatch.delenv(name)
    monkeypatch.setattr(config_module, "SAGEMAKER_CHECKPOINT_DIR", Path("/nonexistent/ckpt"))
    assert flag_defaults(build_parser("train_model.py", "x")) == FLAGS
    trial = flag_defaults(build_parser("hpo.py", "x", checkpointing=False))
    expected = {k: v for k, v in FLAGS.items() if k not in ("--checkpoint-dir", "--champion")}
    assert trial == {**expected, "--save_model": False}


def test_paths_default_to_the_sm_variables_named_in_help(sm_env):
    parser = build_parser("train_model.py", "x")
    defaults = flag_defaults(parser)
    assert defaults["--train"] == sm_env["SM_CHANNEL_TRAIN"]
    assert defaults["--model-dir"] == sm_env["SM_MODEL_DIR"]
    text = parser.format_help()
    for variable in ("SM_CHANNEL_TEST", "SM_OUTPUT_DATA_DIR", "SM_CHANNEL_INFERENCE_CODE"):
        assert variable in text


def test_records_come_from_the_declarations(sm_env):
    config = parse([])
    assert list(config.hyperparameters()) == [
        "learning_rate",
        "batch_size",
        "epochs",
        "image_size",
        "pretrained",
    ]
    # What a checkpoint must share with the run resuming it (epochs may change).
    assert list(config.resume_settings()) == [
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
    ]


@pytest.mark.parametrize(
    ("argv", "value"),
    [
        (["--learning_rate", "10"], 10.0),
        (["--batch_size", '"4096"'], 4096),
        (["--val_fraction", "0.9"], 0.9),
        (["--momentum", "0"], 0.0),
        (["--amp", '"OFF"'], "off"),
        (["--freeze_backbone", "False"], False),
        (["--pretrained", "'True'"], True),
    ],
)
def test_sagemaker_spellings_and_range_ends_are_accepted(sm_env, argv, value):
    assert getattr(parse(argv), argv[0].removeprefix("--")) == value


@pytest.mark.parametrize(
    "argv",
    [
        ["--learning_rate", "10.5"],
        ["--batch_size", "4097"],
        ["--momentum", "0.9995"],
        ["--dropout", "-0.1"],
        ["--seed", "-1"],
        ["--amp", "fast"],
    ],
)
def test_out_of_range_values_are_refused(sm_env, argv):
    with pytest.raises(InputError, match=argv[0]):
        parse(argv)


def test_empty_optional_paths_are_off_and_tensorboard_follows_the_output_dir(sm_env, tmp_path):
    config = parse(["--inference-code", "", "--tensorboard-dir", "", "--checkpoint-dir", ""])
    assert config.inference_code is None
    assert config.checkpoint_dir is None
    assert config.tensorboard_dir == Path(sm_env["SM_OUTPUT_DATA_DIR"]) / "tensorboard"
    (tmp_path / "code").mkdir()
    assert parse(["--inference-code", str(tmp_path / "code")]).inference_code == tmp_path / "code"


def trial(argv):
    return parse_config(argv, "hpo.py", "test", env={}, checkpointing=False)


@pytest.mark.parametrize(
    ("argv", "saved"),
    [([], False), (["--save_model", "true"], True), (["--save_model", '"True"'], True)],
)
def test_a_trial_saves_its_model_only_when_asked(sm_env, argv, saved):
    assert trial(argv).save_model is saved


def test_the_final_job_always_saves_its_model(sm_env):
    assert parse([]).save_model is True
    with pytest.raises(InputError, match="--save_model"):
        parse(["--save_model", "false"])
    assert "--save_model" not in build_parser("train_model.py", "x").format_help()
    assert "--save_model" in build_parser("hpo.py", "x", checkpointing=False).format_help()


def test_the_champion_channel_is_optional_and_the_final_jobs_alone(sm_env, monkeypatch, tmp_path):
    assert parse([]).champion is None  # a first run: no model in service
    monkeypatch.setenv("SM_CHANNEL_CHAMPION", str(tmp_path / "champion"))
    assert parse([]).champion == tmp_path / "champion"
    assert parse(["--champion", "model.tar.gz"]).champion == Path("model.tar.gz")
    assert parse(["--champion", ""]).champion is None
    assert "SM_CHANNEL_CHAMPION" in build_parser("train_model.py", "x").format_help()
    # Trials never compare: no flag, and the variable is not read.
    assert trial([]).champion is None
    assert "--champion" not in build_parser("hpo.py", "x", checkpointing=False).format_help()
    with pytest.raises(InputError, match="--champion"):
        trial(["--champion", str(tmp_path)])


@pytest.mark.parametrize(
    ("argv", "frozen"),
    [
        ([], True),  # ImageNet weights: the trunk stays frozen, as always
        (["--pretrained", "False"], False),  # a random trunk is trained, not frozen
        (["--pretrained", "false", "--freeze_backbone", "true"], True),  # set: kept
        (["--pretrained", "true", "--freeze_backbone", '"false"'], False),
    ],
)
def test_freeze_backbone_follows_pretrained_unless_set(sm_env, argv, frozen):
    config = parse(argv)
    assert config.freeze_backbone is frozen
    assert config.resume_settings()["freeze_backbone"] is frozen  # what a checkpoint records


@pytest.mark.parametrize(
    ("text", "mode"), [("auto", "auto"), ('"Stream"', "stream"), ("memory", "memory")]
)
def test_data_loading_is_a_library_option(sm_env, text, mode):
    config = parse(["--data_loading", text])
    assert config.data_loading == mode
    assert "data_loading" not in config.resume_settings()  # same batches either way
    with pytest.raises(InputError, match="--data_loading"):
        parse(["--data_loading", "disk"])
