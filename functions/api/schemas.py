"""Request and response bodies (the OpenAPI schema is generated from these)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr

from retraining.records import RunRecord, RunStatus

# A 1x1 PNG: small enough to paste into the docs' "Try it out".
EXAMPLE_IMAGE = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGP4z8AAAAMBAQDJ/pLvAAAAAElFTkSuQmCC"
)


class PredictRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"image": EXAMPLE_IMAGE, "top_k": 3}]},
    )

    image: StrictStr = Field(
        min_length=1, description="The image file (PNG or JPEG), standard padded base64"
    )
    top_k: StrictInt | None = Field(
        None,
        ge=1,
        le=100,
        description="How many labels to return; without it the model's default "
        "(5, or its number of classes if fewer). More than the model's classes is a 400.",
    )


class Prediction(BaseModel):
    label: str
    index: int
    probability: float


class ModelIdentity(BaseModel):
    model_config = ConfigDict(extra="allow")

    version: str | None = None
    training_job_name: str | None = None
    architecture: str | None = None


class PredictResponse(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "predictions": [
                        {"label": "apple", "index": 0, "probability": 0.93},
                        {"label": "pear", "index": 57, "probability": 0.04},
                    ],
                    "model": {
                        "version": "cifar100-r20261128030512ab12-final",
                        "training_job_name": "cifar100-r20261128030512ab12-final",
                        "architecture": "resnet34",
                    },
                    "request_id": "c6af9ac6-7b61-11e6-9a41-93e8deadbeef",
                }
            ]
        }
    )

    predictions: list[Prediction]
    model: ModelIdentity
    request_id: str


class TuneAccepted(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "run_id": "r20261128030512ab12",
                    "status": "TUNING",
                    "location": "/jobs/r20261128030512ab12",
                }
            ]
        }
    )

    run_id: str
    status: RunStatus
    location: str = Field(description="Where to poll the run (also the Location header)")


class RunPage(BaseModel):
    runs: list[RunRecord] = Field(description="Newest first")
    next_cursor: str | None = Field(
        None, description="Pass as `cursor` for the next page; null on the last page"
    )


class Health(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"status": "ok"}]})

    status: str = "ok"


class ModelVersionOut(BaseModel):
    """One registered version (a SageMaker model package of the stack's group)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "version": 2,
                    "arn": "arn:aws:sagemaker:us-east-1:123456789012:model-package/cifar100-models/2",
                    "approval_status": "Approved",
                    "approval_description": "test_acc 0.7412 vs the champion's 0.7015 on the "
                    "same test images: +3.97 points, p=3.1e-09 < 0.05: better",
                    "created_at": "2026-12-02T03:05:12Z",
                    "run_id": "r20261202020512ab12",
                    "training_job_name": "cifar100-r20261202020512ab12-final",
                    "metrics": {"test_acc": 0.7412, "champion_test_acc": 0.7015},
                    "serving": True,
                }
            ]
        }
    )

    version: int | None
    arn: str | None
    approval_status: str | None = Field(
        description="Approved, Rejected or PendingManualApproval (the registry's spelling)"
    )
    approval_description: str | None = Field(None, description="Why: the gate's reason")
    created_at: str | None = None
    description: str | None = None
    run_id: str | None = Field(None, description="The run that trained it")
    training_job_name: str | None = None
    tuning_job_name: str | None = None
    model_data_url: str | None = None
    metrics: dict[str, float] = Field(default_factory=dict)
    hyperparameters: dict[str, str] = Field(default_factory=dict)
    serving: bool = Field(description="This version is the model in service")


class CurrentModel(ModelVersionOut):
    deployed_at: str | None = None
    deployed_by_run_id: str | None = Field(None, description="The run that deployed it")


class ModelPage(BaseModel):
    models: list[ModelVersionOut] = Field(description="Newest first")
    next_cursor: str | None = Field(
        None, description="Pass as `cursor` for the next page; null on the last page"
    )


class DeployAccepted(TuneAccepted):
    version: int
