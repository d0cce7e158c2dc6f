"""The AWS wiring: Settings from the environment, boto3 clients built lazily (once per Lambda
container), DynamoRunStore on RUNS_TABLE."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from retraining.deps import Deps
from retraining.settings import ORCHESTRATION_MAX_ATTEMPTS, PREDICT_MAX_ATTEMPTS, Settings


def client_config(
    connect_timeout_s: float,
    read_timeout_s: float,
    max_attempts: int = ORCHESTRATION_MAX_ATTEMPTS,
) -> Any:
    """Standard retry mode: exponential backoff with jitter on throttling, 5xx and timeouts;
    what still fails is re-raised (the reconcile schedule takes the step again)."""
    from botocore.config import Config

    return Config(
        retries={"mode": "standard", "total_max_attempts": max_attempts},
        connect_timeout=connect_timeout_s,
        read_timeout=read_timeout_s,
    )


def deps_from_env() -> Deps:
    settings = Settings()

    def control_plane(service: str) -> Callable[[], Any]:
        def build() -> Any:
            return _client(
                service,
                client_config(settings.aws_connect_timeout_s, settings.aws_read_timeout_s),
            )

        return build

    runtime = client_config(
        settings.predict_connect_timeout_s,
        settings.predict_read_timeout_s,
        max_attempts=PREDICT_MAX_ATTEMPTS,
    )
    dynamodb = control_plane("dynamodb")
    return Deps(
        settings_factory=lambda: settings,
        sagemaker_factory=control_plane("sagemaker"),
        sagemaker_runtime_factory=lambda: _client("sagemaker-runtime", runtime),
        store_factory=lambda: _dynamo_store(dynamodb(), settings.runs_table),
        application_autoscaling_factory=control_plane("application-autoscaling"),
        s3_factory=control_plane("s3"),
    )


def _client(service: str, config: Any) -> Any:
    import boto3

    return boto3.client(service, config=config)


def _dynamo_store(client: Any, table: str) -> Any:
    from retraining.stores.dynamo import DynamoRunStore

    return DynamoRunStore(client, table)
