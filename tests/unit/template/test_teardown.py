"""scripts/teardown.py against moto SageMaker: deletes the stack's endpoint, endpoint configs
and models, and nothing of another project."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import boto3
from moto import mock_aws

ROLE = "arn:aws:iam::123456789012:role/sm"
IMAGE = "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-inference:2.6.0-cpu-py312"


def _teardown_module(repo: Path) -> Any:
    spec = importlib.util.spec_from_file_location("teardown", repo / "scripts" / "teardown.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _model_and_config(sagemaker: Any, name: str) -> None:
    sagemaker.create_model(
        ModelName=name,
        ExecutionRoleArn=ROLE,
        PrimaryContainer={"Image": IMAGE, "ModelDataUrl": "s3://b/m.tar.gz"},
    )
    sagemaker.create_endpoint_config(
        EndpointConfigName=name,
        ProductionVariants=[
            {
                "VariantName": "AllTraffic",
                "ModelName": name,
                "InitialInstanceCount": 1,
                "InstanceType": "ml.m5.large",
            }
        ],
    )


def test_teardown_deletes_only_this_stacks_sagemaker_resources(tools: Any) -> None:
    teardown = _teardown_module(tools.repo)
    with mock_aws():
        sagemaker = boto3.client("sagemaker", region_name="us-east-1")
        _model_and_config(sagemaker, "cifar100-r20261128030512ab12")
        _model_and_config(sagemaker, "other-r20261128030512ab12")
        sagemaker.create_endpoint(
            EndpointName="cifar100-classifier",
            EndpointConfigName="cifar100-r20261128030512ab12",
        )

        listed = teardown.teardown(sagemaker, "cifar100-classifier", "cifar100", dry_run=True)
        assert len(listed) == 3
        assert sagemaker.list_models()["Models"]  # a dry run deletes nothing

        done = teardown.teardown(sagemaker, "cifar100-classifier", "cifar100", dry_run=False)
        assert done == listed
        assert [m["ModelName"] for m in sagemaker.list_models()["Models"]] == [
            "other-r20261128030512ab12"
        ]
        configs = sagemaker.list_endpoint_configs()["EndpointConfigs"]
        assert [c["EndpointConfigName"] for c in configs] == ["other-r20261128030512ab12"]
        assert sagemaker.list_endpoints()["Endpoints"] == []
        # Running it again (nothing left) is fine.
        assert teardown.teardown(sagemaker, "cifar100-classifier", "cifar100", False) == []
