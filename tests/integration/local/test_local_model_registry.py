"""The Model Registry of the local SageMaker behind a real botocore client: groups, versioned
packages (ARNs, numbering, ClientToken), listing with real pagination, approval updates and
their events in the developer guide's shape, and CreateModel from a package ARN served by an
endpoint. docs/aws-behaviour.md cites the AWS sources of each behaviour pinned here."""

from __future__ import annotations

import json
import re
from datetime import datetime
from pathlib import Path
from typing import Any

import botocore.session
import pytest
from botocore.exceptions import ClientError

from local.s3 import LocalS3
from local.sagemaker.backend import LocalSageMaker
from local.sagemaker.registry import MODEL_PACKAGE
from local.sagemaker.wire import attach_json_backend, make_client
from tests.integration.local.conftest import BUCKET, Emitted, wait_for
from tests.integration.local.test_local_endpoint import HANDLER

FIXTURE = Path(__file__).resolve().parents[2] / "events" / "sagemaker"
PREFIX = "arn:aws:sagemaker:us-east-1:000000000000"
GROUP = "cifar100-models"
IMAGE = "local/pytorch-inference:cpu"
ROLE = "arn:aws:iam::000000000000:role/local"
ISO = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")


def error_of(raised: pytest.ExceptionInfo[ClientError]) -> tuple[str, str]:
    error = raised.value.response["Error"]
    return error["Code"], error["Message"]


def package_request(group: str = GROUP, **changes: Any) -> dict[str, Any]:
    """What the orchestration registers (functions/retraining/sagemaker/registry.py), Tags
    aside: a versioned package may not have any."""
    request: dict[str, Any] = {
        "ModelPackageGroupName": group,
        "ModelPackageDescription": "run r1: cifar100-r1-final, test_acc=0.7500",
        "InferenceSpecification": {
            "Containers": [
                {
                    "Image": IMAGE,
                    "ModelDataUrl": f"s3://{BUCKET}/runs/r1/final/model.tar.gz",
                    "Environment": {"SAGEMAKER_PROGRAM": "inference.py"},
                }
            ],
            "SupportedContentTypes": ["application/json", "image/png"],
            "SupportedResponseMIMETypes": ["application/json"],
            "SupportedRealtimeInferenceInstanceTypes": ["ml.m5.large"],
        },
        "ModelMetrics": {
            "ModelQuality": {
                "Statistics": {
                    "ContentType": "application/json",
                    "S3Uri": f"s3://{BUCKET}/runs/r1/registry/statistics.json",
                }
            }
        },
        "ModelApprovalStatus": "PendingManualApproval",
        "CustomerMetadataProperties": {"run_id": "r1", "metric.test_acc": "0.75"},
        "MetadataProperties": {"GeneratedBy": f"{PREFIX}:training-job/cifar100-r1-final"},
    }
    request.update(changes)
    return request


def versions(sm: Any, **filters: Any) -> list[int]:
    listed = sm.list_model_packages(ModelPackageGroupName=GROUP, MaxResults=100, **filters)
    return [s["ModelPackageVersion"] for s in listed["ModelPackageSummaryList"]]


# --- groups ---------------------------------------------------------------------------


def test_groups_are_created_described_and_refused_as_aws_refuses_them(sm: Any) -> None:
    created = sm.create_model_package_group(
        ModelPackageGroupName="Cifar100-Models",
        ModelPackageGroupDescription="every registered version",
        Tags=[{"Key": "project", "Value": "cifar100"}],
    )
    group_arn = f"{PREFIX}:model-package-group/cifar100-models"  # lowercased, as ARNs are
    assert created["ModelPackageGroupArn"] == group_arn
    for reference in ("Cifar100-Models", group_arn):
        group = sm.describe_model_package_group(ModelPackageGroupName=reference)
        assert group["ModelPackageGroupName"] == "Cifar100-Models"
        assert group["ModelPackageGroupArn"] == group_arn
        assert group["ModelPackageGroupDescription"] == "every registered version"
        assert group["ModelPackageGroupStatus"] == "Completed"
        assert isinstance(group["CreationTime"], datetime)

    with pytest.raises(ClientError) as duplicate:
        sm.create_model_package_group(ModelPackageGroupName="Cifar100-Models")
    # The SageMaker SDK's _create_resource treats "already exists" as "use the existing one".
    assert error_of(duplicate) == (
        "ValidationException",
        f"Model Package Group already exists: {group_arn}",
    )
    with pytest.raises(ClientError) as missing:
        sm.describe_model_package_group(ModelPackageGroupName="ghost")
    assert error_of(missing) == (
        "ValidationException",
        f"ModelPackageGroup {PREFIX}:model-package-group/ghost does not exist.",
    )


