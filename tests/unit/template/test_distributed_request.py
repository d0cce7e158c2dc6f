"""The final training job's distributed request, against the SageMaker Python SDK's own.

The SDK's PyTorch estimator with ``distribution={"torch_distributed": {"enabled": True}}`` is
how AWS documents launching torchrun in the PyTorch container; the orchestration writes the
request by hand, so its switch, instance count and channel distribution are compared with
what the pinned SDK (``.sam-venv/sagemaker``) builds offline for the same job.
"""

from __future__ import annotations

import json
from typing import Any

import botocore.session
import pytest
from botocore.validate import validate_parameters

from retraining.overrides import TuneOverrides
from retraining.sagemaker import request_bodies
from tests.support.sagemaker_double import make_settings

SDK_REQUEST = "scripts/sdk_training_request.py"
SDK_PYTHON = ".sam-venv/sagemaker/bin/python"
TUNED = {"learning_rate": "0.01", "batch_size": '"64"', "epochs": "4"}


CASES = [("ml.g5.12xlarge", 2), ("ml.g5.12xlarge", 1), ("ml.p4d.24xlarge", 4), ("ml.c5.2xlarge", 2)]


@pytest.fixture(scope="module")
def sdk(tools: Any) -> dict[tuple[str, int, bool], dict[str, Any]]:
    """The SDK's requests, all built in one run of the SDK (its import takes seconds)."""
    cases = [(t, n, True) for t, n in CASES] + [("ml.m5.xlarge", 1, False)]
    flags = [
        arg
        for t, n, distributed in cases
        for arg in ("--case", f"{t}:{n}" + (":torch_distributed" if distributed else ""))
    ]
    result = tools.run(tools.repo / SDK_PYTHON, tools.repo / SDK_REQUEST, *flags)
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.splitlines()[-len(cases) :]
    return {case: json.loads(line) for case, line in zip(cases, lines, strict=True)}


def ours(instance_type: str, count: int) -> dict[str, Any]:
    settings = make_settings(training_instance_type=instance_type, training_instance_count=count)
    request = request_bodies.final_training_request(
        settings, "r20261202000000abcd", TuneOverrides(), TUNED, "s3://b/champion/model.tar.gz"
    )
    model = botocore.session.get_session().get_service_model("sagemaker")
    validate_parameters(request, model.operation_model("CreateTrainingJob").input_shape)
    return request


DISTRIBUTION_KEYS = ("sagemaker_torch_distributed_enabled", "sagemaker_instance_type")


@pytest.mark.parametrize(("instance_type", "count"), CASES)
def test_a_distributed_final_job_asks_for_torchrun_as_the_sdk_does(
    sdk: dict[tuple[str, int, bool], dict[str, Any]], instance_type: str, count: int
) -> None:
    expected = sdk[(instance_type, count, True)]
    request = ours(instance_type, count)
    assert request["ResourceConfig"]["InstanceCount"] == expected["ResourceConfig"]["InstanceCount"]
    assert request["ResourceConfig"]["InstanceType"] == expected["ResourceConfig"]["InstanceType"]
    for key in DISTRIBUTION_KEYS:  # the same switch, encoded the same way
        assert request["HyperParameters"][key] == expected["HyperParameters"][key], key
    # Every instance gets all the data, as the SDK's default: the ranks shard it themselves.
    distribution = {
        c["DataSource"]["S3DataSource"]["S3DataDistributionType"]
        for c in expected["InputDataConfig"]
    }
    assert distribution == {"FullyReplicated"}
    assert {
        c["DataSource"]["S3DataSource"]["S3DataDistributionType"]
        for c in request["InputDataConfig"]
    } == distribution


def test_one_cpu_instance_gets_no_launcher_as_without_a_distribution(
    sdk: dict[tuple[str, int, bool], dict[str, Any]],
) -> None:
    expected = sdk[("ml.m5.xlarge", 1, False)]
    request = ours("ml.m5.xlarge", 1)
    for key in DISTRIBUTION_KEYS:
        assert key not in expected["HyperParameters"]
        assert key not in request["HyperParameters"]
    assert request["ResourceConfig"]["InstanceCount"] == 1


def test_tuning_trials_stay_on_one_instance() -> None:
    settings = make_settings(training_instance_count=4, training_instance_type="ml.g5.12xlarge")
    request = request_bodies.tuning_job_request(settings, "r20261202000000abcd", TuneOverrides())
    definition = request["TrainingJobDefinition"]
    assert definition["ResourceConfig"]["InstanceCount"] == 1
    assert not set(DISTRIBUTION_KEYS) & set(definition["StaticHyperParameters"])
