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