def test_ensure_group_creates_once_for_the_stack(backend: LocalSageMaker, sm: Any) -> None:
    first = backend.registry.ensure_group(GROUP, "the stack's registry")
    assert backend.registry.ensure_group(GROUP) == first
    assert sm.describe_model_package_group(ModelPackageGroupName=GROUP)["ModelPackageGroupArn"] == (
        f"{PREFIX}:model-package-group/{GROUP}"
    )


# --- packages -------------------------------------------------------------------------


def test_versions_count_per_group_with_lowercased_versioned_arns(sm: Any) -> None:
    sm.create_model_package_group(ModelPackageGroupName=GROUP)
    sm.create_model_package_group(ModelPackageGroupName="Other")
    arns = [sm.create_model_package(**package_request())["ModelPackageArn"] for _ in range(3)]
    assert arns == [f"{PREFIX}:model-package/{GROUP}/{n}" for n in (1, 2, 3)]
    other = sm.create_model_package(**package_request("Other"))["ModelPackageArn"]
    assert other == f"{PREFIX}:model-package/other/1"

    described = sm.describe_model_package(ModelPackageName=arns[1])
    assert described["ModelPackageArn"] == arns[1]
    assert described["ModelPackageName"] == GROUP  # a version's name is its group's
    assert described["ModelPackageGroupName"] == GROUP
    assert described["ModelPackageVersion"] == 2
    assert described["ModelPackageStatus"] == "Completed"
    assert described["ModelPackageStatusDetails"] == {
        "ValidationStatuses": [],
        "ImageScanStatuses": [],
    }
    assert described["ModelApprovalStatus"] == "PendingManualApproval"
    assert described["InferenceSpecification"] == package_request()["InferenceSpecification"]
    assert described["ModelMetrics"] == package_request()["ModelMetrics"]
    assert described["CustomerMetadataProperties"] == {"run_id": "r1", "metric.test_acc": "0.75"}
    assert described["MetadataProperties"] == package_request()["MetadataProperties"]
    assert described["CertifyForMarketplace"] is False
    assert isinstance(described["CreationTime"], datetime)
    assert "Tags" not in described
    assert "ClientToken" not in described
    # The versioned name <group>/<version> names it as well as the ARN.
    assert sm.describe_model_package(ModelPackageName=f"{GROUP}/3")["ModelPackageArn"] == arns[2]
    # Without ModelApprovalStatus a version waits for approval.
    request = package_request()
    del request["ModelApprovalStatus"]
    fourth = sm.create_model_package(**request)["ModelPackageArn"]
    assert sm.describe_model_package(ModelPackageName=fourth)["ModelApprovalStatus"] == (
        "PendingManualApproval"
    )


def test_client_token_makes_create_idempotent(sm: Any, emitted: Emitted) -> None:
    sm.create_model_package_group(ModelPackageGroupName=GROUP)
    first = sm.create_model_package(**package_request(), ClientToken="r20261128030512ab12")
    again = sm.create_model_package(**package_request(), ClientToken="r20261128030512ab12")
    assert (
        again["ModelPackageArn"] == first["ModelPackageArn"] == f"{PREFIX}:model-package/{GROUP}/1"
    )
    assert versions(sm) == [1]
    assert len(emitted.of(MODEL_PACKAGE)) == 1  # the replay changed nothing

    # The token answers the package it created, whatever happened to it since.
    sm.update_model_package(
        ModelPackageArn=first["ModelPackageArn"], ModelApprovalStatus="Approved"
    )
    replay = sm.create_model_package(**package_request(), ClientToken="r20261128030512ab12")
    assert replay["ModelPackageArn"] == first["ModelPackageArn"]

    with pytest.raises(ClientError) as conflict:
        sm.create_model_package(
            **package_request(ModelPackageDescription="another model"),
            ClientToken="r20261128030512ab12",
        )
    assert error_of(conflict) == (
        "ConflictException",
        "ClientToken r20261128030512ab12 was already used by a different CreateModelPackage "
        f"request (it created {PREFIX}:model-package/{GROUP}/1).",
    )
    # Without a token botocore sends a fresh one (an idempotency token): a new version each time.
    sm.create_model_package(**package_request())
    sm.create_model_package(**package_request())
    assert versions(sm) == [1, 2, 3]


