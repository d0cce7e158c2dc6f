"""The local SageMaker's operation table: what it answers, what it refuses, and the smaller
operations (listing, tags, lookups) behind a real botocore client."""

from __future__ import annotations

from typing import Any

import botocore.session
import pytest
from botocore.exceptions import ClientError

from local.sagemaker.backend import LocalSageMaker
from local.sagemaker.errors import ServiceError
from tests.integration.local.conftest import training_request, wait_for

SERVED = {
    "CreateTrainingJob",
    "DescribeTrainingJob",
    "ListTrainingJobs",
    "StopTrainingJob",
    "CreateHyperParameterTuningJob",
    "DescribeHyperParameterTuningJob",
    "ListTrainingJobsForHyperParameterTuningJob",
    "StopHyperParameterTuningJob",
    "CreateModel",
    "DescribeModel",
    "CreateEndpointConfig",
    "DescribeEndpointConfig",
    "CreateEndpoint",
    "UpdateEndpoint",
    "DescribeEndpoint",
    "ListTags",
    "CreateModelPackageGroup",
    "DescribeModelPackageGroup",
    "CreateModelPackage",
    "DescribeModelPackage",
    "ListModelPackages",
    "UpdateModelPackage",
}


def error_of(raised: pytest.ExceptionInfo[ClientError]) -> tuple[str, str]:
    error = raised.value.response["Error"]
    return error["Code"], error["Message"]


def finished(sm: Any, name: str) -> bool:
    status = sm.describe_training_job(TrainingJobName=name)["TrainingJobStatus"]
    return status not in ("InProgress", "Stopping")


def test_the_table_serves_real_sagemaker_operations(backend: LocalSageMaker) -> None:
    model = botocore.session.get_session().get_service_model("sagemaker")
    assert set(backend.operations) == SERVED
    assert set(model.operation_names) >= SERVED  # a misspelt name would never be called


def test_operations_outside_the_table_are_refused_as_aws_refuses_them(
    sm: Any, backend: LocalSageMaker
) -> None:
    with pytest.raises(ClientError) as raised:
        sm.delete_endpoint(EndpointName="ep")
    assert error_of(raised) == (
        "ValidationException",
        "DeleteEndpoint is not implemented by the local SageMaker",
    )
    assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    # Internal helpers are not operations, whatever their names.
    for name in ("RunTraining", "Spawn", "Save", "Deploy", "Recover", "Shutdown"):
        with pytest.raises(ServiceError) as refused:
            backend.handle(name, {})
        assert (refused.value.code, refused.value.status) == ("ValidationException", 400)


def test_list_training_jobs_filters_newest_first(sm: Any) -> None:
    for name in ("list-a", "list-b", "other-c"):
        sm.create_training_job(**training_request(name, fail="yes"))
    for name in ("list-a", "list-b", "other-c"):
        wait_for(lambda name=name: finished(sm, name))

    names = [s["TrainingJobName"] for s in sm.list_training_jobs()["TrainingJobSummaries"]]
    assert names == ["other-c", "list-b", "list-a"]
    listed = sm.list_training_jobs(NameContains="list", StatusEquals="Failed", MaxResults=1)
    (summary,) = listed["TrainingJobSummaries"]
    assert summary["TrainingJobName"] == "list-b"
    assert set(summary) == {
        "TrainingJobName",
        "TrainingJobArn",
        "CreationTime",
        "TrainingEndTime",
        "LastModifiedTime",
        "TrainingJobStatus",
    }
    assert sm.list_training_jobs(StatusEquals="Completed")["TrainingJobSummaries"] == []


def test_list_tags_answers_for_jobs_and_refuses_unknown_arns(sm: Any) -> None:
    job_arn = sm.create_training_job(**training_request("tagged", fail="yes"))["TrainingJobArn"]
    assert sm.list_tags(ResourceArn=job_arn)["Tags"] == [{"Key": "stage", "Value": "final"}]

    missing = "arn:aws:sagemaker:us-east-1:000000000000:training-job/none"
    with pytest.raises(ClientError) as raised:
        sm.list_tags(ResourceArn=missing)
    assert error_of(raised) == ("ValidationException", f"Could not find resource {missing}")


def test_lookups_of_missing_resources_answer_aws_errors(sm: Any) -> None:
    prefix = "arn:aws:sagemaker:us-east-1:000000000000"
    with pytest.raises(ClientError) as model:
        sm.describe_model(ModelName="Ghost")
    assert error_of(model) == (
        "ValidationException",
        f'Could not find model "{prefix}:model/ghost".',
    )
    with pytest.raises(ClientError) as config:
        sm.describe_endpoint_config(EndpointConfigName="ghost")
    assert error_of(config) == (
        "ValidationException",
        f'Could not find endpoint configuration "{prefix}:endpoint-config/ghost".',
    )
    with pytest.raises(ClientError) as endpoint:
        sm.update_endpoint(EndpointName="ghost", EndpointConfigName="ghost")
    assert error_of(endpoint) == (
        "ValidationException",
        f'Could not find endpoint "{prefix}:endpoint/ghost".',
    )
    with pytest.raises(ClientError) as tuning:
        sm.stop_hyper_parameter_tuning_job(HyperParameterTuningJobName="ghost")
    assert error_of(tuning) == (
        "ResourceNotFound",
        "Amazon SageMaker can't find a tuning job with name ghost",
    )
    with pytest.raises(ClientError) as definition:
        sm.create_hyper_parameter_tuning_job(
            HyperParameterTuningJobName="no-definition",
            HyperParameterTuningJobConfig={
                "Strategy": "Random",
                "ResourceLimits": {"MaxNumberOfTrainingJobs": 1, "MaxParallelTrainingJobs": 1},
            },
        )
    assert error_of(definition) == (
        "ValidationException",
        "TrainingJobDefinition is required by the local SageMaker",
    )
