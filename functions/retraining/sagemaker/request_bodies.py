"""SageMaker request bodies: pure functions of settings, the run and its overrides.

Nothing here calls AWS, so every field that matters is asserted in unit tests and validated
against botocore's service model there.
"""

from __future__ import annotations

import json
import re
from typing import Any

import metric_definitions
from retraining.overrides import TuneOverrides
from retraining.sagemaker import autoscaling, names
from retraining.settings import Settings

HPO_PROGRAM = "hpo.py"
FINAL_PROGRAM = "train_model.py"
DATA_PROGRAM = "prepare_data.py"
INFERENCE_PROGRAM = "inference.py"
#: Where SageMaker unpacks model.tar.gz; train_model.py puts model_handler into its code/.
MODEL_CODE_DIR = "/opt/ml/model/code"
CHECKPOINT_LOCAL_PATH = "/opt/ml/checkpoints"
TENSORBOARD_LOCAL_PATH = "/opt/ml/output/tensorboard"

#: Built-in Debugger rules the final job runs (rule_to_invoke names).
DEBUGGER_RULES = ("LossNotDecreasing", "Overfit", "VanishingGradient", "PoorWeightInitialization")
PROFILER_INTERVAL_MS = 500


def s3_run_prefix(settings: Settings, run_id: str) -> str:
    return f"s3://{settings.artifact_bucket}/runs/{run_id}"


def static_hyperparameters(settings: Settings, program: str) -> dict[str, str]:
    """Fixed for every job of a run. ``sagemaker_*`` keys are how the PyTorch container's
    script mode finds the entry point in the uploaded source."""
    fixed = {
        "image_size": str(settings.image_size),
        "pretrained": "true" if settings.pretrained else "false",
        "sagemaker_program": program,
        "sagemaker_submit_directory": settings.training_source_s3_uri,
        "sagemaker_region": settings.aws_region,
    }
    if settings.freeze_backbone is not None:
        fixed["freeze_backbone"] = "true" if settings.freeze_backbone else "false"
    return fixed


def parameter_ranges(
    overrides: TuneOverrides, settings: Settings
) -> dict[str, list[dict[str, Any]]]:
    """The search space: the run's overrides where given, else the stack's TUNE_* settings."""
    lr_min, lr_max = (
        (overrides.learning_rate.min, overrides.learning_rate.max)
        if overrides.learning_rate
        else (settings.tune_learning_rate_min, settings.tune_learning_rate_max)
    )
    ep_min, ep_max = (
        (overrides.epochs.min, overrides.epochs.max)
        if overrides.epochs
        else (settings.tune_epochs_min, settings.tune_epochs_max)
    )
    batch_sizes = overrides.batch_sizes or settings.tune_batch_sizes
    return {
        "ContinuousParameterRanges": [
            {
                "Name": "learning_rate",
                "MinValue": repr(lr_min),
                "MaxValue": repr(lr_max),
                "ScalingType": "Logarithmic",
            }
        ],
        "IntegerParameterRanges": [
            {
                "Name": "epochs",
                "MinValue": str(ep_min),
                "MaxValue": str(ep_max),
                "ScalingType": "Auto",
            }
        ],
        "CategoricalParameterRanges": [
            {"Name": "batch_size", "Values": [str(b) for b in sorted(set(batch_sizes))]}
        ],
    }


def _channel(name: str, s3_uri: str) -> dict[str, Any]:
    return {
        "ChannelName": name,
        "DataSource": {
            "S3DataSource": {
                "S3DataType": "S3Prefix",
                "S3Uri": s3_uri,
                "S3DataDistributionType": "FullyReplicated",
            }
        },
        "InputMode": "File",
    }


def _resources(settings: Settings, instance_type: str, count: int = 1) -> dict[str, Any]:
    return {
        "InstanceType": instance_type,
        "InstanceCount": count,
        "VolumeSizeInGB": settings.training_volume_gb,
    }


