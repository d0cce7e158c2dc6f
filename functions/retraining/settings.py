"""All runtime configuration, read from environment variables (the template sets them).

One object for the API and the orchestration handlers. Names are the upper-case field names,
e.g. ``ENDPOINT_NAME``; list values are comma-separated. Documented in docs/configuration.md.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal, Self

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

#: Attempts of the sagemaker-runtime client: botocore's standard mode retries a read timeout
#: too, so every attempt may last connect + read timeout.
PREDICT_MAX_ATTEMPTS = 2
#: Worst-case seconds /predict may spend on the endpoint: leaves API Gateway's 29 s room for
#: the Lambda's own work.
PREDICT_BUDGET_S = 26.0

#: Attempts of the control-plane clients (SageMaker, DynamoDB, Application Auto Scaling).
ORCHESTRATION_MAX_ATTEMPTS = 3
#: Seconds a function keeps after one call's worst case: to log, record and raise cleanly
#: instead of being killed by Lambda in the middle of a run-record write.
FUNCTION_MARGIN_S = 5.0
#: The AWS Deep Learning Containers for PyTorch 2.x ship no smdebug (SageMaker Debugger's
#: hook library supports PyTorch up to 1.12 and is not installed in the 2.x images).
_DLC_WITHOUT_SMDEBUG = re.compile(r"/pytorch-training:(?:[2-9]|\d{2,})\.")

CommaList = Annotated[list[str], NoDecode]
CommaInts = Annotated[list[int], NoDecode]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(case_sensitive=False, extra="ignore")

    # Naming and storage
    # Lower case as the template's AllowedPattern: SageMaker lower-cases names inside ARNs, so
    # the IAM scopes on <prefix>-* only match a lower-case prefix.
    resource_prefix: str = Field("cifar100", max_length=10, pattern=r"^[a-z][a-z0-9-]*$")
    runs_table: str = "cifar100-runs"
    artifact_bucket: str = ""
    endpoint_name: str = "cifar100-classifier"

    # SageMaker jobs
    sagemaker_role_arn: str = ""
    training_image_uri: str = ""
    inference_image_uri: str = ""
    training_source_s3_uri: str = ""  # sourcedir.tar.gz of training/
    inference_source_s3_uri: str = ""  # S3 prefix holding model_handler/ (inference_code channel)
    train_data_s3_uri: str = ""
    test_data_s3_uri: str = ""
    training_instance_type: str = "ml.g5.xlarge"
    # Instances of the final training job: above 1 (or on GPU instances) the PyTorch
    # container launches torchrun across every GPU of every instance (torch_distributed).
    training_instance_count: int = Field(1, ge=1, le=20)
    tuning_instance_type: str = "ml.g5.xlarge"
    endpoint_instance_type: str = "ml.m5.large"
    # provisioned: instances that bill around the clock (blue/green with guardrails);
    # serverless: capacity per request (ServerlessConfig), no instances to scale.
    endpoint_type: Literal["provisioned", "serverless"] = "provisioned"
    serverless_memory_mb: int = Field(3072, ge=1024, le=6144, multiple_of=1024)
    serverless_max_concurrency: int = Field(5, ge=1, le=200)
    serverless_provisioned_concurrency: int = Field(0, ge=0, le=200)  # 0: none (cold starts)
    # The endpoint's numeric precision, INFERENCE_PRECISION in the model's container
    # environment (model_handler/ reads it): auto serves the artifact's int8 ONNX graph on a
    # CPU with int8 dot-product instructions, else fp32; int8 whenever the artifact ships one;
    # fp32 never int8. Registered with each model package: a promoted older version keeps
    # the precision it was registered with.
    inference_precision: Literal["auto", "int8", "fp32"] = "auto"
    allowed_instance_types: CommaList = [
        "ml.g5.xlarge",
        "ml.g4dn.xlarge",
        "ml.m5.xlarge",
        "ml.c5.2xlarge",
    ]
    # The default search space of a run; a POST /jobs/tune body overrides each part.
    tune_learning_rate_min: float = Field(1e-4, gt=0.0, le=1.0)
    tune_learning_rate_max: float = Field(1e-1, gt=0.0, le=1.0)
    tune_epochs_min: int = Field(2, ge=1, le=200)
    tune_epochs_max: int = Field(10, ge=1, le=200)
    tune_batch_sizes: CommaInts = [64, 128, 256]
    max_jobs: int = Field(8, ge=1, le=100)
    max_parallel_jobs: int = Field(2, ge=1, le=10)
    debugger_enabled: bool = False
    # First run: an empty training-data prefix is filled by a SageMaker job running
    # training/prepare_data.py (CIFAR-100), then tuning starts.
    prepare_data: bool = True
    data_instance_type: str = "ml.m5.xlarge"
    data_max_runtime_s: int = Field(3600, ge=60, le=24 * 3600)

    # Quality gate and deployment
    gate_min_accuracy: float = Field(0.5, ge=0.0, le=1.0)
    gate_margin: float = Field(0.0, ge=0.0, le=1.0)
    # The candidate must beat the champion on the same test images with an exact McNemar
    # p-value below this (a "better" that is noise is refused).
    gate_significance: float = Field(0.05, gt=0.0, le=1.0)
    # auto: the gate's pass approves the registered version and deploys it; manual: it waits
    # (PendingManualApproval) until a person approves it (API or console), which deploys it.
    model_approval: Literal["auto", "manual"] = "auto"
    rollback_alarm_names: CommaList = []

    # Retraining runs (orchestration): search space defaults, spot, instrumentation, rollout
    aws_region: str = "us-east-1"  # AWS_REGION, set by the Lambda runtime
    image_size: int = Field(128, ge=16, le=512)  # static hyperparameter for every job
    pretrained: bool = True
    # None: the trunk is frozen exactly when it is pretrained (training/'s default).
    freeze_backbone: bool | None = None
    warm_start: bool = True  # from the champion's tuning job (TransferLearning)
    spot_training: bool = False
    max_runtime_s: int = Field(4 * 3600, ge=60, le=5 * 24 * 3600)
    spot_max_wait_s: int = Field(8 * 3600, ge=60, le=5 * 24 * 3600)  # >= max_runtime_s
    training_volume_gb: int = Field(30, ge=1, le=16384)
    debugger_rule_image_uri: str = ""  # built-in rules image of the region (template parameter)
    debugger_tensor_save_interval: int = Field(100, ge=1)  # steps, for weights/gradients
    deployment_strategy: Literal["all_at_once", "canary"] = "all_at_once"
    canary_percent: int = Field(10, ge=1, le=50)
    canary_wait_s: int = Field(300, ge=0, le=3600)
    # All-at-once baking period: the only window in which the rollback alarms are watched,
    # so it must outlast at least two alarm periods (the template's alarms fire in 60-120 s).
    deployment_bake_s: int = Field(300, ge=0, le=3600)
    termination_wait_s: int = Field(120, ge=0, le=3600)
    endpoint_instance_count: int = Field(1, ge=1, le=10)
    endpoint_variant_name: str = "AllTraffic"
    # Auto-scaling of the variant (target tracking on invocations per instance); off when
    # max <= min. Registered by the endpoint-state step once a deployment is in service.
    endpoint_min_capacity: int = Field(1, ge=1, le=100)
    endpoint_max_capacity: int = Field(1, ge=1, le=100)
    endpoint_target_invocations: float = Field(100.0, gt=0)  # per instance per minute
    endpoint_scale_out_cooldown_s: int = Field(60, ge=0, le=3600)
    endpoint_scale_in_cooldown_s: int = Field(300, ge=0, le=3600)

    # Control-plane clients: ORCHESTRATION_MAX_ATTEMPTS x (connect + read) must leave
    # FUNCTION_MARGIN_S of FUNCTION_TIMEOUT_S (the function's Lambda timeout, set by the
    # template next to Timeout), or one slow call outlives the function (checked below).
    function_timeout_s: float = Field(60.0, gt=0, le=900)
    aws_connect_timeout_s: float = Field(2.0, gt=0)
    aws_read_timeout_s: float = Field(5.0, gt=0)

    # API
    # 3 MiB: a body API Gateway takes for binary (any non-text Content-Type) reaches Lambda
    # base64-encoded a second time, 16/9 of the image; at 4 MiB that is ~7.5 MB, over
    # Lambda's 6 MB synchronous payload, and Lambda would refuse it before /predict's 413.
    max_image_bytes: int = 3 * 1024 * 1024
    # PREDICT_MAX_ATTEMPTS * (connect + read) must stay below API Gateway's 29 s integration
    # timeout (checked below), or the gateway answers its own 503 before /predict's 504.
    predict_connect_timeout_s: float = Field(2.0, gt=0)
    predict_read_timeout_s: float = Field(10.0, gt=0)

    @field_validator(
        "allowed_instance_types", "tune_batch_sizes", "rollback_alarm_names", mode="before"
    )
    @classmethod
    def _split_commas(cls, value: object) -> object:
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @model_validator(mode="after")
    def _ranges_ordered(self) -> Self:
        if self.tune_learning_rate_min >= self.tune_learning_rate_max:
            raise ValueError("TUNE_LEARNING_RATE_MIN must be below TUNE_LEARNING_RATE_MAX")
        if self.tune_epochs_min > self.tune_epochs_max:
            raise ValueError("TUNE_EPOCHS_MIN must not exceed TUNE_EPOCHS_MAX")
        if not self.tune_batch_sizes or not all(1 <= b <= 1024 for b in self.tune_batch_sizes):
            raise ValueError("TUNE_BATCH_SIZES must be 1 to 1024, comma-separated")
        worst = PREDICT_MAX_ATTEMPTS * (
            self.predict_connect_timeout_s + self.predict_read_timeout_s
        )
        if worst > PREDICT_BUDGET_S:
            raise ValueError(
                f"{PREDICT_MAX_ATTEMPTS} x (PREDICT_CONNECT_TIMEOUT_S + PREDICT_READ_TIMEOUT_S) "
                f"= {worst:g} s exceeds {PREDICT_BUDGET_S:g} s (API Gateway times out at 29 s)"
            )
        self._check_client_budget()
        self._check_serverless()
        if self.debugger_enabled and _DLC_WITHOUT_SMDEBUG.search(self.training_image_uri):
            raise ValueError(
                "DEBUGGER_ENABLED=true needs a training image with smdebug installed: "
                f"{self.training_image_uri} is a PyTorch 2.x Deep Learning Container, which "
                "ships none, so the Debugger hook would silently record nothing (set "
                "TrainingImageUri to an image with smdebug, or leave the debugger off)"
            )
        return self

    def _check_serverless(self) -> None:
        if self.endpoint_type != "serverless":
            return
        if self.deployment_strategy == "canary":
            raise ValueError(
                "DEPLOYMENT_STRATEGY=canary needs ENDPOINT_TYPE=provisioned: deployment "
                "guardrails (canary traffic shifting, auto-rollback) apply to real-time "
                "endpoints on instances only"
            )
        if self.serverless_provisioned_concurrency > self.serverless_max_concurrency:
            raise ValueError(
                "SERVERLESS_PROVISIONED_CONCURRENCY must not exceed SERVERLESS_MAX_CONCURRENCY"
            )

    def _check_client_budget(self) -> None:
        worst = worst_call_s(
            ORCHESTRATION_MAX_ATTEMPTS, self.aws_connect_timeout_s, self.aws_read_timeout_s
        )
        if worst > self.function_timeout_s - FUNCTION_MARGIN_S:
            raise ValueError(
                f"{ORCHESTRATION_MAX_ATTEMPTS} x (AWS_CONNECT_TIMEOUT_S + AWS_READ_TIMEOUT_S) "
                f"+ retry back-off = {worst:g} s leaves less than {FUNCTION_MARGIN_S:g} s of "
                f"the function's FUNCTION_TIMEOUT_S={self.function_timeout_s:g} s"
            )


def worst_call_s(attempts: int, connect_s: float, read_s: float) -> float:
    """One call's longest time under botocore's standard retry mode: every attempt connects
    and reads to its timeout (a read timeout is retried), and between attempts it sleeps up
    to min(1 s x 2**i, 20 s) (botocore/retries/standard.py, ExponentialBackoff, throttling)."""
    backoff = sum(min(2.0**i, 20.0) for i in range(attempts - 1))
    return attempts * (connect_s + read_s) + backoff
