"""The Model Registry's request bodies and readers (retraining.sagemaker.registry), validated
against botocore's service models."""

from __future__ import annotations

import json
import unicodedata

import boto3
import pytest
from botocore.validate import validate_parameters

from retraining.records import RunRecord, RunStatus
from retraining.sagemaker import registry
from tests.support.sagemaker_double import (
    GROUP,
    RecordingS3,
    RecordingSageMaker,
    make_settings,
    model_artifact,
    package_arn,
    package_description,
    package_summaries,
    training_description,
)

RUN_ID = "r20261128030512ab12"
_SAGEMAKER = boto3.client("sagemaker", region_name="us-east-1").meta.service_model


def assert_valid(operation: str, request: dict) -> None:
    validate_parameters(request, _SAGEMAKER.operation_model(operation).input_shape)


def trained(hyperparameters: dict[str, str] | None = None, **fields) -> RunRecord:
    return RunRecord(
        run_id=RUN_ID,
        trigger="schedule",
        status=RunStatus.TRAINING,
        tuning_job_name=f"cifar100-{RUN_ID}",
        training_job_name=f"cifar100-{RUN_ID}-final",
        best_training_job_name=f"cifar100-{RUN_ID}-002-4f1c2a9b",
        best_hyperparameters=hyperparameters
        or {"learning_rate": "0.0123", "batch_size": "128", "epochs": "6"},
        **fields,
    )


def training() -> dict:
    return training_description(f"cifar100-{RUN_ID}-final", RUN_ID, 0.71)


METRICS = {"test_acc": 0.71, "champion_test_acc": 0.69, "mcnemar_p_value": 3e-07}


def test_the_package_request_matches_the_service_model_and_says_what_serves():
    settings = make_settings()
    request = registry.package_request(settings, trained(), training(), METRICS)
    assert_valid("CreateModelPackage", request)
    assert request["ModelPackageGroupName"] == GROUP == registry.group_name(settings)
    assert request["ClientToken"] == RUN_ID
    assert request["ModelApprovalStatus"] == "PendingManualApproval"
    (container,) = request["InferenceSpecification"]["Containers"]
    assert container["ModelDataUrl"] == model_artifact(RUN_ID)
    assert container["Image"] == settings.inference_image_uri
    assert request["ModelMetrics"]["ModelQuality"]["Statistics"]["S3Uri"] == (
        registry.statistics_uri(settings, RUN_ID)
    )
    assert request["ModelPackageDescription"] == (
        f"run {RUN_ID} (schedule): cifar100-{RUN_ID}-final, champion_test_acc=0.69, "
        "mcnemar_p_value=3e-07, test_acc=0.71"
    )
    meta = request["CustomerMetadataProperties"]
    assert meta == {
        "run_id": RUN_ID,
        "trigger": "schedule",
        "training_job_name": f"cifar100-{RUN_ID}-final",
        "tuning_job_name": f"cifar100-{RUN_ID}",
        "best_training_job_name": f"cifar100-{RUN_ID}-002-4f1c2a9b",
        "metric.champion_test_acc": "0.69",
        "metric.mcnemar_p_value": "3e-07",  # repr: nothing lost to rounding
        "metric.test_acc": "0.71",
        "hp.batch_size": "128",
        "hp.epochs": "6",
        "hp.learning_rate": "0.0123",
    }
    # A versioned package takes no tags (CreateModelPackage: with a group "you cannot supply
    # a tag argument"); the run id is in the metadata and the ClientToken.
    assert "Tags" not in request
    assert request["MetadataProperties"] == {
        "GeneratedBy": f"arn:aws:sagemaker:us-east-1:123456789012:training-job/cifar100-{RUN_ID}-final"
    }


@pytest.mark.parametrize("precision", ["auto", "int8", "fp32"])
def test_the_registered_container_serves_the_stacks_precision(precision: str):
    """The package's container environment is what every model created from it runs with
    (CreateModel names only the package): the precision is fixed at registration."""
    settings = make_settings(inference_precision=precision)
    request = registry.package_request(settings, trained(), training(), METRICS)
    assert_valid("CreateModelPackage", request)
    (container,) = request["InferenceSpecification"]["Containers"]
    assert container["Environment"]["INFERENCE_PRECISION"] == precision
    assert container["Environment"]["SAGEMAKER_PROGRAM"] == "inference.py"


def test_metadata_and_description_stay_within_sagemakers_limits():
    many = {f"param_{i:02d}": "x" * 300 for i in range(60)}
    metrics = {f"metric_{i:02d}": 0.5 for i in range(80)}
    request = registry.package_request(make_settings(), trained(many), training(), metrics)
    assert_valid("CreateModelPackage", request)
    meta = request["CustomerMetadataProperties"]
    assert len(meta) == 50  # CustomerMetadataMap allows 50 entries
    assert all(len(value) <= 256 for value in meta.values())
    assert meta["run_id"] == RUN_ID  # the run's keys come first and are kept
    assert len(request["ModelPackageDescription"]) <= 1024


def _metadata_text(text: str, longest: int) -> bool:
    """CustomerMetadataKey/Value: ``[\\p{L}\\p{Z}\\p{N}_.:/=+\\-@]{1,longest}`` (the service
    model's pattern and length, neither of which botocore checks)."""
    allowed = all(unicodedata.category(c)[0] in "LZN" or c in "_.:/=+-@" for c in text)
    return allowed and 1 <= len(text) <= longest