#: Accelerated instance families (ml.g5, ml.p4d, ...): the container starts one process per GPU.
_GPU_FAMILY = re.compile(r"^ml\.(g|p)\d")


def distribution_hyperparameters(instance_type: str, count: int) -> dict[str, str]:
    """The SageMaker Python SDK's ``distribution={"torch_distributed": {"enabled": True}}``:
    the PyTorch container then runs the entry point under ``torchrun --nnodes <count>
    --nproc_per_node <GPUs, or 1 on CPU>`` (sagemaker-training-toolkit: torch_distributed.py,
    runner.py), values JSON-encoded as the SDK sends them. Every GPU instance type gets it
    (one process per GPU is what uses a multi-GPU instance; a single-GPU one runs one process
    either way); one CPU instance needs no launcher, so it gets none."""
    if count == 1 and not _GPU_FAMILY.match(instance_type):
        return {}
    return {
        "sagemaker_torch_distributed_enabled": "true",
        "sagemaker_instance_type": json.dumps(instance_type),
    }


def _stopping_condition(settings: Settings) -> dict[str, int]:
    condition = {"MaxRuntimeInSeconds": settings.max_runtime_s}
    if settings.spot_training:
        condition["MaxWaitTimeInSeconds"] = max(settings.spot_max_wait_s, settings.max_runtime_s)
    return condition


def _spot(settings: Settings, run_id: str | None) -> dict[str, Any]:
    """Managed spot; with ``run_id`` also a checkpoint path so a reclaimed job resumes.

    Tuning trials get none: they would all share the one CheckpointConfig of the job
    definition, and a trial must not resume another trial's weights. A reclaimed trial
    restarts from scratch, which short trials can afford.
    """
    if not settings.spot_training:
        return {}
    spot: dict[str, Any] = {"EnableManagedSpotTraining": True}
    if run_id is not None:
        spot["CheckpointConfig"] = {
            "S3Uri": f"{s3_run_prefix(settings, run_id)}/checkpoints/final",
            "LocalPath": CHECKPOINT_LOCAL_PATH,
        }
    return spot


def tuning_job_request(
    settings: Settings,
    run_id: str,
    overrides: TuneOverrides,
    warm_start_parent: str | None = None,
) -> dict[str, Any]:
    """CreateHyperParameterTuningJob: Bayesian search maximising val_acc (held-out split of
    the training set), early stopping Auto, optional warm start from the champion's job."""
    prefix = settings.resource_prefix
    max_jobs = overrides.max_jobs or settings.max_jobs
    max_parallel = min(overrides.max_parallel_jobs or settings.max_parallel_jobs, max_jobs)
    definition: dict[str, Any] = {
        "StaticHyperParameters": static_hyperparameters(settings, HPO_PROGRAM),
        "AlgorithmSpecification": {
            "TrainingImage": settings.training_image_uri,
            "TrainingInputMode": "File",
            "MetricDefinitions": metric_definitions.TUNING_METRIC_DEFINITIONS,
        },
        "RoleArn": settings.sagemaker_role_arn,
        "InputDataConfig": [
            _channel("train", settings.train_data_s3_uri),
            _channel("test", settings.test_data_s3_uri),
        ],
        "OutputDataConfig": {"S3OutputPath": f"{s3_run_prefix(settings, run_id)}/hpo"},
        "ResourceConfig": _resources(
            settings, overrides.instance_type or settings.tuning_instance_type
        ),
        "StoppingCondition": _stopping_condition(settings),
        **_spot(settings, None),
    }
    request: dict[str, Any] = {
        "HyperParameterTuningJobName": names.tuning_job_name(prefix, run_id),
        "HyperParameterTuningJobConfig": {
            "Strategy": "Bayesian",
            "HyperParameterTuningJobObjective": {
                "Type": metric_definitions.OBJECTIVE_TYPE,
                "MetricName": metric_definitions.OBJECTIVE_METRIC,
            },
            "ResourceLimits": {
                "MaxNumberOfTrainingJobs": max_jobs,
                "MaxParallelTrainingJobs": max_parallel,
            },
            "ParameterRanges": parameter_ranges(overrides, settings),
            "TrainingJobEarlyStoppingType": "Auto",
        },
        "TrainingJobDefinition": definition,
        "Tags": names.tags(prefix, run_id, "hpo"),
    }
    if warm_start_parent:
        # TransferLearning (not IdenticalDataAndAlgorithm): retraining brings new data and
        # may change the ranges.
        request["WarmStartConfig"] = {
            "ParentHyperParameterTuningJobs": [{"HyperParameterTuningJobName": warm_start_parent}],
            "WarmStartType": "TransferLearning",
        }
    return request