def test_create_package_refusals(sm: Any) -> None:
    with pytest.raises(ClientError) as no_group:
        sm.create_model_package(**package_request())
    assert error_of(no_group) == (
        "ValidationException",
        f"ModelPackageGroup {PREFIX}:model-package-group/{GROUP} does not exist.",
    )
    sm.create_model_package_group(ModelPackageGroupName=GROUP)
    with pytest.raises(ClientError) as tagged:
        sm.create_model_package(
            **package_request(), Tags=[{"Key": "run-id", "Value": "r20261128030512ab12"}]
        )
    assert error_of(tagged) == (
        "ValidationException",
        "Tags cannot be supplied for a versioned model package (ModelPackageGroupName): "
        "it uses the tags of its model package group.",
    )
    with pytest.raises(ClientError) as both:
        sm.create_model_package(**package_request(), ModelPackageName="named")
    assert error_of(both)[1] == (
        "Both ModelPackageName and ModelPackageGroupName are provided in the input. "
        "Cannot determine which one to use."
    )
    with pytest.raises(ClientError) as neither:
        sm.create_model_package(InferenceSpecification=package_request()["InferenceSpecification"])
    assert error_of(neither) == ("ValidationException", "Missing ARN.")
    with pytest.raises(ClientError) as unversioned:
        sm.create_model_package(ModelPackageName="marketplace-package")
    assert "not implemented by the local SageMaker" in error_of(unversioned)[1]
    with pytest.raises(ClientError) as bad_status:
        sm.create_model_package(**package_request(ModelApprovalStatus="Approve"))
    assert error_of(bad_status)[0] == "ValidationException"  # the service model's enum
    assert versions(sm) == []  # nothing refused took a version number


def test_unknown_packages_answer_aws_errors(sm: Any) -> None:
    sm.create_model_package_group(ModelPackageGroupName=GROUP)
    sm.create_model_package(**package_request())
    for reference in (f"{PREFIX}:model-package/{GROUP}/9", f"{GROUP}/9", GROUP):
        with pytest.raises(ClientError) as missing:
            sm.describe_model_package(ModelPackageName=reference)
        assert error_of(missing) == (
            "ValidationException",
            f"ModelPackage {reference} does not exist.",
        )
    ghost = f"{PREFIX}:model-package/{GROUP}/9"
    with pytest.raises(ClientError) as update:
        sm.update_model_package(ModelPackageArn=ghost, ModelApprovalStatus="Approved")
    assert error_of(update) == ("ValidationException", f"ModelPackage {ghost} does not exist.")


# --- listing --------------------------------------------------------------------------


