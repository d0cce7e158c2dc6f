"""The training toolkit rewrites hyperparameters before our parser sees them.

sagemaker-training-toolkit (environment.py ``read_hyperparameters``, mapping.py
``to_cmd_args``): each value of hyperparameters.json is JSON-decoded where it can be, then
``str()``-ed onto the command line as sorted ``--name value`` pairs, leaving out the
``sagemaker_*`` keys and ``_tuning_objective_metric``. So the ``"true"`` our requests send
arrives as ``True``, ``'"128"'`` as ``128``, ``"0.0123"`` as ``0.0123``. The parser must take
what arrives, for exactly the requests the orchestration builds.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from retraining.overrides import TuneOverrides
from retraining.sagemaker import request_bodies
from retraining.settings import Settings
from trainlib.config import parse_bool, parse_config


def toolkit_argv(hyperparameters: dict[str, str]) -> list[str]:
    """The command line the toolkit builds from a job's HyperParameters."""
    decoded: dict[str, Any] = {}
    for key, value in hyperparameters.items():
        try:
            decoded[key] = json.loads(value)
        except ValueError:
            decoded[key] = value
    passed = {
        k: v
        for k, v in decoded.items()
        if not k.startswith("sagemaker_") and k != "_tuning_objective_metric"
    }
    return [part for key in sorted(passed) for part in (f"--{key}", str(passed[key]))]


@pytest.mark.parametrize(("spelt", "meant"), [("True", True), ("False", False)])
def test_the_toolkits_spelling_of_a_boolean_is_accepted(spelt: str, meant: bool) -> None:
    sent = request_bodies.static_hyperparameters(_settings(meant), "x.py")["pretrained"]
    assert toolkit_argv({"pretrained": sent}) == ["--pretrained", spelt]  # "true" -> True
    assert parse_bool(spelt) is meant


def _settings(pretrained: bool) -> Settings:
    return Settings(
        _env_file=None,
        artifact_bucket="cifar100-artifacts",
        training_source_s3_uri="s3://cifar100-artifacts/code/training/0/sourcedir.tar.gz",
        pretrained=pretrained,
    )


#: The best trial's values as DescribeHyperParameterTuningJob returns them: categorical
#: values JSON-quoted, the objective metric under a leading underscore.
TUNED = {
    "learning_rate": "0.0123",
    "batch_size": '"128"',
    "epochs": "6",
    "_tuning_objective_metric": "val_acc",
}


@pytest.mark.parametrize("pretrained", [True, False])
def test_the_final_jobs_hyperparameters_parse_as_sent(sm_env: Any, pretrained: bool) -> None:
    settings = _settings(pretrained)
    request = request_bodies.final_training_request(
        settings, "r20260101000000abcd", TuneOverrides(), TUNED
    )
    argv = toolkit_argv(request["HyperParameters"])
    assert ("--pretrained", str(pretrained)) in zip(argv[::2], argv[1::2], strict=True)
    config = parse_config(argv, "train_model.py", "test", env={})
    assert config.hyperparameters() == {
        "learning_rate": 0.0123,
        "batch_size": 128,
        "epochs": 6,
        "image_size": settings.image_size,
        "pretrained": pretrained,
    }


@pytest.mark.parametrize("pretrained", [True, False])
def test_a_tuning_trials_hyperparameters_parse_as_sent(sm_env: Any, pretrained: bool) -> None:
    """A trial gets the static hyperparameters plus one value from each range, SageMaker
    spelling a categorical value as given (``"128"``) and numbers as decimal strings."""
    settings = _settings(pretrained)
    request = request_bodies.tuning_job_request(settings, "r20260101000000abcd", TuneOverrides())
    static = request["TrainingJobDefinition"]["StaticHyperParameters"]
    ranges = request["HyperParameterTuningJobConfig"]["ParameterRanges"]
    trial = {
        **static,
        "learning_rate": ranges["ContinuousParameterRanges"][0]["MaxValue"],
        "epochs": ranges["IntegerParameterRanges"][0]["MinValue"],
        "batch_size": json.dumps(ranges["CategoricalParameterRanges"][0]["Values"][0]),
        "_tuning_objective_metric": "val_acc",
    }
    # The hyperparameter options are the same for both entry points (trainlib.config).
    config = parse_config(toolkit_argv(trial), "hpo.py", "test", env={})
    assert config.pretrained is pretrained
    assert config.learning_rate == float(ranges["ContinuousParameterRanges"][0]["MaxValue"])
    assert config.batch_size == int(ranges["CategoricalParameterRanges"][0]["Values"][0])
