"""Where handlers and the API get their collaborators: swap the clients, not the code.

The Lambda entry points install :func:`retraining.aws.deps_from_env` as the default (boto3
clients built lazily, once per container); the local stack and the tests install their own
with :func:`set_deps` (local SageMaker, SQLite run store, Stubber-wrapped clients ...).
Handlers never ask which one they got. This module imports no AWS code: ``retraining.aws``
imports it, never the other way round.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from retraining.settings import Settings
from retraining.stores.protocol import RunStore

#: A botocore client (boto3 clients carry no static types).
Client = Any


def unavailable(service: str) -> Callable[[], Client]:
    """A factory for a client this wiring does not provide: fails clearly when first used
    (never falls back to a real AWS client with whatever credentials the shell has)."""

    def build() -> Client:
        raise RuntimeError(f"no {service} client is wired in this environment")

    return build


@dataclass
class Deps:
    """Lazily built collaborators. Each factory runs on first use only, so the API's cold
    start does not pay for a SageMaker client it may not need."""

    settings_factory: Callable[[], Settings]
    sagemaker_factory: Callable[[], Client]
    sagemaker_runtime_factory: Callable[[], Client]
    store_factory: Callable[[], RunStore]
    # Only used when the settings turn auto-scaling on (max capacity > min capacity).
    application_autoscaling_factory: Callable[[], Client] = field(
        default_factory=lambda: unavailable("application-autoscaling")
    )
    # Whether the training-data prefix is empty (PREPARE_DATA); the registry's statistics file.
    s3_factory: Callable[[], Client] = field(default_factory=lambda: unavailable("s3"))

    @cached_property
    def settings(self) -> Settings:
        return self.settings_factory()

    @cached_property
    def sagemaker(self) -> Client:
        return self.sagemaker_factory()

    @cached_property
    def sagemaker_runtime(self) -> Client:
        return self.sagemaker_runtime_factory()

    @cached_property
    def application_autoscaling(self) -> Client:
        return self.application_autoscaling_factory()

    @cached_property
    def s3(self) -> Client:
        return self.s3_factory()

    @cached_property
    def store(self) -> RunStore:
        return self.store_factory()


_override: Deps | None = None
_default_factory: Callable[[], Deps] | None = None
_default: Deps | None = None


def set_deps(deps: Deps | None) -> None:
    """Install (or with None, remove) the process-wide collaborators."""
    global _override
    _override = deps


def set_default_deps(factory: Callable[[], Deps]) -> None:
    """What :func:`get_deps` builds (once) when nothing was installed: the entry points'
    wiring, e.g. ``retraining.aws.deps_from_env``."""
    global _default_factory, _default
    _default_factory, _default = factory, None


def get_deps() -> Deps:
    global _default
    if _override is not None:
        return _override
    if _default is None:
        if _default_factory is None:
            raise RuntimeError("no collaborators installed: set_deps() or set_default_deps()")
        _default = _default_factory()
    return _default