def test_list_sorts_filters_and_pages_with_next_token(sm: Any) -> None:
    sm.create_model_package_group(ModelPackageGroupName=GROUP)
    sm.create_model_package_group(ModelPackageGroupName="other")
    arns = [sm.create_model_package(**package_request())["ModelPackageArn"] for _ in range(5)]
    sm.create_model_package(**package_request("other"))
    sm.update_model_package(ModelPackageArn=arns[1], ModelApprovalStatus="Approved")
    sm.update_model_package(ModelPackageArn=arns[3], ModelApprovalStatus="Approved")

    newest_first = {
        "ModelPackageGroupName": GROUP,
        "ModelPackageType": "Versioned",
        "SortBy": "CreationTime",
        "SortOrder": "Descending",
        "MaxResults": 2,
    }
    pages, token = [], None
    while True:
        page = sm.list_model_packages(**newest_first, **({"NextToken": token} if token else {}))
        pages.append([s["ModelPackageVersion"] for s in page["ModelPackageSummaryList"]])
        token = page.get("NextToken")
        if not token:
            break
    assert pages == [[5, 4], [3, 2], [1]]

    first = sm.list_model_packages(**newest_first)
    (summary, _) = first["ModelPackageSummaryList"]
    assert set(summary) == {
        "ModelPackageGroupName",
        "ModelPackageVersion",
        "ModelPackageArn",
        "ModelPackageDescription",
        "CreationTime",
        "ModelPackageStatus",
        "ModelApprovalStatus",
    }  # versioned summaries carry no ModelPackageName
    # A version registered between pages does not shift the next page.
    sm.create_model_package(**package_request())
    following = sm.list_model_packages(**newest_first, NextToken=first["NextToken"])
    assert [s["ModelPackageVersion"] for s in following["ModelPackageSummaryList"]] == [3, 2]

    assert versions(sm) == [1, 2, 3, 4, 5, 6]  # default: CreationTime, Ascending
    assert versions(sm, ModelApprovalStatus="Approved") == [2, 4]
    assert versions(sm, ModelApprovalStatus="Rejected") == []
    assert versions(sm, SortBy="Name", SortOrder="Descending") == [6, 5, 4, 3, 2, 1]
    by_arn = sm.list_model_packages(
        ModelPackageGroupName=f"{PREFIX}:model-package-group/{GROUP}", MaxResults=100
    )
    assert len(by_arn["ModelPackageSummaryList"]) == 6
    # ModelPackageType defaults to Unversioned: without a group, versions are not listed.
    assert sm.list_model_packages()["ModelPackageSummaryList"] == []
    assert len(sm.list_model_packages(ModelPackageType="Both")["ModelPackageSummaryList"]) == 7
    assert len(sm.list_model_packages(ModelPackageType="Versioned")["ModelPackageSummaryList"]) == 7
    paginator = sm.get_paginator("list_model_packages")
    listed = [
        s["ModelPackageVersion"]
        for page in paginator.paginate(
            ModelPackageGroupName=GROUP, PaginationConfig={"PageSize": 4}
        )
        for s in page["ModelPackageSummaryList"]
    ]
    assert listed == [1, 2, 3, 4, 5, 6]

    with pytest.raises(ClientError) as bad_token:
        sm.list_model_packages(ModelPackageGroupName=GROUP, NextToken="not-a-token")
    assert error_of(bad_token) == ("ValidationException", "Invalid pagination token: not-a-token")
    with pytest.raises(ClientError) as too_many:
        sm.list_model_packages(ModelPackageGroupName=GROUP, MaxResults=101)
    assert error_of(too_many)[0] == "ValidationException"


# --- updates and events ---------------------------------------------------------------


def test_update_records_changes_and_emits_only_on_state_changes(sm: Any, emitted: Emitted) -> None:
    sm.create_model_package_group(ModelPackageGroupName=GROUP)
    arn = sm.create_model_package(**package_request())["ModelPackageArn"]
    created = emitted.of(MODEL_PACKAGE)
    assert [e["detail"]["ModelApprovalStatus"] for e in created] == ["PendingManualApproval"]
    before = sm.describe_model_package(ModelPackageName=arn)["LastModifiedTime"]

    answer = sm.update_model_package(
        ModelPackageArn=arn,
        ModelApprovalStatus="Approved",
        ApprovalDescription="test_acc 0.75 >= 0.5",
        CustomerMetadataProperties={"approved_by": "gate", "metric.test_acc": "0.76"},
        CustomerMetadataPropertiesToRemove=["run_id"],
    )
    assert answer["ModelPackageArn"] == arn
    described = sm.describe_model_package(ModelPackageName=arn)
    assert described["ModelApprovalStatus"] == "Approved"
    assert described["ApprovalDescription"] == "test_acc 0.75 >= 0.5"
    assert described["CustomerMetadataProperties"] == {
        "approved_by": "gate",
        "metric.test_acc": "0.76",
    }
    assert described["LastModifiedTime"] > before
    assert described["CreationTime"] < described["LastModifiedTime"]
    (approved,) = emitted.of(MODEL_PACKAGE)[1:]
    assert approved["resources"] == [arn]
    assert approved["detail"]["ModelApprovalStatus"] == "Approved"
    assert approved["detail"]["ApprovalDescription"] == "test_acc 0.75 >= 0.5"

    # Same status again, or only metadata: no state change, no event.
    sm.update_model_package(ModelPackageArn=arn, ModelApprovalStatus="Approved")
    sm.update_model_package(ModelPackageArn=arn, CustomerMetadataProperties={"note": "x"})
    assert len(emitted.of(MODEL_PACKAGE)) == 2
    sm.update_model_package(ModelPackageArn=arn, ModelApprovalStatus="Rejected")
    statuses = [e["detail"]["ModelApprovalStatus"] for e in emitted.of(MODEL_PACKAGE)]
    assert statuses == ["PendingManualApproval", "Approved", "Rejected"]
    # A life-cycle stage change is a state change too (the registry's staging construct).
    sm.update_model_package(
        ModelPackageArn=arn, ModelLifeCycle={"Stage": "Production", "StageStatus": "Approved"}
    )
    assert emitted.of(MODEL_PACKAGE)[-1]["detail"]["ModelLifeCycle"]["Stage"] == "Production"