def debugger_config(settings: Settings, run_id: str) -> dict[str, Any]:
    """DebugHookConfig + built-in rules + ProfilerConfig, or an explicit profiler switch-off.

    smdebug's ``save_interval`` counts steps, not epochs: losses and metrics are scalars and
    cheap, so they are saved every step and therefore at every epoch boundary; weight and
    gradient tensors are sampled every ``debugger_tensor_save_interval`` steps.
    """
    if not settings.debugger_enabled:
        return {"ProfilerConfig": {"DisableProfiler": True}}
    base = f"{s3_run_prefix(settings, run_id)}/debug"
    every_step = {"train.save_interval": "1", "eval.save_interval": "1"}
    sampled = {"save_interval": str(settings.debugger_tensor_save_interval)}
    rule_image = settings.debugger_rule_image_uri
    return {
        "DebugHookConfig": {
            "S3OutputPath": f"{base}/tensors",
            "CollectionConfigurations": [
                {"CollectionName": "losses", "CollectionParameters": every_step},
                {"CollectionName": "metrics", "CollectionParameters": every_step},
                {"CollectionName": "weights", "CollectionParameters": sampled},
                {"CollectionName": "gradients", "CollectionParameters": sampled},
                {"CollectionName": "biases", "CollectionParameters": sampled},
                {
                    "CollectionName": "relu_input",
                    "CollectionParameters": {"include_regex": ".*relu_input", **sampled},
                },
            ],
        },
        "DebugRuleConfigurations": [
            {
                "RuleConfigurationName": rule,
                "RuleEvaluatorImage": rule_image,
                "RuleParameters": {"rule_to_invoke": rule},
            }
            for rule in DEBUGGER_RULES
        ],
        "ProfilerConfig": {
            "S3OutputPath": f"{base}/profiler",
            "ProfilingIntervalInMilliseconds": PROFILER_INTERVAL_MS,
        },
        "ProfilerRuleConfigurations": [
            {
                "RuleConfigurationName": "ProfilerReport",
                "RuleEvaluatorImage": rule_image,
                "RuleParameters": {"rule_to_invoke": "ProfilerReport"},
            }
        ],
    }


