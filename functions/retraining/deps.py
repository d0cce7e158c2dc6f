"""Where handlers and the API get their clients: swap the clients, not the code.

In Lambda, :func:`get_deps` builds boto3 clients lazily from the environment (once per
container). The local stack and the tests install their own with :func:`set_deps`
(local SageMaker, SQLite run store, Stubber-wrapped clients ...). Handlers never ask
which one they got.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any


def _aws_application_autoscaling() -> Any:
    from retraining.aws import application_autoscaling_client  # boto3 only when used

    return application_autoscaling_client()


@dataclass
class Deps:
    """Lazily built collaborators. Each factory runs on first use only, so the API's cold
    start does not pay for a SageMaker client it may not need."""

    settings_factory: Callable[[], Any]
    sagemaker_factory: Callable[[], Any]
    sagemaker_runtime_factory: Callable[[], Any]
    store_factory: Callable[[], Any]
    extras: dict[str, Any] = field(default_factory=dict)
    # Defaulted so callers that predate auto-scaling keep working; only used when the
    # settings turn auto-scaling on (max capacity > min capacity).
    application_autoscaling_factory: Callable[[], Any] = _aws_application_autoscaling

    @cached_property
    def settings(self) -> Any:
        return self.settings_factory()

    @cached_property
    def sagemaker(self) -> Any:
        return self.sagemaker_factory()

    @cached_property
    def sagemaker_runtime(self) -> Any:
        return self.sagemaker_runtime_factory()

    @cached_property
    def application_autoscaling(self) -> Any:
        return self.application_autoscaling_factory()

    @cached_property
    def store(self) -> Any:
        return self.store_factory()


_override: Deps | None = None
_from_env: Deps | None = None


def set_deps(deps: Deps | None) -> None:
    """Install (or with None, remove) the process-wide collaborators."""
    global _override
    _override = deps


def get_deps() -> Deps:
    global _from_env
    if _override is not None:
        return _override
    if _from_env is None:
        from retraining.aws import deps_from_env  # boto3 only when running against AWS

        _from_env = deps_from_env()
    return _from_env
