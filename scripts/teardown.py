"""Delete what retraining runs created outside CloudFormation: the endpoint (the part that
bills by the hour), then this stack's endpoint configs and models. `make teardown` runs it
before `sam delete`. The bucket and table are retained by the stack (they hold the data and
the run history); the README says how to remove them.

Usage: python scripts/teardown.py --stack-name cifar100 [--region eu-west-1] [--dry-run]
"""

from __future__ import annotations

import argparse
from typing import Any

import boto3
from botocore.exceptions import ClientError


def stack_outputs(cloudformation: Any, stack_name: str) -> dict[str, str]:
    (stack,) = cloudformation.describe_stacks(StackName=stack_name)["Stacks"]
    return {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}


def stack_parameter(cloudformation: Any, stack_name: str, key: str) -> str:
    (stack,) = cloudformation.describe_stacks(StackName=stack_name)["Stacks"]
    values = {p["ParameterKey"]: p.get("ParameterValue", "") for p in stack["Parameters"]}
    return values[key]


def names_with_prefix(pages: Any, list_key: str, key: str, prefix: str) -> list[str]:
    # NameContains is a substring filter: keep only names that start with the prefix.
    return [item[key] for page in pages for item in page[list_key] if item[key].startswith(prefix)]


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
    configs = names_with_prefix(
        sagemaker.get_paginator("list_endpoint_configs").paginate(NameContains=prefix),
        "EndpointConfigs",
        "EndpointConfigName",
        f"{prefix}-",
    )
    for name in configs:
        if not dry_run:
            sagemaker.delete_endpoint_config(EndpointConfigName=name)
        done.append(f"endpoint config {name}")
    models = names_with_prefix(
        sagemaker.get_paginator("list_models").paginate(NameContains=prefix),
        "Models",
        "ModelName",
        f"{prefix}-",
    )
    for name in models:
        if not dry_run:
            sagemaker.delete_model(ModelName=name)
        done.append(f"model {name}")
    return done


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stack-name", default="cifar100")
    parser.add_argument("--region")
    parser.add_argument("--dry-run", action="store_true", help="list, delete nothing")
    args = parser.parse_args()
    session = boto3.Session(region_name=args.region)
    cloudformation = session.client("cloudformation")
    outputs = stack_outputs(cloudformation, args.stack_name)
    prefix = stack_parameter(cloudformation, args.stack_name, "ResourcePrefix")
    for line in teardown(
        session.client("sagemaker"), outputs["EndpointName"], prefix, args.dry_run
    ):
        print(("would delete " if args.dry_run else "deleted ") + line)
    print(f"kept: bucket {outputs['ArtifactBucketName']}, table {outputs['RunsTableName']}")


if __name__ == "__main__":
    main()
