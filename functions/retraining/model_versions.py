"""The registry as the API shows it: versions newest first, what serves, manual approval.

Deploying a version is a run (retraining.workflow.start_promotion); this module only reads
the registry, and approves a version that waits for a person (MODEL_APPROVAL=manual), whose
state-change event then deploys it.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from retraining.deps import Deps
from retraining.sagemaker import registry


class ApprovalNotExpected(Exception):
    """Approve was asked of a version that does not wait for it, or of an auto stack."""


def _view(version: registry.ModelVersion, serving_arn: str | None) -> dict[str, Any]:
    return {**asdict(version), "serving": version.arn == serving_arn}


def serving_arn(deps: Deps) -> str | None:
    """The package of the model in service: the champion, recorded when its deployment was
    confirmed by DescribeEndpoint (a rolled-back one never becomes champion)."""
    champion = deps.store.get_champion() or {}
    arn = champion.get("model_package_arn")
    return str(arn) if arn else None


def list_versions(
    deps: Deps, limit: int, cursor: str | None
) -> tuple[list[dict[str, Any]], str | None]:
    versions, next_cursor = registry.list_page(deps.sagemaker, deps.settings, limit, cursor)
    serving = serving_arn(deps)
    return [_view(v, serving) for v in versions], next_cursor


def current(deps: Deps) -> dict[str, Any] | None:
    """The version in service with when it was deployed and by which run; None if none."""
    champion = deps.store.get_champion()
    if not champion:
        return None
    arn = champion.get("model_package_arn")
    base = {
        "deployed_at": champion.get("deployed_at"),
        "deployed_by_run_id": champion.get("run_id"),
    }
    if not arn:  # deployed before the registry existed: what the run recorded
        return {
            **base,
            "version": None,
            "arn": None,
            "approval_status": None,
            "run_id": champion.get("run_id"),
            "training_job_name": champion.get("training_job_name"),
            "model_data_url": champion.get("model_data_url"),
            "metrics": champion.get("metrics") or {},
            "hyperparameters": champion.get("hyperparameters") or {},
            "serving": True,
        }
    return {**base, **_view(registry.describe(deps.sagemaker, str(arn)), str(arn))}


def get_version(deps: Deps, version: int) -> dict[str, Any]:
    return _view(registry.find(deps.sagemaker, deps.settings, version), serving_arn(deps))


def approve(deps: Deps, version: int) -> dict[str, Any]:
    """Approve a version that awaits it; its state-change event starts the deployment."""
    if deps.settings.model_approval != "manual":
        raise ApprovalNotExpected(
            "this stack approves versions by its quality gate (MODEL_APPROVAL=auto); "
            "deploy an approved version with POST /models/{version}/deploy"
        )
    found = registry.find(deps.sagemaker, deps.settings, version)
    if found.approval_status != "PendingManualApproval":
        raise ApprovalNotExpected(
            f"version {version} is {found.approval_status}, not PendingManualApproval"
        )
    registry.set_approval(deps.sagemaker, found.arn, "Approved", "approved through the API")
    return get_version(deps, version)
