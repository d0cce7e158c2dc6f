"""The AWS wiring: Settings from the environment, boto3 clients built lazily (once per Lambda
container), DynamoRunStore on RUNS_TABLE."""

from __future__ import annotations

from typing import Any

from retraining.deps import Deps
from retraining.settings import PREDICT_MAX_ATTEMPTS, Settings

#: Standard retry mode: exponential backoff with jitter on throttling, 5xx and timeouts;
#: what still fails is re-raised for EventBridge's own retry.
DEFAULT_MAX_ATTEMPTS = 3


def client_config(
    connect_timeout_s: float = 2.0,
    read_timeout_s: float = 20.0,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
) -> Any:
    from botocore.config import Config

    return Config(
        retries={"mode": "standard", "total_max_attempts": max_attempts},
        connect_timeout=connect_timeout_s,
        read_timeout=read_timeout_s,
    )


def _client(service: str, **config: Any) -> Any:
    import boto3

    return boto3.client(service, config=client_config(**config))


def application_autoscaling_client() -> Any:
    return _client("application-autoscaling")


def deps_from_env() -> Deps:
    settings = Settings()
    return Deps(
        settings_factory=lambda: settings,
        sagemaker_factory=lambda: _client("sagemaker"),
        sagemaker_runtime_factory=lambda: _client(
            "sagemaker-runtime",
            connect_timeout_s=settings.predict_connect_timeout_s,
            read_timeout_s=settings.predict_read_timeout_s,
            max_attempts=PREDICT_MAX_ATTEMPTS,
        ),
        store_factory=_store_factory(settings),
        application_autoscaling_factory=application_autoscaling_client,
    )


def _store_factory(settings: Settings) -> Any:
    def build() -> Any:
        from retraining.dynamo_store import DynamoRunStore

        return DynamoRunStore(_client("dynamodb"), settings.runs_table)

    return build
