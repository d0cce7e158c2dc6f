"""Small domain pieces: final metrics, best-job reading, error classes, AWS wiring (the gate's
arithmetic is in test_quality_gate.py)."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError
from botocore.retries.standard import ExponentialBackoff

from retraining import aws, aws_errors
from retraining.quality_gate import final_metrics
from retraining.sagemaker.best_job import NoBestJob, best_job
from retraining.settings import Settings
from retraining.stores.dynamo import DynamoRunStore
from tests.support.sagemaker_double import tuning_description


def client_error(code: str, message: str = "", status: int = 400) -> ClientError:
    return ClientError(
        {
            "Error": {"Code": code, "Message": message},
            "ResponseMetadata": {"HTTPStatusCode": status},
        },
        "AnyOperation",
    )


def test_final_metrics_reads_final_metric_data_list():
    description = {
        "FinalMetricDataList": [
            {"MetricName": "test_acc", "Value": 0.7},
            {"MetricName": "test_loss", "Value": 1.1},
        ]
    }
    assert final_metrics(description) == {"test_acc": 0.7, "test_loss": 1.1}
    assert final_metrics({}) == {}


def test_best_job_unquotes_categoricals_and_refuses_a_failed_best():
    description = tuning_description("cifar100-r1", best="cifar100-r1-001-aaaa")
    best = best_job(description)
    assert best.hyperparameters["batch_size"] == "128"
    assert (best.objective_metric, best.objective_value) == ("val_acc", 0.62)
    description["BestTrainingJob"]["TrainingJobStatus"] = "Failed"
    with pytest.raises(NoBestJob, match=r"without a successful trial \(Completed=4\)"):
        best_job(description)


@pytest.mark.parametrize(
    ("error", "retryable", "exists"),
    [
        (client_error("ThrottlingException", "Rate exceeded"), True, False),
        (client_error("ProvisionedThroughputExceededException"), True, False),
        (client_error("InternalFailure", status=500), True, False),
        (client_error("ResourceInUse", "Training job names must be unique"), False, True),
        (client_error("ValidationException", "Cannot create already existing model"), False, True),
        (client_error("ValidationException", "Role is not authorized"), False, False),
        (client_error("AccessDeniedException", "no"), False, False),
        (KeyError("x"), False, False),
    ],
)
def test_error_classes(error, retryable, exists):
    assert aws_errors.is_retryable(error) is retryable
    assert aws_errors.is_already_exists(error) is exists


def test_deps_from_env_builds_configured_clients_lazily(monkeypatch):
    monkeypatch.setenv("RUNS_TABLE", "my-runs")
    monkeypatch.setenv("ENDPOINT_NAME", "my-endpoint")
    monkeypatch.setenv("PREDICT_READ_TIMEOUT_S", "7")
    deps = aws.deps_from_env()
    assert deps.settings.endpoint_name == "my-endpoint"
    assert "sagemaker" not in deps.__dict__  # nothing built until first use
    config = deps.sagemaker.meta.config
    assert config.retries == {"mode": "standard", "total_max_attempts": 3}
    assert (config.connect_timeout, config.read_timeout) == (2.0, 5.0)
    runtime = deps.sagemaker_runtime.meta.config
    assert runtime.read_timeout == 7.0
    assert runtime.retries == {"mode": "standard", "total_max_attempts": 2}
    assert isinstance(deps.store, DynamoRunStore)
    assert deps.store._table == "my-runs"


def test_predict_client_default_stays_inside_api_gateways_29_s(monkeypatch):
    # Standard mode retries a read timeout: every attempt may last connect + read.
    for name in ("PREDICT_READ_TIMEOUT_S", "PREDICT_CONNECT_TIMEOUT_S"):
        monkeypatch.delenv(name, raising=False)
    config = aws.deps_from_env().sagemaker_runtime.meta.config
    attempts = config.retries["total_max_attempts"]
    assert attempts == 2
    assert attempts * (config.connect_timeout + config.read_timeout) <= 24.0


@pytest.mark.parametrize("function_timeout_s", [60.0, 29.0])
def test_control_plane_clients_fit_in_each_functions_timeout(monkeypatch, function_timeout_s):
    """Worst case of one call: every attempt connects and reads to its timeout (standard
    mode retries read timeouts). It must leave the function time to record and raise."""
    monkeypatch.setenv("FUNCTION_TIMEOUT_S", str(function_timeout_s))
    deps = aws.deps_from_env()
    for client in (deps.sagemaker, deps.s3, deps.application_autoscaling):
        config = client.meta.config
        attempts = config.retries["total_max_attempts"]
        # Sleeps between attempts: botocore's ExponentialBackoff, at its longest.
        backoff = ExponentialBackoff(random=lambda: 1.0, throttling_detector=_Throttled(0))
        sleeps = sum(backoff.delay_amount(_Throttled(n)) for n in range(1, attempts))
        worst = attempts * (config.connect_timeout + config.read_timeout) + sleeps
        assert worst <= function_timeout_s - 5.0


class _Throttled:
    """The retry context botocore's back-off reads: attempt n failed with throttling."""

    def __init__(self, attempt_number: int) -> None:
        self.attempt_number = attempt_number
        self.http_response = None

    def is_throttling_error_from_context(self, context: object) -> bool:
        return True  # throttling backs off longest (1 s base, not 50 ms)


def test_client_timeouts_that_outlive_the_function_are_refused():
    # The old wiring: 3 x (2 s + 20 s) + 3 s of back-off = 69 s against a 60 s Lambda timeout.
    with pytest.raises(ValueError, match="69 s leaves less than 5 s"):
        Settings(_env_file=None, aws_read_timeout_s=20.0, function_timeout_s=60)
    with pytest.raises(ValueError, match="FUNCTION_TIMEOUT_S=29"):
        Settings(_env_file=None, aws_read_timeout_s=7.0, function_timeout_s=29)


def test_debugger_on_an_image_without_smdebug_is_refused():
    image = "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-training:2.6.0-gpu-py312"
    with pytest.raises(ValueError, match="ships none"):
        Settings(_env_file=None, debugger_enabled=True, training_image_uri=image)
    custom = "123456789012.dkr.ecr.us-east-1.amazonaws.com/my-training-with-smdebug:1"
    assert Settings(_env_file=None, debugger_enabled=True, training_image_uri=custom)
    assert Settings(_env_file=None, debugger_enabled=False, training_image_uri=image)


def test_predict_timeouts_that_outlive_api_gateway_are_refused():
    with pytest.raises(ValueError, match="exceeds 26 s"):
        Settings(_env_file=None, predict_read_timeout_s=20.0)


@pytest.mark.parametrize("prefix", ["Cifar100", "CIFAR", "1abc", "-abc"])
def test_a_prefix_the_template_refuses_is_refused_here_too(prefix: str) -> None:
    """The template's AllowedPattern ^[a-z][a-z0-9-]{0,9}$: SageMaker lower-cases names in
    ARNs, so an upper-case prefix would slip out of every <prefix>-* IAM scope."""
    with pytest.raises(ValueError, match="resource_prefix"):
        Settings(_env_file=None, resource_prefix=prefix)
