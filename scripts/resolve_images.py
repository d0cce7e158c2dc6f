"""Print the container image URIs for a region as `sam deploy --parameter-overrides` text.

The PyTorch DLC and SageMaker Debugger rule images live in per-region registries whose
account ids differ between regions; that table belongs to the SageMaker Python SDK, so this
script asks the SDK instead of copying the table into the template. It runs on a developer
machine (`make resolve-images REGION=eu-west-1`), never inside a Lambda function.

Usage: python scripts/resolve_images.py --region eu-west-1 [--training-instance ml.g5.xlarge]
"""

from __future__ import annotations

import argparse

# One PyTorch release for both images: the endpoint loads TorchScript saved by training, and
# TorchScript is backward- but not forward-compatible (2.6.0 is the newest serving DLC).
TRAINING_VERSION = "2.6.0"
INFERENCE_VERSION = "2.6.0"
PY_VERSION = "py312"


def resolve(region: str, training_instance: str, endpoint_instance: str) -> dict[str, str]:
    from sagemaker import image_uris  # imported late: --help works without the SDK

    return {
        "TrainingImageUri": image_uris.retrieve(
            "pytorch",
            region,
            version=TRAINING_VERSION,
            py_version=PY_VERSION,
            instance_type=training_instance,
            image_scope="training",
        ),
        "InferenceImageUri": image_uris.retrieve(
            "pytorch",
            region,
            version=INFERENCE_VERSION,
            py_version=PY_VERSION,
            instance_type=endpoint_instance,
            image_scope="inference",
        ),
        "DebuggerRuleImageUri": image_uris.retrieve("debugger", region),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--region", required=True)
    parser.add_argument("--training-instance", default="ml.g5.xlarge")
    parser.add_argument("--endpoint-instance", default="ml.m5.large")
    args = parser.parse_args()
    images = resolve(args.region, args.training_instance, args.endpoint_instance)
    print(" ".join(f"{name}={uri}" for name, uri in images.items()))


if __name__ == "__main__":
    main()
