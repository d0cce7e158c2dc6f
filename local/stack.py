"""Assemble the local stack and install it as the process's collaborators.

Swap the clients, not the code: the API and the orchestration handlers get real botocore
clients whose requests the local SageMaker answers, an SQLite run store and settings that
point at local S3, through the same ``retraining.deps.set_deps`` hook the tests use.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# deploy/ is a namespace package next to local/: importable wherever ``local`` is. The cloud's
# bundler builds the bytes here too, so the code the local jobs run is packed the same way.
from deploy.source_bundle.bundle import source_files, sourcedir_tarball
from local import data
from local.alarm import LocalAlarm
from local.bus import EventBus, Rule, Schedule
from local.rules import reconcile_interval_s, stack_rules
from local.run_store import SqliteRunStore
from local.s3 import LocalS3
from local.sagemaker.backend import LocalSageMaker
from local.sagemaker.wire import attach_json_backend, attach_runtime_backend, make_client
from local.weights import imagenet_weights
from retraining.deps import Deps, set_deps, unavailable
from retraining.settings import Settings

log = logging.getLogger("local.stack")

REPO_ROOT = Path(__file__).resolve().parents[1]
BUCKET = "local-artifacts"
TRAINING_SOURCE = f"s3://{BUCKET}/code/sourcedir.tar.gz"
INFERENCE_SOURCE = f"s3://{BUCKET}/code/inference"


def local_environment(sample_data: bool, pretrained: bool = False) -> dict[str, str]:
    """Settings for a laptop: CPU, small images, few short trials; ImageNet weights (a frozen
    pretrained trunk at 64 px) when ``pretrained``, else from scratch at 32 px.
    Every value is a default: an environment variable of the same name wins."""
    return {
        "ARTIFACT_BUCKET": BUCKET,
        "SAGEMAKER_ROLE_ARN": "arn:aws:iam::000000000000:role/local-sagemaker",
        "TRAINING_IMAGE_URI": "local/pytorch-training:cpu",
        "INFERENCE_IMAGE_URI": "local/pytorch-inference:cpu",
        "TRAINING_SOURCE_S3_URI": TRAINING_SOURCE,
        "INFERENCE_SOURCE_S3_URI": INFERENCE_SOURCE,
        "TRAIN_DATA_S3_URI": f"s3://{BUCKET}/data/{'sample/train' if sample_data else 'cifar100'}",
        "TEST_DATA_S3_URI": f"s3://{BUCKET}/data/{'sample/test' if sample_data else 'cifar100'}",
        "TRAINING_INSTANCE_TYPE": "ml.m5.xlarge",
        "TUNING_INSTANCE_TYPE": "ml.m5.xlarge",
        # A laptop-sized search space: small batches suit the small data sets, few epochs a CPU.
        "TUNE_LEARNING_RATE_MIN": "0.005",
        "TUNE_LEARNING_RATE_MAX": "0.1",
        "TUNE_EPOCHS_MIN": "2",
        "TUNE_EPOCHS_MAX": "4",
        "TUNE_BATCH_SIZES": "16,32",
        "MAX_JOBS": "2",
        "MAX_PARALLEL_JOBS": "1",
        "IMAGE_SIZE": "64" if pretrained else "32",
        "PRETRAINED": "true" if pretrained else "false",
        # The generated shapes are learnt by layer4 and the head alone, in seconds per epoch;
        # real data from scratch trains the whole network (the trunk follows PRETRAINED).
        **({"FREEZE_BACKBONE": "true"} if sample_data else {}),
        "WARM_START": "false",
        "SPOT_TRAINING": "false",
        "DEBUGGER_ENABLED": "false",
        # A few CPU epochs on real CIFAR-100 reach ~10% from scratch and, we expect, 30-40%
        # from a frozen pretrained trunk (README): the cloud's 0.5 would reject them all.
        "GATE_MIN_ACCURACY": "0.5" if sample_data else "0.2" if pretrained else "0.05",
    }


@dataclass
class LocalStack:
    root: Path
    sample_data: bool = False
    threads_per_job: int = 2
    rules: list[Rule] | None = None
    schedule_minutes: float | None = None  # the retraining schedule; None: off (as by default)
    # The reconcile schedule; None: the template's ReconcileSchedule default.
    reconcile_seconds: float | None = None
    # Fault injection: the local SageMaker's state-change events are never delivered, so
    # runs progress through the reconciler alone (as when every event is lost in AWS).
    drop_sagemaker_events: bool = False
    # The model-confidence alarm (the cloud's ConfidenceAlarm* parameters); None: off.
    confidence_threshold: float | None = None
    confidence_period_s: float = 60.0
    confidence_evaluation_periods: int = 3

    def start(self) -> LocalStack:
        self.root.mkdir(parents=True, exist_ok=True)
        for name, value in local_environment(self.sample_data, self._pretrained()).items():
            os.environ.setdefault(name, value)
        self.settings = Settings()
        if self.settings.endpoint_max_capacity > self.settings.endpoint_min_capacity:
            # There is no local Application Auto Scaling (and never a fall-back to the real one).
            log.warning("ENDPOINT_MAX_CAPACITY ignored: the local endpoint does not auto-scale")
            self.settings = self.settings.model_copy(
                update={"endpoint_max_capacity": self.settings.endpoint_min_capacity}
            )
        self.s3 = LocalS3(self.root / "s3")
        self._prepare_data()
        self._publish_code()
        self.bus = EventBus(
            self.rules
            or stack_rules(REPO_ROOT, self.settings.resource_prefix, self.settings.endpoint_name),
            self.root / "events.jsonl",
        )
        emit = self._dropped if self.drop_sagemaker_events else self.bus.put
        self.sagemaker = LocalSageMaker(
            self.root / "sagemaker", self.s3, emit, self.threads_per_job
        )
        self.store = SqliteRunStore(self.root / "runs.db")
        backend = self.sagemaker
        set_deps(
            Deps(
                settings_factory=lambda: self.settings,
                sagemaker_factory=lambda: attach_json_backend(
                    make_client("sagemaker"), backend.handle
                ),
                sagemaker_runtime_factory=lambda: attach_runtime_backend(
                    make_client("sagemaker-runtime"), backend.invoke
                ),
                store_factory=lambda: self.store,
                s3_factory=lambda: self.s3,
                # No local Application Auto Scaling: the variant is never registered.
                application_autoscaling_factory=unavailable("application-autoscaling"),
            )
        )
        self.bus.start()
        self._create_model_package_group()
        self.alarm = self._confidence_alarm()
        self.schedules: list[Schedule] = []
        if self.schedule_minutes:
            self._schedule(":start_scheduled_run", self.schedule_minutes * 60)
        self._schedule(":reconcile", self.reconcile_seconds or reconcile_interval_s(REPO_ROOT))
        self.sagemaker.recover()  # jobs the previous stack left running are reported Failed
        return self

    def _pretrained(self) -> bool:
        """Real CIFAR-100 trains from ImageNet weights when there are any (PRETRAINED set in
        the environment decides instead); the sample data always trains from scratch."""
        if self.sample_data or "PRETRAINED" in os.environ:
            return False
        weights = imagenet_weights()
        if weights.available:
            log.info("ImageNet weights %s: fine-tuning a frozen pretrained trunk", weights.detail)
        else:
            log.warning(
                "ImageNet weights unavailable (%s): training CIFAR-100 from scratch, which a "
                "laptop takes to about 10%% in a few epochs (README)",
                weights.detail,
            )
        return weights.available

    def _schedule(self, target: str, interval_s: float) -> None:
        rules = [r for r in self.bus.rules if r.target.endswith(target)]
        if rules:
            schedule = Schedule(self.bus, rules[0].pattern["resources"][0], interval_s)
            schedule.start()
            self.schedules.append(schedule)

    def _dropped(self, event: dict[str, Any]) -> None:
        log.info("dropped %s (%s)", event["detail-type"], event["resources"][0])

    def _create_model_package_group(self) -> None:
        """What the template's ModelPackageGroup resource is in the cloud."""
        from botocore.exceptions import ClientError

        from retraining.aws_errors import is_already_exists
        from retraining.deps import get_deps
        from retraining.sagemaker.names import model_package_group_name

        try:
            get_deps().sagemaker.create_model_package_group(
                ModelPackageGroupName=model_package_group_name(self.settings.resource_prefix),
                ModelPackageGroupDescription="models trained by the local stack",
            )
        except ClientError as error:
            if not is_already_exists(error):  # a restart: the group is there
                raise

    def _confidence_alarm(self) -> LocalAlarm | None:
        """The template's ModelConfidenceAlarm, evaluated over the predictions this process
        serves, its state changes delivered on the local bus."""
        if self.confidence_threshold is None:
            return None
        prefix = self.settings.resource_prefix
        return LocalAlarm(
            f"{prefix}-model-confidence",
            threshold=self.confidence_threshold,
            period_s=self.confidence_period_s,
            evaluation_periods=self.confidence_evaluation_periods,
            emit=self.bus.put,
            namespace=prefix,
            dimensions={"service": "api"},
            description="Mean top-1 probability of /predict answers is low",
        ).start()

    def stop(self) -> None:
        if self.alarm is not None:
            self.alarm.stop()
        for schedule in self.schedules:
            schedule.stop()
        self.sagemaker.shutdown()
        self.bus.stop()
        set_deps(None)

    def wait_idle(self, timeout: float = 30) -> bool:
        """True once the event bus has nothing left to deliver (tests, CLI)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.bus.idle():
                return True
            time.sleep(0.1)
        return False

    def _prepare_data(self) -> None:
        if self.sample_data:
            data.ensure_sample(self.s3.path(f"s3://{BUCKET}/data/sample"))
        else:
            data.ensure_cifar100(self.s3.path(f"s3://{BUCKET}/data/cifar100"))

    def _publish_code(self) -> None:
        """What `sam deploy` uploads in the cloud, built by the cloud's own bundler: training/
        as sourcedir.tar.gz and model_handler/ as the inference_code channel. Republished at
        every start under the fixed keys the local settings name (no content hash: a restart
        fails the jobs that ran the old code anyway)."""
        self.s3.write(TRAINING_SOURCE, sourcedir_tarball(REPO_ROOT / "training"))
        inference = self.s3.path(INFERENCE_SOURCE)
        if inference.exists():
            shutil.rmtree(inference)  # no stale files from an older model_handler/
        handler_root = REPO_ROOT / "model_handler"
        for path in source_files(handler_root):
            key = path.relative_to(handler_root).as_posix()
            self.s3.write(f"{INFERENCE_SOURCE}/{key}", path.read_bytes())

    def describe(self) -> dict[str, Any]:
        return {"root": str(self.root), "s3": str(self.s3.root), "runs": str(self.store.path)}
