"""The registry as the API reads it (retraining.model_versions): versions newest first with
the serving one marked, what serves now, and manual approval."""

from __future__ import annotations

import pytest

from retraining import model_versions
from retraining.deps import Deps
from retraining.sagemaker.registry import VersionNotFound
from tests.support.sagemaker_double import (
    GROUP,
    RecordingSageMaker,
    make_settings,
    model_artifact,
    package_arn,
    package_description,
    package_summaries,
    wire,
)

RUNS = {1: "r20261101000000aaaa", 2: "r20261110000000bbbb", 3: "r20261120000000cccc"}
STATUS = {1: "Rejected", 2: "Approved", 3: "PendingManualApproval"}


def description(version: int, approval: str | None = None) -> dict:
    return package_description(
        version,
        approval or STATUS[version],
        run_id=RUNS[version],
        metrics={"test_acc": 0.7 + version / 100, "mcnemar_p_value": 1e-4},
        hyperparameters={"learning_rate": "0.01", "epochs": str(version)},
        approval_description=f"decided on version {version}",
    )


def serving(store, version: int = 2) -> None:
    store.set_champion(
        {
            "run_id": "r20261125000000dddd",  # the run that deployed it (e.g. a promotion)
            "model_package_arn": package_arn(version),
            "model_version": version,
            "deployed_at": "2026-11-25T00:10:00Z",
        }
    )


def expect_find(sagemaker: RecordingSageMaker, version: int, approval: str | None = None):
    sagemaker.expect(
        "list_model_packages", package_summaries((3, STATUS[3]), (2, STATUS[2]), (1, STATUS[1]))
    )
    sagemaker.expect("describe_model_package", description(version, approval))


@pytest.fixture
def manual(sagemaker, store, s3_double) -> Deps:
    return wire(make_settings(model_approval="manual"), sagemaker, store, s3_double)


def test_list_versions_describes_each_and_marks_the_serving_one(deps, sagemaker, store):
    serving(store, 2)
    sagemaker.expect(
        "list_model_packages",
        package_summaries((3, STATUS[3]), (2, STATUS[2]), (1, STATUS[1]), next_token="more"),
    )
    for version in (3, 2, 1):
        sagemaker.expect("describe_model_package", description(version))
    versions, cursor = model_versions.list_versions(deps, limit=3, cursor="page-2")
    assert cursor == "more"
    assert [(v["version"], v["approval_status"], v["serving"]) for v in versions] == [
        (3, "PendingManualApproval", False),
        (2, "Approved", True),
        (1, "Rejected", False),
    ]
    (listed,) = sagemaker.requests("ListModelPackages")
    assert listed["MaxResults"] == 3
    assert listed["NextToken"] == "page-2"
    assert listed["ModelPackageGroupName"] == GROUP
    two = versions[1]
    assert two["arn"] == package_arn(2)
    assert two["run_id"] == RUNS[2]
    assert two["metrics"] == {"test_acc": pytest.approx(0.72), "mcnemar_p_value": 1e-4}
    assert two["hyperparameters"] == {"learning_rate": "0.01", "epochs": "2"}
    assert two["model_data_url"] == model_artifact(RUNS[2])
    assert two["approval_description"] == "decided on version 2"
    assert two["created_at"] == "2026-11-28T04:00:00Z"
    sagemaker.assert_all_used()


def test_nothing_serves_when_there_is_no_champion(deps, sagemaker, store):
    assert model_versions.current(deps) is None
    assert model_versions.serving_arn(deps) is None
    assert sagemaker.calls == []


def test_current_is_the_champions_version_with_who_deployed_it(deps, sagemaker, store):
    serving(store, 2)
    sagemaker.expect("describe_model_package", description(2))
    now = model_versions.current(deps)
    assert now["version"] == 2
    assert now["serving"] is True
    assert now["deployed_at"] == "2026-11-25T00:10:00Z"
    assert now["deployed_by_run_id"] == "r20261125000000dddd"
    assert now["run_id"] == RUNS[2]  # the run that trained it
    assert sagemaker.requests("DescribeModelPackage") == [{"ModelPackageName": package_arn(2)}]


def test_a_champion_from_before_the_registry_is_shown_from_its_record(deps, sagemaker, store):
    store.set_champion(
        {
            "run_id": RUNS[1],
            "training_job_name": f"cifar100-{RUNS[1]}-final",
            "model_data_url": model_artifact(RUNS[1]),
            "metrics": {"test_acc": 0.7},
            "deployed_at": "2026-11-01T00:00:00Z",
        }
    )
    now = model_versions.current(deps)
    assert now["version"] is None
    assert now["serving"] is True
    assert now["model_data_url"] == model_artifact(RUNS[1])
    assert now["metrics"] == {"test_acc": 0.7}
    assert sagemaker.calls == []


def test_get_version_finds_it_in_the_group(deps, sagemaker, store):
    serving(store, 2)
    expect_find(sagemaker, 1)
    found = model_versions.get_version(deps, 1)
    assert (found["version"], found["serving"]) == (1, False)
    sagemaker.expect("list_model_packages", package_summaries((2, "Approved")))
    with pytest.raises(VersionNotFound):
        model_versions.get_version(deps, 9)


def test_approve_is_refused_when_the_gate_approves(deps, sagemaker, store):
    with pytest.raises(model_versions.ApprovalNotExpected, match="MODEL_APPROVAL=auto"):
        model_versions.approve(deps, 3)
    assert sagemaker.calls == []


@pytest.mark.parametrize("version", [1, 2])
def test_approve_is_refused_for_a_version_that_does_not_wait_for_it(manual, sagemaker, version):
    expect_find(sagemaker, version)
    with pytest.raises(
        model_versions.ApprovalNotExpected,
        match=f"version {version} is {STATUS[version]}, not PendingManualApproval",
    ):
        model_versions.approve(manual, version)
    assert sagemaker.requests("UpdateModelPackage") == []


def test_approve_sets_a_waiting_version_approved(manual, sagemaker):
    expect_find(sagemaker, 3)
    sagemaker.expect("update_model_package", {"ModelPackageArn": package_arn(3)})
    expect_find(sagemaker, 3, "Approved")
    approved = model_versions.approve(manual, 3)
    assert sagemaker.requests("UpdateModelPackage") == [
        {
            "ModelPackageArn": package_arn(3),
            "ModelApprovalStatus": "Approved",
            "ApprovalDescription": "approved through the API",
        }
    ]
    assert approved["approval_status"] == "Approved"
    assert approved["version"] == 3
    sagemaker.assert_all_used()
