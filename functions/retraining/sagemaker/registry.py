"""The SageMaker Model Registry: one model package group per stack, one versioned package per
final training job that completes, its approval status following the gate.

The registry is the source of truth for what can serve: every model the endpoint runs is
created from a package ARN (``CreateModel`` with ``ModelPackageName``). Versions have no
names of their own, so registration is made idempotent with ``ClientToken`` = the run id:
SageMaker answers a repeated token with the package it already created.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from retraining.records import RunRecord
from retraining.sagemaker import names
from retraining.sagemaker.request_bodies import model_environment, s3_run_prefix
from retraining.settings import Settings

ApprovalStatus = Literal["Approved", "Rejected", "PendingManualApproval"]
#: The content types the handler accepts and answers (model_handler/serving_payloads.py).
CONTENT_TYPES = ["application/json", "image/png", "image/jpeg", "application/x-image"]
RESPONSE_TYPES = ["application/json"]
#: CustomerMetadataProperties keys: ``metric.<name>``, ``hp.<name>`` and these.
_RUN_KEYS = ("run_id", "trigger", "training_job_name", "tuning_job_name", "best_training_job_name")
_MAX_METADATA_ENTRIES = 50  # SageMaker's CustomerMetadataMap limit
_MAX_VALUE = 256
_MAX_DESCRIPTION = 1024


class VersionNotFound(LookupError):
    def __init__(self, version: int) -> None:
        super().__init__(f"model version {version} is not in the registry")
        self.version = version


def group_name(settings: Settings) -> str:
    return names.model_package_group_name(settings.resource_prefix)


def version_of(package_arn: str) -> int:
    """``arn:...:model-package/<group>/<version>`` -> version (SageMaker's versioned ARN)."""
    tail = package_arn.rsplit("/", 1)[-1]
    if not tail.isdigit():
        raise ValueError(f"{package_arn} is not a versioned model package ARN")
    return int(tail)


def statistics_uri(settings: Settings, run_id: str) -> str:
    return f"{s3_run_prefix(settings, run_id)}/registry/statistics.json"


def statistics_document(
    run: RunRecord, training: dict[str, Any], metrics: dict[str, float]
) -> dict[str, Any]:
    """The ``ModelQuality`` statistics file: the numbers the final job reported (its metric
    lines, as SageMaker read them) and where they came from."""
    return {
        "run_id": run.run_id,
        "training_job_name": training.get("TrainingJobName"),
        "training_job_arn": training.get("TrainingJobArn"),
        "model_data_url": training["ModelArtifacts"]["S3ModelArtifacts"],
        "champion_model_data_url": run.champion_model_data_url,
        "metrics": metrics,
        "hyperparameters": run.best_hyperparameters,
    }


def write_statistics(s3: Any, uri: str, document: dict[str, Any]) -> None:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    body = json.dumps(document, indent=2, sort_keys=True).encode()
    s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType="application/json")


def _metadata(run: RunRecord, metrics: dict[str, float]) -> dict[str, str]:
    values: dict[str, str] = {
        key: str(getattr(run, key)) for key in _RUN_KEYS if getattr(run, key, None)
    }
    values.update({f"metric.{name}": repr(float(v)) for name, v in sorted(metrics.items())})
    values.update({f"hp.{name}": str(v) for name, v in sorted(run.best_hyperparameters.items())})
    trimmed = {k: v[:_MAX_VALUE] for k, v in values.items() if v}
    return dict(list(trimmed.items())[:_MAX_METADATA_ENTRIES])


def package_request(
    settings: Settings,
    run: RunRecord,
    training: dict[str, Any],
    metrics: dict[str, float],
) -> dict[str, Any]:
    """CreateModelPackage for the run's final model, PendingManualApproval until the gate
    (or a person) decides."""
    model_data_url = training["ModelArtifacts"]["S3ModelArtifacts"]
    description = f"run {run.run_id} ({run.trigger}): {training['TrainingJobName']}, " + ", ".join(
        f"{k}={v:.6g}" for k, v in sorted(metrics.items())
    )
    request: dict[str, Any] = {
        "ModelPackageGroupName": group_name(settings),
        "ModelPackageDescription": description[:_MAX_DESCRIPTION],
        "InferenceSpecification": {
            "Containers": [
                {
                    "Image": settings.inference_image_uri,
                    "ModelDataUrl": model_data_url,
                    "Environment": model_environment(settings),
                }
            ],
            "SupportedContentTypes": CONTENT_TYPES,
            "SupportedResponseMIMETypes": RESPONSE_TYPES,
            # No SupportedRealtimeInferenceInstanceTypes: a list fixed at registration could
            # refuse a promotion after EndpointInstanceType changed.
        },
        "ModelMetrics": {
            "ModelQuality": {
                "Statistics": {
                    "ContentType": "application/json",
                    "S3Uri": statistics_uri(settings, run.run_id),
                }
            }
        },
        "ModelApprovalStatus": "PendingManualApproval",
        "CustomerMetadataProperties": _metadata(run, metrics),
        "ClientToken": run.run_id,
        # No Tags: a versioned package takes none (the API reference: with a group "you cannot
        # supply a tag argument"); the group carries the project tag.
    }
    if training.get("TrainingJobArn"):
        request["MetadataProperties"] = {"GeneratedBy": training["TrainingJobArn"]}
    return request