def final_training_request(
    settings: Settings,
    run_id: str,
    overrides: TuneOverrides,
    best_hyperparameters: dict[str, str],
    champion_model_data_url: str | None = None,
) -> dict[str, Any]:
    """CreateTrainingJob for the instrumented final job with the best trial's values. With
    a model in service its model.tar.gz is the ``champion`` channel: the job evaluates both
    on the same test images for the gate (none on the first run)."""
    prefix = settings.resource_prefix
    tuned = {k: v for k, v in best_hyperparameters.items() if not k.startswith("_")}
    instance_type = overrides.instance_type or settings.training_instance_type
    count = settings.training_instance_count
    return {
        "TrainingJobName": names.final_training_job_name(prefix, run_id),
        "HyperParameters": {
            **static_hyperparameters(settings, FINAL_PROGRAM),
            **tuned,
            **distribution_hyperparameters(instance_type, count),
        },
        "AlgorithmSpecification": {
            "TrainingImage": settings.training_image_uri,
            "TrainingInputMode": "File",
            "MetricDefinitions": metric_definitions.METRIC_DEFINITIONS,
            "EnableSageMakerMetricsTimeSeries": True,
        },
        "RoleArn": settings.sagemaker_role_arn,
        "InputDataConfig": [
            _channel("train", settings.train_data_s3_uri),
            _channel("test", settings.test_data_s3_uri),
            # train_model.py copies these files into <model dir>/code/ (contracts.md).
            _channel("inference_code", settings.inference_source_s3_uri),
            *([_channel("champion", champion_model_data_url)] if champion_model_data_url else []),
        ],
        "OutputDataConfig": {"S3OutputPath": f"{s3_run_prefix(settings, run_id)}/final"},
        # Every instance gets every channel (FullyReplicated): the ranks shard each epoch
        # themselves, from one seeded permutation (docs/training.md).
        "ResourceConfig": _resources(settings, instance_type, count),
        "StoppingCondition": _stopping_condition(settings),
        "TensorBoardOutputConfig": {
            "S3OutputPath": f"{s3_run_prefix(settings, run_id)}/tensorboard",
            "LocalPath": TENSORBOARD_LOCAL_PATH,
        },
        **_spot(settings, run_id),
        **debugger_config(settings, run_id),
        "Tags": names.tags(prefix, run_id, "final"),
    }


def data_location(settings: Settings) -> str | None:
    """The prefix ``prepare_data.py --output`` writes (it fills ``<prefix>/train`` and
    ``<prefix>/test``): the common parent of the two channel URIs, or None when they are not
    siblings named train and test (then only the user can put data there)."""
    train, test = settings.train_data_s3_uri.rstrip("/"), settings.test_data_s3_uri.rstrip("/")
    parent, _, leaf = train.rpartition("/")
    if leaf != "train" or test != f"{parent}/test" or not parent.startswith("s3://"):
        return None
    return parent


def data_job_request(settings: Settings, run_id: str, output: str) -> dict[str, Any]:
    """CreateTrainingJob running ``prepare_data.py --output <output>`` in the training image:
    torchvision downloads CIFAR-100 (training jobs have internet access unless network
    isolation or a VPC without NAT is configured) and the script uploads both channels."""
    prefix = settings.resource_prefix
    return {
        "TrainingJobName": names.data_job_name(prefix, run_id),
        "HyperParameters": {
            "output": output,
            "layout": "cifar",
            "sagemaker_program": DATA_PROGRAM,
            "sagemaker_submit_directory": settings.training_source_s3_uri,
            "sagemaker_region": settings.aws_region,
        },
        "AlgorithmSpecification": {
            "TrainingImage": settings.training_image_uri,
            "TrainingInputMode": "File",
        },
        "RoleArn": settings.sagemaker_role_arn,
        "OutputDataConfig": {"S3OutputPath": f"{s3_run_prefix(settings, run_id)}/data"},
        "ResourceConfig": _resources(settings, settings.data_instance_type),
        "StoppingCondition": {"MaxRuntimeInSeconds": settings.data_max_runtime_s},
        "Tags": names.tags(prefix, run_id, "data"),
    }


def model_environment(settings: Settings) -> dict[str, str]:
    """The inference container's environment: script mode finds inference.py in the
    artifact's code/ (train_model.py put it there); INFERENCE_PRECISION picks the ONNX graph
    the handler serves (auto, int8 or fp32). Registered with the model package, so it is
    what the version serves wherever and whenever it is deployed."""
    return {
        "SAGEMAKER_PROGRAM": INFERENCE_PROGRAM,
        "SAGEMAKER_SUBMIT_DIRECTORY": MODEL_CODE_DIR,
        "SAGEMAKER_REGION": settings.aws_region,
        "SAGEMAKER_CONTAINER_LOG_LEVEL": "20",
        "INFERENCE_PRECISION": settings.inference_precision,
    }


