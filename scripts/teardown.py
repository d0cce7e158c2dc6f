"""Delete what retraining runs created outside CloudFormation: the endpoint (the part that
bills by the hour), then this stack's endpoint configs and models. `make teardown` runs it
before `sam delete`. The bucket and table are retained by the stack (they hold the data and
the run history); docs/deploy.md says how to remove them.

Usage: python scripts/teardown.py --stack-name cifar100 [--region eu-west-1] [--dry-run]
"""

from __future__ import annotations

import argparse
from typing import Any

import boto3
from botocore.exceptions import ClientError


def describe_stack(cloudformation: Any, stack_name: str) -> tuple[dict[str, str], dict[str, str]]:
    """The stack's outputs and parameters, from one DescribeStacks call."""
    (stack,) = cloudformation.describe_stacks(StackName=stack_name)["Stacks"]
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
    parameters = {p["ParameterKey"]: p.get("ParameterValue", "") for p in stack["Parameters"]}
    return outputs, parameters


def names_with_prefix(pages: Any, list_key: str, key: str, prefix: str) -> list[str]:
    # NameContains is a substring filter: keep only names that start with the prefix.
    return [item[key] for page in pages for item in page[list_key] if item[key].startswith(prefix)]


# What runs create besides the endpoint, configs before the models they name:
# (list operation, list key, name key = the delete call's argument, delete operation, label).
_PREFIXED_RESOURCES = (
    (
        "list_endpoint_configs",
        "EndpointConfigs",
        "EndpointConfigName",
        "delete_endpoint_config",
        "endpoint config",
    ),
    ("list_models", "Models", "ModelName", "delete_model", "model"),
)


def teardown(sagemaker: Any, endpoint_name: str, prefix: str, dry_run: bool) -> list[str]:
    """Delete the endpoint, then every endpoint config and model named ``<prefix>-...``."""
    done: list[str] = []
    try:
        sagemaker.describe_endpoint(EndpointName=endpoint_name)
        if not dry_run:
            sagemaker.delete_endpoint(EndpointName=endpoint_name)
        done.append(f"endpoint {endpoint_name}")
    except ClientError as error:
        if "Could not find" not in str(error):
            raise
    for list_operation, list_key, key, delete_operation, label in _PREFIXED_RESOURCES:
        pages = sagemaker.get_paginator(list_operation).paginate(NameContains=prefix)
        for name in names_with_prefix(pages, list_key, key, f"{prefix}-"):
            if not dry_run:
                getattr(sagemaker, delete_operation)(**{key: name})
            done.append(f"{label} {name}")
    return done


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stack-name", default="cifar100")
    parser.add_argument("--region")
    parser.add_argument("--dry-run", action="store_true", help="list, delete nothing")
    args = parser.parse_args()
    session = boto3.Session(region_name=args.region)
    outputs, parameters = describe_stack(session.client("cloudformation"), args.stack_name)
    prefix = parameters["ResourcePrefix"]
    for line in teardown(
        session.client("sagemaker"), outputs["EndpointName"], prefix, args.dry_run
    ):
        print(("would delete " if args.dry_run else "deleted ") + line)
    print(f"kept: bucket {outputs['ArtifactBucketName']}, table {outputs['RunsTableName']}")


if __name__ == "__main__":
    main()