def _shape(value: Any) -> Any:
    """Keys and value types, recursively (lists by their first item)."""
    if isinstance(value, dict):
        return {k: _shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_shape(value[0])] if value else []
    return type(value).__name__


def test_the_event_has_the_documented_shape(sm: Any, emitted: Emitted) -> None:
    documented = json.loads((FIXTURE / "model_package_state_change.json").read_text())
    doc_detail = documented["detail"]
    sm.create_model_package_group(ModelPackageGroupName=GROUP)
    # The fields the developer guide's example package has, no more.
    arn = sm.create_model_package(
        ModelPackageGroupName=GROUP,
        InferenceSpecification={
            "Containers": [{"Image": IMAGE, "ModelDataUrl": f"s3://{BUCKET}/m/model.tar.gz"}],
            "SupportedContentTypes": ["application/json"],
            "SupportedResponseMIMETypes": ["application/json"],
        },
        ModelApprovalStatus="PendingManualApproval",
        MetadataProperties=doc_detail["MetadataProperties"],
        ModelMetrics=doc_detail["ModelMetrics"],
    )["ModelPackageArn"]
    sm.update_model_package(ModelPackageArn=arn, ModelApprovalStatus="Approved")
    event = emitted.of(MODEL_PACKAGE)[-1]

    assert set(event) == set(documented)
    assert (event["source"], event["detail-type"]) == ("aws.sagemaker", MODEL_PACKAGE)
    assert event["resources"] == [arn]
    assert ISO.fullmatch(event["time"])
    detail = event["detail"]
    expected = _shape(doc_detail)
    # No registry holds the local image, so there is no digest to report.
    del expected["InferenceSpecification"]["Containers"][0]["ImageDigest"]
    assert _shape(detail) == expected
    assert ISO.fullmatch(detail["CreationTime"])
    assert ISO.fullmatch(detail["LastModifiedTime"])
    assert detail["ModelPackageArn"] == arn
    assert detail["ModelPackageVersion"] == 1
    assert detail["ModelPackageGroupName"] == GROUP

    # What the orchestration registers adds only the package's own optional fields.
    full = sm.create_model_package(**package_request())["ModelPackageArn"]
    (created,) = [e for e in emitted.of(MODEL_PACKAGE) if e["resources"] == [full]]
    model = botocore.session.get_session().get_service_model("sagemaker")
    described = set(model.operation_model("DescribeModelPackage").output_shape.members)
    assert set(doc_detail) < set(created["detail"]) < described
    assert set(created["detail"]) - set(doc_detail) == {
        "ModelPackageDescription",
        "CustomerMetadataProperties",
    }


# --- CreateModel from a package -------------------------------------------------------


def publish(s3: LocalS3, tmp_path: Path, label: str) -> str:
    """A model artifact whose handler is code/serve.py: found only through SAGEMAKER_PROGRAM,
    so serving it proves the package's environment reached hosting."""
    folder = tmp_path / f"artifact-{label}"
    (folder / "code").mkdir(parents=True)
    (folder / "code" / "serve.py").write_text(HANDLER)
    (folder / "label.txt").write_text(label)
    (folder / "metadata.json").write_text("{}")
    uri = f"s3://{BUCKET}/registry/{label}/model.tar.gz"
    s3.put_tarball(folder, uri)
    return uri