def model_request(settings: Settings, run_id: str, model_package_arn: str) -> dict[str, Any]:
    """CreateModel from a registered version: image, artifact and environment come from the
    package's inference specification, so the registry says what serves."""
    prefix = settings.resource_prefix
    return {
        "ModelName": names.model_name(prefix, run_id),
        "ExecutionRoleArn": settings.sagemaker_role_arn,
        "PrimaryContainer": {"ModelPackageName": model_package_arn},
        "Tags": names.tags(prefix, run_id),
    }


def endpoint_config_request(settings: Settings, run_id: str) -> dict[str, Any]:
    prefix = settings.resource_prefix
    variant: dict[str, Any] = {
        "VariantName": settings.endpoint_variant_name,
        "ModelName": names.model_name(prefix, run_id),
    }
    if settings.endpoint_type == "serverless":
        serverless: dict[str, int] = {
            "MemorySizeInMB": settings.serverless_memory_mb,
            "MaxConcurrency": settings.serverless_max_concurrency,
        }
        if settings.serverless_provisioned_concurrency:
            serverless["ProvisionedConcurrency"] = settings.serverless_provisioned_concurrency
        variant["ServerlessConfig"] = serverless
    else:
        variant.update(
            InitialInstanceCount=settings.endpoint_instance_count,
            InstanceType=settings.endpoint_instance_type,
            InitialVariantWeight=1.0,
        )
    return {
        "EndpointConfigName": names.endpoint_config_name(prefix, run_id),
        "ProductionVariants": [variant],
        "Tags": names.tags(prefix, run_id),
    }


def create_endpoint_request(settings: Settings, run_id: str) -> dict[str, Any]:
    return {
        "EndpointName": settings.endpoint_name,
        "EndpointConfigName": names.endpoint_config_name(settings.resource_prefix, run_id),
        "Tags": names.tags(settings.resource_prefix, run_id),
    }


def deployment_config(settings: Settings) -> dict[str, Any]:
    """Blue/green: the new fleet is built beside the old one, traffic moves all at once (or
    a canary slice first), and any listed CloudWatch alarm firing during the bake rolls back."""
    routing: dict[str, Any]
    if settings.deployment_strategy == "canary":
        routing = {
            "Type": "CANARY",
            "CanarySize": {"Type": "CAPACITY_PERCENT", "Value": settings.canary_percent},
            "WaitIntervalInSeconds": settings.canary_wait_s,
        }
    else:
        # The wait after the switch is the baking period: AutoRollbackConfiguration alarms
        # are watched only then (canary: canary_wait_s is the same window for the slice).
        routing = {"Type": "ALL_AT_ONCE", "WaitIntervalInSeconds": settings.deployment_bake_s}
    config: dict[str, Any] = {
        "BlueGreenUpdatePolicy": {
            "TrafficRoutingConfiguration": routing,
            "TerminationWaitInSeconds": settings.termination_wait_s,
        }
    }
    if settings.rollback_alarm_names:
        config["AutoRollbackConfiguration"] = {
            "Alarms": [{"AlarmName": name} for name in settings.rollback_alarm_names]
        }
    return config


def update_endpoint_request(settings: Settings, run_id: str) -> dict[str, Any]:
    request: dict[str, Any] = {
        "EndpointName": settings.endpoint_name,
        "EndpointConfigName": names.endpoint_config_name(settings.resource_prefix, run_id),
    }
    if settings.endpoint_type == "provisioned":
        # Deployment guardrails (traffic shifting, baking, auto-rollback) apply to real-time
        # endpoints on instances only; a serverless one gets SageMaker's default update, a
        # new fleet beside the old one and all traffic at once, and no alarm-driven rollback.
        request["DeploymentConfig"] = deployment_config(settings)
    if autoscaling.enabled(settings):
        # Keep the instance count auto-scaling reached, not the config's initial count
        # (AWS's documented update procedure for endpoints with auto scaling).
        request["RetainAllVariantProperties"] = True
    return request
