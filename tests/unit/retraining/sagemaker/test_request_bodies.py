"""Request builders: the fields that decide what SageMaker does, checked one by one and
validated against botocore's service model."""

from __future__ import annotations

import re

import boto3
import pytest
from botocore.validate import validate_parameters
from pydantic import ValidationError

import metric_definitions
from retraining.overrides import TuneOverrides
from retraining.records import new_run_id
from retraining.sagemaker import names, request_bodies
from retraining.settings import Settings
from tests.support.sagemaker_double import T, make_settings, model_artifact, package_arn

RUN_ID = new_run_id(T)
BEST = {
    "learning_rate": "0.0123",
    "batch_size": "128",
    "epochs": "6",
    "_tuning_objective_metric": "val_acc",
}
_MODEL = boto3.client("sagemaker", region_name="us-east-1").meta.service_model


def assert_valid(operation: str, request: dict) -> None:
    validate_parameters(request, _MODEL.operation_model(operation).input_shape)


def test_tuning_request_searches_the_documented_space():
    request = request_bodies.tuning_job_request(make_settings(), RUN_ID, TuneOverrides())
    assert_valid("CreateHyperParameterTuningJob", request)
    config = request["HyperParameterTuningJobConfig"]
    assert config["Strategy"] == "Bayesian"
    assert config["TrainingJobEarlyStoppingType"] == "Auto"
    assert config["HyperParameterTuningJobObjective"] == {
        "Type": "Maximize",
        "MetricName": "val_acc",
    }
    assert config["ResourceLimits"] == {"MaxNumberOfTrainingJobs": 8, "MaxParallelTrainingJobs": 2}
    ranges = config["ParameterRanges"]
    assert ranges["ContinuousParameterRanges"] == [
        {
            "Name": "learning_rate",
            "MinValue": "0.0001",
            "MaxValue": "0.1",
            "ScalingType": "Logarithmic",
        }
    ]
    assert ranges["CategoricalParameterRanges"] == [
        {"Name": "batch_size", "Values": ["64", "128", "256"]}
    ]
    assert ranges["IntegerParameterRanges"][0]["Name"] == "epochs"
    assert "WarmStartConfig" not in request
    assert request["HyperParameterTuningJobName"] == f"cifar100-{RUN_ID}"
    assert len(request["HyperParameterTuningJobName"]) <= 32
    assert {"Key": "stage", "Value": "hpo"} in request["Tags"]
    assert {"Key": "run-id", "Value": RUN_ID} in request["Tags"]


def test_tuning_trials_run_hpo_py_from_the_uploaded_source_and_read_the_shared_regexes():
    settings = make_settings()
    definition = request_bodies.tuning_job_request(settings, RUN_ID, TuneOverrides())[
        "TrainingJobDefinition"
    ]
    static = definition["StaticHyperParameters"]
    assert static["sagemaker_program"] == "hpo.py"
    assert static["sagemaker_submit_directory"] == settings.training_source_s3_uri
    assert static["image_size"] == "128"
    assert static["pretrained"] == "true"
    metrics = definition["AlgorithmSpecification"]["MetricDefinitions"]
    assert metrics == metric_definitions.TUNING_METRIC_DEFINITIONS
    # The objective is among them, and its regex reads the line training prints.
    (objective,) = [m for m in metrics if m["Name"] == "val_acc"]
    line = metric_definitions.format_metrics(epoch=3, train_loss=1.2, val_loss=1.4, val_acc=0.6125)
    assert float(re.search(objective["Regex"], line).group(1)) == pytest.approx(0.6125)
    channels = [c["ChannelName"] for c in definition["InputDataConfig"]]
    assert channels == ["train", "test"]
    assert "EnableManagedSpotTraining" not in definition


def test_overrides_narrow_the_search():
    overrides = TuneOverrides(
        max_jobs=3,
        max_parallel_jobs=3,
        epochs={"min": 2, "max": 4},
        learning_rate={"min": 0.001, "max": 0.05},
        batch_sizes=[256, 32, 32],
        instance_type="ml.g4dn.xlarge",
    )
    request = request_bodies.tuning_job_request(make_settings(), RUN_ID, overrides)
    assert_valid("CreateHyperParameterTuningJob", request)
    config = request["HyperParameterTuningJobConfig"]
    assert config["ResourceLimits"] == {"MaxNumberOfTrainingJobs": 3, "MaxParallelTrainingJobs": 3}
    ranges = config["ParameterRanges"]
    assert ranges["IntegerParameterRanges"][0]["MinValue"] == "2"
    assert ranges["IntegerParameterRanges"][0]["MaxValue"] == "4"
    assert ranges["ContinuousParameterRanges"][0]["MinValue"] == "0.001"
    assert ranges["CategoricalParameterRanges"][0]["Values"] == ["32", "256"]
    assert request["TrainingJobDefinition"]["ResourceConfig"]["InstanceType"] == "ml.g4dn.xlarge"


