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


def unavailable(service: str) -> Callable[[], Any]:
    """A factory for a client this wiring does not provide: fails clearly when first used
    (never falls back to a real AWS client with whatever credentials the shell has)."""

    def build() -> Any:
        raise RuntimeError(f"no {service} client is wired in this environment")

    return build


@dataclass
class Deps:
    """Lazily built collaborators. Each factory runs on first use only, so the API's cold
    start does not pay for a SageMaker client it may not need."""

    settings_factory: Callable[[], Any]
    sagemaker_factory: Callable[[], Any]
    sagemaker_runtime_factory: Callable[[], Any]
    store_factory: Callable[[], Any]
    # Only used when the settings turn auto-scaling on (max capacity > min capacity).
    application_autoscaling_factory: Callable[[], Any] = field(
        default_factory=lambda: unavailable("application-autoscaling")
    )
    # Only used to see whether the training-data prefix is empty (PREPARE_DATA).
    s3_factory: Callable[[], Any] = field(default_factory=lambda: unavailable("s3"))

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
    def s3(self) -> Any:
        return self.s3_factory()

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
