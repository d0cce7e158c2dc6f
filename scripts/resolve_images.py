"""Print the container image URIs for a region as `sam deploy --parameter-overrides` text.

The PyTorch DLC and SageMaker Debugger rule images live in per-region registries whose
account ids differ between regions; that table belongs to the SageMaker Python SDK, so this
script asks the SDK instead of copying the table by hand. It runs on a developer machine
(`make resolve-images REGION=eu-west-1`), never inside a Lambda function. The template's
default images come from the same functions (scripts/generate_image_mappings.py).

Usage: python scripts/resolve_images.py --region eu-west-1 [--training-instance ml.g5.xlarge]
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

# One PyTorch release for both images: the endpoint loads TorchScript saved by training, and
# TorchScript is backward- but not forward-compatible (2.6.0 is the newest serving DLC).
TRAINING_VERSION = "2.6.0"
INFERENCE_VERSION = "2.6.0"
PY_VERSION = "py312"
# The template's instance-type defaults (TrainingInstanceType, EndpointInstanceType): they pick
# the GPU training image and the CPU serving image.
TRAINING_INSTANCE = "ml.g5.xlarge"
ENDPOINT_INSTANCE = "ml.m5.large"


def sdk_image_uris():  # imported late: --help works without the SDK
    # Quiet import: no v2 deprecation banner, no "sagemaker.config INFO" lines on stdout.
    os.environ.setdefault("SAGEMAKER_SUPPRESS_V2_WARNING", "1")
    logging.getLogger("sagemaker.config").setLevel(logging.WARNING)
    from sagemaker import image_uris

    return image_uris


def training_image(region: str, instance_type: str = TRAINING_INSTANCE) -> str:
    return sdk_image_uris().retrieve(
        "pytorch",
        region,
        version=TRAINING_VERSION,
        py_version=PY_VERSION,
        instance_type=instance_type,
        image_scope="training",
    )


def inference_image(region: str, instance_type: str = ENDPOINT_INSTANCE) -> str:
    return sdk_image_uris().retrieve(
        "pytorch",
        region,
        version=INFERENCE_VERSION,
        py_version=PY_VERSION,
        instance_type=instance_type,
        image_scope="inference",
    )


def debugger_rule_image(region: str) -> str | None:
    """The built-in rule image, or None where the SDK lists none for the region."""
    try:
        return sdk_image_uris().retrieve("debugger", region)
    except ValueError:  # "Unsupported region: ..."
        return None


def resolve(region: str, training_instance: str, endpoint_instance: str) -> dict[str, str]:
    images = {
        "TrainingImageUri": training_image(region, training_instance),
        "InferenceImageUri": inference_image(region, endpoint_instance),
    }
    rule_image = debugger_rule_image(region)
    if rule_image is not None:
        images["DebuggerRuleImageUri"] = rule_image
    return images


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--region", required=True)
    parser.add_argument("--training-instance", default=TRAINING_INSTANCE)
    parser.add_argument("--endpoint-instance", default=ENDPOINT_INSTANCE)
    args = parser.parse_args()
    images = resolve(args.region, args.training_instance, args.endpoint_instance)
    if "DebuggerRuleImageUri" not in images:
        print(
            f"note: the SageMaker SDK lists no Debugger rule image for {args.region}; "
            "DebuggerEnabled=true needs one passed as DebuggerRuleImageUri",
            file=sys.stderr,
        )
    print(" ".join(f"{name}={uri}" for name, uri in images.items()))


if __name__ == "__main__":
    main()