def test_the_stack_settings_set_the_default_search_space(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("TUNE_LEARNING_RATE_MIN", "0.01")
    monkeypatch.setenv("TUNE_LEARNING_RATE_MAX", "0.2")
    monkeypatch.setenv("TUNE_EPOCHS_MIN", "1")
    monkeypatch.setenv("TUNE_EPOCHS_MAX", "3")
    monkeypatch.setenv("TUNE_BATCH_SIZES", "32, 16")
    request = request_bodies.tuning_job_request(make_settings(), RUN_ID, TuneOverrides())
    assert_valid("CreateHyperParameterTuningJob", request)
    ranges = request["HyperParameterTuningJobConfig"]["ParameterRanges"]
    assert ranges["ContinuousParameterRanges"][0]["MinValue"] == "0.01"
    assert ranges["ContinuousParameterRanges"][0]["MaxValue"] == "0.2"
    assert ranges["IntegerParameterRanges"][0]["MinValue"] == "1"
    assert ranges["IntegerParameterRanges"][0]["MaxValue"] == "3"
    assert ranges["CategoricalParameterRanges"][0]["Values"] == ["16", "32"]


@pytest.mark.parametrize(
    ("name", "value", "words"),
    [
        ("TUNE_LEARNING_RATE_MIN", "0.5", "TUNE_LEARNING_RATE_MIN must be below"),
        ("TUNE_EPOCHS_MIN", "20", "TUNE_EPOCHS_MIN must not exceed"),
        ("TUNE_BATCH_SIZES", "0,64", "TUNE_BATCH_SIZES must be 1 to 1024"),
    ],
)
def test_an_inconsistent_default_search_space_is_refused(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, words: str
):
    monkeypatch.setenv(name, value)
    with pytest.raises(ValueError, match=words):
        make_settings()


def test_parallel_jobs_never_exceed_jobs_when_only_one_is_overridden():
    request = request_bodies.tuning_job_request(make_settings(), RUN_ID, TuneOverrides(max_jobs=1))
    limits = request["HyperParameterTuningJobConfig"]["ResourceLimits"]
    assert limits == {"MaxNumberOfTrainingJobs": 1, "MaxParallelTrainingJobs": 1}


def test_spot_training_checkpoints_to_s3_and_waits_longer_than_it_runs():
    settings = make_settings(spot_training=True, max_runtime_s=7200, spot_max_wait_s=3600)
    tuning = request_bodies.tuning_job_request(settings, RUN_ID, TuneOverrides())
    final = request_bodies.final_training_request(settings, RUN_ID, TuneOverrides(), BEST)
    assert_valid("CreateHyperParameterTuningJob", tuning)
    assert_valid("CreateTrainingJob", final)
    trials = tuning["TrainingJobDefinition"]
    for job in (trials, final):
        assert job["EnableManagedSpotTraining"] is True
        assert job["StoppingCondition"] == {
            "MaxRuntimeInSeconds": 7200,
            "MaxWaitTimeInSeconds": 7200,
        }
    assert final["CheckpointConfig"] == {
        "S3Uri": f"s3://cifar100-artifacts/runs/{RUN_ID}/checkpoints/final",
        "LocalPath": "/opt/ml/checkpoints",
    }
    # One CheckpointConfig would be shared by every trial: trials restart instead.
    assert "CheckpointConfig" not in trials


def test_final_job_drops_sagemakers_internal_hyperparameters():
    request = request_bodies.final_training_request(make_settings(), RUN_ID, TuneOverrides(), BEST)
    assert "_tuning_objective_metric" not in request["HyperParameters"]
    assert request["HyperParameters"]["sagemaker_program"] == "train_model.py"


def test_debugger_on_records_every_epoch_runs_the_rules_and_profiles():
    settings = make_settings(
        debugger_enabled=True,
        debugger_tensor_save_interval=50,
        training_image_uri="123456789012.dkr.ecr.us-east-1.amazonaws.com/training-with-smdebug:1",
    )
    request = request_bodies.final_training_request(settings, RUN_ID, TuneOverrides(), BEST)
    assert_valid("CreateTrainingJob", request)
    hook = request["DebugHookConfig"]
    assert hook["S3OutputPath"] == f"s3://cifar100-artifacts/runs/{RUN_ID}/debug/tensors"
    collections = {
        c["CollectionName"]: c["CollectionParameters"] for c in hook["CollectionConfigurations"]
    }
    # save_interval counts steps: scalars every step means every epoch's value is kept.
    assert collections["losses"] == {"train.save_interval": "1", "eval.save_interval": "1"}
    assert collections["metrics"] == {"train.save_interval": "1", "eval.save_interval": "1"}
    assert collections["weights"] == {"save_interval": "50"}
    assert collections["gradients"] == {"save_interval": "50"}
    rules = {r["RuleParameters"]["rule_to_invoke"]: r for r in request["DebugRuleConfigurations"]}
    assert set(rules) >= {
        "LossNotDecreasing",
        "Overfit",
        "VanishingGradient",
        "PoorWeightInitialization",
    }
    assert {r["RuleEvaluatorImage"] for r in rules.values()} == {settings.debugger_rule_image_uri}
    assert request["ProfilerConfig"]["S3OutputPath"].endswith("/debug/profiler")
    assert request["ProfilerRuleConfigurations"][0]["RuleParameters"] == {
        "rule_to_invoke": "ProfilerReport"
    }


def test_canary_rollout_and_no_alarms():
    settings = make_settings(
        deployment_strategy="canary", canary_percent=20, canary_wait_s=600, rollback_alarm_names=""
    )
    request = request_bodies.update_endpoint_request(settings, RUN_ID)
    assert_valid("UpdateEndpoint", request)
    policy = request["DeploymentConfig"]["BlueGreenUpdatePolicy"]
    assert policy["TrafficRoutingConfiguration"] == {
        "Type": "CANARY",
        "CanarySize": {"Type": "CAPACITY_PERCENT", "Value": 20},
        "WaitIntervalInSeconds": 600,
    }
    assert "AutoRollbackConfiguration" not in request["DeploymentConfig"]


def test_all_at_once_bakes_long_enough_for_the_rollback_alarms_to_fire():
    # Alarms are watched only during the wait after the traffic switch: 0 s would mean
    # they never roll anything back.
    request = request_bodies.update_endpoint_request(make_settings(), RUN_ID)
    assert_valid("UpdateEndpoint", request)
    policy = request["DeploymentConfig"]["BlueGreenUpdatePolicy"]
    assert policy["TrafficRoutingConfiguration"] == {
        "Type": "ALL_AT_ONCE",
        "WaitIntervalInSeconds": 300,
    }
    assert policy["TerminationWaitInSeconds"] == 120
    assert request["DeploymentConfig"]["AutoRollbackConfiguration"]["Alarms"]

    custom = make_settings(deployment_bake_s=600, termination_wait_s=30)
    policy = request_bodies.update_endpoint_request(custom, RUN_ID)["DeploymentConfig"][
        "BlueGreenUpdatePolicy"
    ]
    assert policy["TrafficRoutingConfiguration"]["WaitIntervalInSeconds"] == 600
    assert policy["TerminationWaitInSeconds"] == 30


def test_the_bake_period_is_read_from_the_environment(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("DEPLOYMENT_BAKE_S", "240")
    assert Settings(_env_file=None).deployment_bake_s == 240
    monkeypatch.setenv("DEPLOYMENT_BAKE_S", "-1")
    with pytest.raises(ValueError, match="deployment_bake_s"):
        Settings(_env_file=None)


@pytest.mark.parametrize(
    ("operation", "request_"),
    [
        (
            "CreateModel",
            request_bodies.model_request(make_settings(), RUN_ID, package_arn(3)),
        ),
        (
            "CreateEndpointConfig",
            request_bodies.endpoint_config_request(make_settings(), RUN_ID),
        ),
        ("CreateEndpoint", request_bodies.create_endpoint_request(make_settings(), RUN_ID)),
        ("UpdateEndpoint", request_bodies.update_endpoint_request(make_settings(), RUN_ID)),
    ],
)
def test_deployment_requests_match_the_service_model(operation, request_):
    assert_valid(operation, request_)


def test_the_model_is_the_registered_package_and_nothing_else():
    """Image, artifact and environment come from the package: a CreateModel that also named
    them could serve something the registry does not show."""
    request = request_bodies.model_request(make_settings(), RUN_ID, package_arn(3))
    assert request == {
        "ModelName": f"cifar100-{RUN_ID}",
        "ExecutionRoleArn": "arn:aws:iam::123456789012:role/cifar100-sagemaker",
        "PrimaryContainer": {"ModelPackageName": package_arn(3)},
        "Tags": [
            {"Key": "project", "Value": "cifar100"},
            {"Key": "run-id", "Value": RUN_ID},
        ],
    }


def test_the_final_job_gets_the_champion_as_a_channel_when_one_serves():
    settings = make_settings()
    champion = model_artifact("r20261101000000aaaa")
    first = request_bodies.final_training_request(settings, RUN_ID, TuneOverrides(), BEST)
    later = request_bodies.final_training_request(settings, RUN_ID, TuneOverrides(), BEST, champion)
    assert_valid("CreateTrainingJob", later)
    assert [c["ChannelName"] for c in first["InputDataConfig"]] == [
        "train",
        "test",
        "inference_code",
    ]
    (channel,) = [c for c in later["InputDataConfig"] if c["ChannelName"] == "champion"]
    assert channel == {
        "ChannelName": "champion",
        "DataSource": {
            "S3DataSource": {
                "S3DataType": "S3Prefix",
                "S3Uri": champion,
                "S3DataDistributionType": "FullyReplicated",
            }
        },
        "InputMode": "File",
    }
    # The comparison is reported through the same regexes as every final metric.
    names_ = {d["Name"] for d in later["AlgorithmSpecification"]["MetricDefinitions"]}
    assert set(metric_definitions.COMPARISON_METRICS) <= names_


def test_names_tell_final_jobs_from_trials():
    prefix = "cifar100"
    assert names.run_id_from_final_job(prefix, f"cifar100-{RUN_ID}-final") == RUN_ID
    assert names.run_id_from_final_job(prefix, f"cifar100-{RUN_ID}-003-4f1c2a9b") is None
    assert names.run_id_from_final_job(prefix, f"other-{RUN_ID}-final") is None
    assert names.run_id_from_tuning_job(prefix, f"cifar100-{RUN_ID}") == RUN_ID
    assert names.run_id_from_tuning_job(prefix, "cifar100-latest") is None


def test_freeze_backbone_is_sent_only_when_the_stack_sets_it() -> None:
    """Unset, training freezes the trunk exactly when it is pretrained; the local stack sets
    it for the sample data (every job of a run gets it: trials and the final job alike)."""
    from retraining.sagemaker.request_bodies import static_hyperparameters
    from tests.support.sagemaker_double import make_settings

    assert "freeze_backbone" not in static_hyperparameters(make_settings(), "hpo.py")
    frozen = static_hyperparameters(make_settings(freeze_backbone=True), "hpo.py")
    assert frozen["freeze_backbone"] == "true"
    assert static_hyperparameters(make_settings(freeze_backbone=False), "x")["freeze_backbone"] == (
        "false"
    )


# -- the endpoint's precision (InferencePrecision) --------------------------------------------


def test_the_model_environment_carries_the_default_precision() -> None:
    environment = request_bodies.model_environment(make_settings())
    assert environment["INFERENCE_PRECISION"] == "auto"
    assert environment["SAGEMAKER_PROGRAM"] == "inference.py"


@pytest.mark.parametrize("precision", ["auto", "int8", "fp32"])
def test_the_model_environment_carries_the_stacks_precision(precision: str) -> None:
    settings = make_settings(inference_precision=precision)
    environment = request_bodies.model_environment(settings)
    assert environment["INFERENCE_PRECISION"] == precision == settings.inference_precision
    # Container environment values are strings (botocore's EnvironmentValue).
    assert all(isinstance(v, str) for v in environment.values())


def test_the_precision_is_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """As the template sets it on the functions (INFERENCE_PRECISION: !Ref InferencePrecision)."""
    monkeypatch.setenv("INFERENCE_PRECISION", "fp32")
    settings = make_settings()
    assert settings.inference_precision == "fp32"
    assert request_bodies.model_environment(settings)["INFERENCE_PRECISION"] == "fp32"


@pytest.mark.parametrize("value", ["fp16", "INT8", "", "bf16"])
def test_a_precision_the_handler_does_not_know_is_refused(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("INFERENCE_PRECISION", value)
    with pytest.raises(ValidationError, match=r"(?s)inference_precision.*'auto', 'int8' or 'fp32'"):
        make_settings()
