"""Print the CreateTrainingJob requests the SageMaker Python SDK builds for PyTorch estimators
(offline: no AWS call), one JSON line per ``--case``, so tests can compare the orchestration's
requests with the SDK's.

Run with the pinned SDK (`make sam-venv` installs it under .sam-venv/sagemaker):
    .sam-venv/sagemaker/bin/python scripts/sdk_training_request.py \\
        --case ml.g5.12xlarge:2:torch_distributed --case ml.m5.xlarge:1
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--case",
        action="append",
        required=True,
        metavar="TYPE:COUNT[:torch_distributed]",
        help="an instance type and count, with the torch_distributed distribution or none",
    )
    parser.add_argument("--image-uri", default="local/pytorch-training:2.6.0-gpu-py312")
    args = parser.parse_args(argv)

    os.environ["SAGEMAKER_SUPPRESS_V2_WARNING"] = "1"
    logging.getLogger("sagemaker.config").setLevel(logging.WARNING)
    import boto3
    from sagemaker.estimator import _TrainingJob
    from sagemaker.pytorch import PyTorch
    from sagemaker.session import Session

    boto = boto3.Session(
        region_name="us-east-1", aws_access_key_id="offline", aws_secret_access_key="offline"
    )
    session = Session(boto_session=boto, default_bucket="bucket")
    for case in args.case:
        instance_type, count, *distribution = case.split(":")
        estimator = PyTorch(
            entry_point="train_model.py",
            source_dir="s3://bucket/code/sourcedir.tar.gz",  # in S3 already: nothing uploaded
            image_uri=args.image_uri,
            role="arn:aws:iam::123456789012:role/sagemaker",
            instance_count=int(count),
            instance_type=instance_type,
            distribution={"torch_distributed": {"enabled": True}} if distribution else None,
            sagemaker_session=session,
            output_path="s3://bucket/out",
            disable_profiler=True,
        )
        estimator._prepare_for_training(job_name="job")
        train_args = _TrainingJob._get_train_args(
            estimator, {"train": "s3://bucket/data/train/"}, experiment_config=None
        )
        print(json.dumps(session._get_train_request(**train_args), default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