def register(sm: Any, s3: LocalS3, tmp_path: Path, label: str, status: str) -> str:
    spec = {
        "Containers": [
            {
                "Image": IMAGE,
                "ModelDataUrl": publish(s3, tmp_path, label),
                "Environment": {"SAGEMAKER_PROGRAM": "serve.py"},
            }
        ],
        "SupportedContentTypes": ["application/json"],
        "SupportedResponseMIMETypes": ["application/json"],
    }
    request = package_request(InferenceSpecification=spec, ModelApprovalStatus=status)
    return str(sm.create_model_package(**request)["ModelPackageArn"])


def test_a_model_from_a_package_arn_serves_the_package(
    sm: Any, runtime: Any, s3: LocalS3, tmp_path: Path
) -> None:
    sm.create_model_package_group(ModelPackageGroupName=GROUP)
    arn = register(sm, s3, tmp_path, "koala", "PendingManualApproval")
    sm.update_model_package(ModelPackageArn=arn, ModelApprovalStatus="Approved")
    sm.create_model(
        ModelName="from-registry",
        ExecutionRoleArn=ROLE,
        PrimaryContainer={"ModelPackageName": arn},
    )
    model = sm.describe_model(ModelName="from-registry")
    assert model["PrimaryContainer"] == {"ModelPackageName": arn}  # as it was created
    sm.create_endpoint_config(
        EndpointConfigName="from-registry",
        ProductionVariants=[
            {
                "VariantName": "AllTraffic",
                "ModelName": "from-registry",
                "InitialInstanceCount": 1,
                "InstanceType": "ml.m5.large",
            }
        ],
    )
    sm.create_endpoint(EndpointName="registry-ep", EndpointConfigName="from-registry")

    def settled() -> dict[str, Any] | None:
        endpoint = sm.describe_endpoint(EndpointName="registry-ep")
        return endpoint if endpoint["EndpointStatus"] != "Creating" else None

    endpoint = wait_for(settled)
    assert endpoint["EndpointStatus"] == "InService", endpoint.get("FailureReason")
    response = runtime.invoke_endpoint(
        EndpointName="registry-ep", ContentType="application/json", Body=json.dumps({"x": 1})
    )
    assert json.loads(response["Body"].read()) == {"label": "koala", "echo": {"x": 1}}


def test_create_model_refuses_missing_unapproved_or_ambiguous_packages(
    sm: Any, s3: LocalS3, tmp_path: Path
) -> None:
    sm.create_model_package_group(ModelPackageGroupName=GROUP)
    pending = register(sm, s3, tmp_path, "pending", "PendingManualApproval")
    approved = register(sm, s3, tmp_path, "approved", "Approved")
    ghost = f"{PREFIX}:model-package/{GROUP}/9"
    cases = {
        ghost: ("ValidationException", f"ModelPackage {ghost} does not exist."),
        pending: (
            "ValidationException",
            f"Model package {pending} has ModelApprovalStatus PendingManualApproval: "
            "a versioned model package must be Approved to deploy it.",
        ),
    }
    for reference, expected in cases.items():
        with pytest.raises(ClientError) as refused:
            sm.create_model(
                ModelName="refused",
                ExecutionRoleArn=ROLE,
                PrimaryContainer={"ModelPackageName": reference},
            )
        assert error_of(refused) == expected
    with pytest.raises(ClientError) as ambiguous:
        sm.create_model(
            ModelName="refused",
            ExecutionRoleArn=ROLE,
            PrimaryContainer={"ModelPackageName": approved, "Image": IMAGE},
        )
    assert "cannot also set Image" in error_of(ambiguous)[1]
    with pytest.raises(ClientError) as nothing_created:
        sm.describe_model(ModelName="refused")
    assert error_of(nothing_created)[0] == "ValidationException"


def test_the_registry_survives_a_restart(
    tmp_path: Path, s3: LocalS3, backend: LocalSageMaker, sm: Any
) -> None:
    sm.create_model_package_group(ModelPackageGroupName=GROUP)
    for _ in range(2):
        sm.create_model_package(**package_request())
    restarted = LocalSageMaker(tmp_path / "sm", s3, lambda event: None, threads_per_job=1)
    try:
        again = attach_json_backend(make_client("sagemaker"), restarted.handle)
        third = again.create_model_package(**package_request())["ModelPackageArn"]
        assert third == f"{PREFIX}:model-package/{GROUP}/3"
        assert versions(again) == [1, 2, 3]
    finally:
        restarted.shutdown()