def test_metadata_keys_and_values_match_the_service_models_pattern():
    run = trained({"learning_rate": "1e-05", "pretrained": "true", "epochs": "12"})
    metrics = {**METRICS, "test_loss": -0.0, "val_acc": float("inf")}
    request = registry.package_request(make_settings(), run, training(), metrics)
    for key, value in request["CustomerMetadataProperties"].items():
        assert _metadata_text(key, 128), key
        assert _metadata_text(value, 256), (key, value)
    assert len(request["ClientToken"]) <= 36
    assert request["ClientToken"].replace("-", "").isalnum()


def test_a_package_is_read_back_as_it_was_registered():
    request = registry.package_request(make_settings(), trained(), training(), METRICS)
    version = registry.ModelVersion.from_description(
        package_description(4, "Approved", registered=request, approval_description="ok")
    )
    assert version.version == 4
    assert version.arn == package_arn(4)
    assert version.approval_status == "Approved"
    assert version.approval_description == "ok"
    assert version.created_at == "2026-11-28T04:00:00Z"
    assert version.run_id == RUN_ID
    assert version.tuning_job_name == f"cifar100-{RUN_ID}"
    assert version.model_data_url == model_artifact(RUN_ID)
    assert version.metrics == METRICS
    assert version.hyperparameters == {
        "learning_rate": "0.0123",
        "batch_size": "128",
        "epochs": "6",
    }


def test_a_metric_edited_in_the_console_does_not_hide_the_others():
    answer = package_description(1)
    answer["CustomerMetadataProperties"]["metric.test_acc"] = "very good"
    answer["CustomerMetadataProperties"]["metric.val_acc"] = "0.6"
    assert registry.ModelVersion.from_description(answer).metrics == {"val_acc": 0.6}


@pytest.mark.parametrize(
    ("arn", "version"),
    [(package_arn(1), 1), (package_arn(42), 42), (package_arn(7, "other-models"), 7)],
)
def test_the_version_is_the_tail_of_a_versioned_arn(arn, version):
    assert registry.version_of(arn) == version


def test_an_unversioned_arn_is_refused():
    with pytest.raises(ValueError, match="not a versioned model package ARN"):
        registry.version_of("arn:aws:sagemaker:us-east-1:123456789012:model-package/my-package")


def test_statistics_are_written_where_the_package_points():
    settings = make_settings()
    s3 = RecordingS3()
    uri = registry.statistics_uri(settings, RUN_ID)
    assert uri == f"s3://cifar100-artifacts/runs/{RUN_ID}/registry/statistics.json"
    document = registry.statistics_document(trained(), training(), METRICS)
    registry.write_statistics(s3.client, uri, document)
    (put,) = s3.requests("PutObject")
    assert put["Bucket"] == "cifar100-artifacts"
    assert put["Key"] == f"runs/{RUN_ID}/registry/statistics.json"
    assert put["ContentType"] == "application/json"
    assert json.loads(put["Body"]) == document
    assert document["metrics"] == METRICS
    assert document["model_data_url"] == model_artifact(RUN_ID)
    assert document["training_job_arn"].endswith(f"training-job/cifar100-{RUN_ID}-final")
    s3.assert_all_used()


def test_a_refused_statistics_write_raises():
    s3 = RecordingS3()
    s3.fail("put_object", "AccessDenied", "Access Denied", 403)
    with pytest.raises(Exception, match="Access Denied"):
        registry.write_statistics(s3.client, "s3://b/k.json", {"a": 1})


def test_register_and_approve_send_what_the_service_model_accepts():
    sagemaker = RecordingSageMaker()
    request = registry.package_request(make_settings(), trained(), training(), METRICS)
    sagemaker.expect("create_model_package", {"ModelPackageArn": package_arn(5)})
    assert registry.register(sagemaker.client, request) == package_arn(5)
    sagemaker.expect("update_model_package", {"ModelPackageArn": package_arn(5)})
    registry.set_approval(sagemaker.client, package_arn(5), "Rejected", "why " * 500)
    (update,) = sagemaker.requests("UpdateModelPackage")
    assert update["ModelApprovalStatus"] == "Rejected"
    assert len(update["ApprovalDescription"]) == 1024  # the API's maximum
    sagemaker.assert_all_used()


def test_find_reads_every_page_before_it_gives_up():
    sagemaker = RecordingSageMaker()
    settings = make_settings()
    sagemaker.expect("list_model_packages", package_summaries((9, "Approved"), next_token="a"))
    sagemaker.expect("list_model_packages", package_summaries((8, "Rejected"), next_token="b"))
    sagemaker.expect("list_model_packages", package_summaries())
    with pytest.raises(registry.VersionNotFound) as missing:
        registry.find(sagemaker.client, settings, 3)
    assert missing.value.version == 3
    tokens = [r.get("NextToken") for r in sagemaker.requests("ListModelPackages")]
    assert tokens == [None, "a", "b"]
    assert sagemaker.requests("DescribeModelPackage") == []


def test_list_page_is_one_page_newest_first():
    sagemaker = RecordingSageMaker()
    sagemaker.expect("list_model_packages", package_summaries((2, "Approved"), (1, "Rejected")))
    sagemaker.expect("describe_model_package", package_description(2))
    sagemaker.expect("describe_model_package", package_description(1, "Rejected"))
    versions, cursor = registry.list_page(sagemaker.client, make_settings(), 2, None)
    assert [(v.version, v.approval_status) for v in versions] == [(2, "Approved"), (1, "Rejected")]
    assert cursor is None
    (listed,) = sagemaker.requests("ListModelPackages")
    assert listed == {
        "ModelPackageGroupName": GROUP,
        "ModelPackageType": "Versioned",
        "SortBy": "CreationTime",
        "SortOrder": "Descending",
        "MaxResults": 2,
    }
    assert [r["ModelPackageName"] for r in sagemaker.requests("DescribeModelPackage")] == [
        package_arn(2),
        package_arn(1),
    ]