def register(sagemaker: Any, request: dict[str, Any]) -> str:
    """CreateModelPackage; the same ClientToken again returns the same ARN (a redelivered
    event registers nothing new)."""
    arn: str = sagemaker.create_model_package(**request)["ModelPackageArn"]
    return arn


def set_approval(sagemaker: Any, package_arn: str, status: ApprovalStatus, reason: str) -> None:
    sagemaker.update_model_package(
        ModelPackageArn=package_arn,
        ModelApprovalStatus=status,
        ApprovalDescription=reason[:_MAX_DESCRIPTION],
    )


# -- reading the registry -------------------------------------------------------------------


@dataclass(frozen=True)
class ModelVersion:
    """One registered version as the API shows it."""

    version: int
    arn: str
    approval_status: str
    created_at: str | None
    description: str | None
    approval_description: str | None
    run_id: str | None
    training_job_name: str | None
    tuning_job_name: str | None
    model_data_url: str | None
    metrics: dict[str, float]
    hyperparameters: dict[str, str]

    @classmethod
    def from_description(cls, package: dict[str, Any]) -> ModelVersion:
        meta: dict[str, str] = package.get("CustomerMetadataProperties") or {}
        containers = (package.get("InferenceSpecification") or {}).get("Containers") or [{}]
        metrics: dict[str, float] = {}
        for key, value in meta.items():
            if key.startswith("metric."):
                try:
                    metrics[key.removeprefix("metric.")] = float(value)
                except ValueError:
                    continue  # someone edited it in the console: show the rest
        return cls(
            version=int(package["ModelPackageVersion"]),
            arn=package["ModelPackageArn"],
            approval_status=package.get("ModelApprovalStatus", "PendingManualApproval"),
            created_at=_iso(package.get("CreationTime")),
            description=package.get("ModelPackageDescription"),
            approval_description=package.get("ApprovalDescription"),
            run_id=meta.get("run_id"),
            training_job_name=meta.get("training_job_name"),
            tuning_job_name=meta.get("tuning_job_name"),
            model_data_url=containers[0].get("ModelDataUrl"),
            metrics=metrics,
            hyperparameters={
                k.removeprefix("hp."): v for k, v in meta.items() if k.startswith("hp.")
            },
        )


def _iso(value: Any) -> str | None:
    if isinstance(value, datetime):
        return value.isoformat(timespec="seconds").replace("+00:00", "Z")
    return str(value) if value is not None else None


def describe(sagemaker: Any, package_arn: str) -> ModelVersion:
    return ModelVersion.from_description(
        sagemaker.describe_model_package(ModelPackageName=package_arn)
    )


def list_page(
    sagemaker: Any, settings: Settings, limit: int, cursor: str | None
) -> tuple[list[ModelVersion], str | None]:
    """One page of versions, newest first, each described (metrics live in its metadata)."""
    request: dict[str, Any] = {
        "ModelPackageGroupName": group_name(settings),
        "ModelPackageType": "Versioned",
        "SortBy": "CreationTime",
        "SortOrder": "Descending",
        "MaxResults": limit,
    }
    if cursor:
        request["NextToken"] = cursor
    page = sagemaker.list_model_packages(**request)
    versions = [
        describe(sagemaker, summary["ModelPackageArn"])
        for summary in page.get("ModelPackageSummaryList", [])
    ]
    return versions, page.get("NextToken")


def _summaries(sagemaker: Any, settings: Settings) -> Iterator[dict[str, Any]]:
    token: str | None = None
    while True:
        request: dict[str, Any] = {
            "ModelPackageGroupName": group_name(settings),
            "ModelPackageType": "Versioned",
            "SortBy": "CreationTime",
            "SortOrder": "Descending",
            "MaxResults": 100,
        }
        if token:
            request["NextToken"] = token
        page = sagemaker.list_model_packages(**request)
        yield from page.get("ModelPackageSummaryList", [])
        token = page.get("NextToken")
        if not token:
            return


def find(sagemaker: Any, settings: Settings, version: int) -> ModelVersion:
    """The version's package (VersionNotFound when the group has no such version)."""
    for summary in _summaries(sagemaker, settings):
        if int(summary.get("ModelPackageVersion", -1)) == version:
            return describe(sagemaker, summary["ModelPackageArn"])
    raise VersionNotFound(version)
