"""A local SageMaker on a temporary root with a tiny fake training script (no torch), so the
job contract, the tuner, hosting and the events are tested in seconds."""

from __future__ import annotations

import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from local.s3 import LocalS3
from local.sagemaker.backend import LocalSageMaker
from local.sagemaker.wire import attach_json_backend, attach_runtime_backend, make_client
from metric_definitions import metric_regex

BUCKET = "test-bucket"
SOURCE = f"s3://{BUCKET}/code/sourcedir.tar.gz"

# Prints metric lines whose val_acc grows with the learning rate, honours the SM_* contract,
# and fails on request with a one-line error, as the real entry points do.
FAKE_TRAIN = textwrap.dedent(
    """
    import argparse, json, os, sys, time
    p = argparse.ArgumentParser()
    p.add_argument("--learning_rate", type=float, default=0.01)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--sleep", type=float, default=0)
    p.add_argument("--fail", default="no")
    p.add_argument("--_tuning_objective_metric", default="")
    args = p.parse_args()
    if args.fail == "yes":
        print("error: the data channel is empty")
        sys.exit(2)
    time.sleep(args.sleep)
    if os.environ.get("RANK", "0") != "0":  # under torchrun: rank 0 alone reports and writes
        sys.exit(0)
    for e in range(1, args.epochs + 1):
        print(f"epoch={e} train_loss=1.0 val_acc={min(0.99, args.learning_rate * 10):.4f}")
    print("test_loss=0.5000 test_acc=0.7500")
    model_dir = os.environ["SM_MODEL_DIR"]
    with open(os.path.join(model_dir, "model.txt"), "w") as f:
        json.dump({"train": os.listdir(os.environ["SM_CHANNEL_TRAIN"]), "lr": args.learning_rate}, f)
    if "WORLD_SIZE" in os.environ:
        with open(os.path.join(model_dir, "launch.json"), "w") as f:
            keys = ("WORLD_SIZE", "LOCAL_WORLD_SIZE", "SM_HOSTS", "SM_NUM_CPUS", "MASTER_ADDR")
            json.dump({k: os.environ.get(k) for k in keys}, f)
    with open(os.path.join(os.environ["SM_OUTPUT_DATA_DIR"], "metrics.json"), "w") as f:
        f.write("{}")
    """
)

METRICS = [
    {"Name": "val_acc", "Regex": metric_regex("val_acc")},
    {"Name": "test_acc", "Regex": metric_regex("test_acc")},
]


@pytest.fixture
def s3(tmp_path: Path) -> LocalS3:
    s3 = LocalS3(tmp_path / "s3")
    source = tmp_path / "src"
    source.mkdir()
    (source / "train.py").write_text(FAKE_TRAIN)
    s3.put_tarball(source, SOURCE)
    train = s3.path(f"s3://{BUCKET}/data/train")
    train.mkdir(parents=True)
    (train / "a.png").write_bytes(b"x")
    return s3


class Emitted(list):
    def of(self, detail_type: str) -> list[dict[str, Any]]:
        return [e for e in self if e["detail-type"] == detail_type]


@pytest.fixture
def emitted() -> Emitted:
    return Emitted()


@pytest.fixture
def backend(tmp_path: Path, s3: LocalS3, emitted: Emitted) -> Iterator[LocalSageMaker]:
    sagemaker = LocalSageMaker(tmp_path / "sm", s3, emitted.append, threads_per_job=1)
    yield sagemaker
    sagemaker.shutdown()


@pytest.fixture
def sm(backend: LocalSageMaker) -> Any:
    return attach_json_backend(make_client("sagemaker"), backend.handle)


@pytest.fixture
def runtime(backend: LocalSageMaker) -> Any:
    return attach_runtime_backend(make_client("sagemaker-runtime"), backend.invoke)


def training_request(name: str, **hyperparameters: str) -> dict[str, Any]:
    return {
        "TrainingJobName": name,
        "HyperParameters": {
            "sagemaker_program": "train.py",
            "sagemaker_submit_directory": SOURCE,
            **hyperparameters,
        },
        "AlgorithmSpecification": {
            "TrainingImage": "local/pytorch-training:cpu",
            "TrainingInputMode": "File",
            "MetricDefinitions": METRICS,
        },
        "RoleArn": "arn:aws:iam::000000000000:role/local",
        "InputDataConfig": [
            {
                "ChannelName": "train",
                "DataSource": {
                    "S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": f"s3://{BUCKET}/data/train"}
                },
            }
        ],
        "OutputDataConfig": {"S3OutputPath": f"s3://{BUCKET}/out"},
        "ResourceConfig": {"InstanceType": "ml.m5.xlarge", "InstanceCount": 1, "VolumeSizeInGB": 5},
        "StoppingCondition": {"MaxRuntimeInSeconds": 600},
        "Tags": [{"Key": "stage", "Value": "final"}],
    }


def wait_for(check: Callable[[], Any], timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError("timed out waiting")
