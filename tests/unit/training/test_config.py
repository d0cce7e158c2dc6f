from pathlib import Path

import pytest

from trainlib.config import DEFAULT_IMAGE_SIZE, build_parser, parse_config
from trainlib.errors import InputError


def parse(argv, env=None):
    return parse_config(argv, "train_model.py", "test", env=env or {})


def test_paths_default_to_the_sagemaker_environment(sm_env):
    config = parse([], env={"TRAINING_JOB_NAME": "cifar100-r1-final", "SM_NUM_GPUS": "4"})
    assert config.train == Path(sm_env["SM_CHANNEL_TRAIN"])
    assert config.test == Path(sm_env["SM_CHANNEL_TEST"])
    assert config.model_dir == Path(sm_env["SM_MODEL_DIR"])
    assert config.output_data_dir == Path(sm_env["SM_OUTPUT_DATA_DIR"])
    assert config.inference_code is None
    assert config.job_name == "cifar100-r1-final"
    assert config.num_gpus == 4


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
