"""GET /models, GET /models/current, GET /models/{version}, POST /models/{version}/deploy and
POST /models/{version}/approve against a Model Registry held by moto's SageMaker backend (a
real botocore client: every request is validated against the service model) and the
in-memory run store."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from botocore.exceptions import EndpointConnectionError
from fastapi.testclient import TestClient
from httpx import Response

import api.app
from retraining.records import RunRecord, RunStatus
from retraining.settings import Settings
from retraining.stores.memory import InMemoryRunStore
from tests.unit.api.fakes import AnsweringClient
from tests.unit.api.registry_fakes import (
    INFERENCE_IMAGE,
    Calls,
    Refusing,
    Registry,
    moto_sagemaker,
)
from tests.unit.api.support import ENDPOINT, body_of, http_v2_event, rest_v1_event

DEPLOYED_AT = "2026-11-29T04:00:00Z"
CHAMPION_RUN = "r20261129030512ab12"
ACTIVE_RUN = "r20261130000000abcd"
Invoke = Callable[[dict[str, Any]], dict[str, Any]]


@dataclass
class Versions:
    """Three registered versions: 1 and 2 Approved (2 serves), 3 Rejected."""

    registry: Registry
    arns: dict[int, str]


@pytest.fixture
def sm(deps: Any) -> Iterator[Any]:
    """The SageMaker client the app gets: moto answers it."""
    with moto_sagemaker() as client:
        deps.__dict__["sagemaker"] = client
        yield client


@pytest.fixture
def models(sm: Any, settings: Settings) -> Registry:
    settings.inference_image_uri = INFERENCE_IMAGE  # package_request names the image
    return Registry(sm, settings)


@pytest.fixture
def versions(models: Registry, store: InMemoryRunStore) -> Versions:
    arns = {
        1: models.register({"test_acc": 0.7015}, "Approved", "first model: no champion"),
        2: models.register(
            {"test_acc": 0.7412, "champion_test_acc": 0.7015}, "Approved", "+3.97 points: better"
        ),
        3: models.register(
            {"test_acc": 0.6903, "champion_test_acc": 0.7412}, "Rejected", "-5.09 points: worse"
        ),
    }
    store.set_champion(
        {
            "model_package_arn": arns[2],
            "model_version": 2,
            "run_id": CHAMPION_RUN,
            "deployed_at": DEPLOYED_AT,
            "training_job_name": "cifar100-r20261122030512ab12-final",
        }
    )
    return Versions(models, arns)


def _error(response: Response, status: int, code: str) -> dict[str, Any]:
    """The one error shape, with the exact status and code, and nothing internal."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    error = body["error"]
    assert set(error) >= {"code", "message", "request_id"}
    assert error["code"] == code
    assert "Traceback" not in response.text
    assert 'File "' not in response.text
    return dict(error)


def _active_run(store: InMemoryRunStore) -> None:
    store.create(RunRecord(run_id=ACTIVE_RUN, trigger="schedule", status=RunStatus.TUNING))


# -- GET /models ------------------------------------------------------------------------------


def test_list_is_newest_first_with_metrics_approval_and_only_the_champion_serving(
    client: TestClient, versions: Versions
) -> None:
    response = client.get("/models")
    assert response.status_code == 200, response.text
    page = response.json()
    assert page["next_cursor"] is None
    listed = page["models"]
    assert [m["version"] for m in listed] == [3, 2, 1]
    assert [m["arn"] for m in listed] == [versions.arns[3], versions.arns[2], versions.arns[1]]
    assert [m["approval_status"] for m in listed] == ["Rejected", "Approved", "Approved"]
    assert [m["serving"] for m in listed] == [False, True, False]
    assert [m["metrics"] for m in listed] == [
        {"test_acc": 0.6903, "champion_test_acc": 0.7412},
        {"test_acc": 0.7412, "champion_test_acc": 0.7015},
        {"test_acc": 0.7015},
    ]
    v2 = listed[1]
    assert v2["approval_description"] == "+3.97 points: better"
    assert v2["run_id"] == "r20261122030512ab12"
    assert v2["training_job_name"] == "cifar100-r20261122030512ab12-final"
    assert v2["tuning_job_name"] == "cifar100-r20261122030512ab12"
    assert v2["model_data_url"] == "s3://cifar100-artifacts/runs/r20261122030512ab12/model.tar.gz"
    assert v2["hyperparameters"] == {"learning_rate": "0.01", "epochs": "12"}
    assert v2["created_at"] == "2026-11-29T03:05:12Z"


def test_list_without_a_champion_serves_nothing(
    client: TestClient, versions: Versions, store: InMemoryRunStore
) -> None:
    store.set_champion({})
    assert [m["serving"] for m in client.get("/models").json()["models"]] == [False] * 3


def test_list_of_an_empty_registry(client: TestClient, models: Registry) -> None:
    assert client.get("/models").json() == {"models": [], "next_cursor": None}


def test_list_pages_with_next_cursor_until_it_runs_out(
    client: TestClient, versions: Versions, sm: Any
) -> None:
    with Calls(sm, "ListModelPackages") as calls:
        first = client.get("/models", params={"limit": 2})
        assert first.status_code == 200, first.text
        cursor = first.json()["next_cursor"]
        assert [m["version"] for m in first.json()["models"]] == [3, 2]
        assert cursor
        second = client.get("/models", params={"limit": 2, "cursor": cursor})
    assert second.status_code == 200, second.text
    assert [m["version"] for m in second.json()["models"]] == [1]
    assert second.json()["next_cursor"] is None
    # The cursor is SageMaker's NextToken, passed back as it came.
    sent = calls.bodies("ListModelPackages")
    assert [body.get("NextToken") for body in sent] == [None, cursor]
    assert sent[0] == {
        "ModelPackageGroupName": "cifar100-models",
        "ModelPackageType": "Versioned",
        "SortBy": "CreationTime",
        "SortOrder": "Descending",
        "MaxResults": 2,
    }


def test_a_cursor_sagemaker_refuses_is_a_400(
    client: TestClient, versions: Versions, sm: Any
) -> None:
    # What SageMaker answers a NextToken it did not issue (moto answers InvalidToken instead).
    refusal = 'Invalid pagination token because "garbage".'
    with Refusing(sm, "ListModelPackages", "ValidationException", refusal):
        response = client.get("/models", params={"cursor": "garbage"})
    error = _error(response, 400, "invalid_cursor")
    assert "garbage" not in error["message"]


def test_a_validation_error_without_a_cursor_is_not_blamed_on_the_caller(
    client: TestClient, versions: Versions, sm: Any
) -> None:
    with Refusing(sm, "ListModelPackages", "ValidationException", "group does not exist"):
        response = client.get("/models")
    _error(response, 502, "registry_unavailable")


@pytest.mark.parametrize(
    "params",
    [{"limit": 0}, {"limit": 51}, {"limit": "ten"}, {"cursor": "x" * 8193}],
)
def test_list_refuses_bad_parameters_with_a_422(
    client: TestClient, versions: Versions, params: dict[str, Any]
) -> None:
    _error(client.get("/models", params=params), 422, "validation_error")


def test_list_accepts_the_largest_page(client: TestClient, versions: Versions) -> None:
    response = client.get("/models", params={"limit": 50})
    assert response.status_code == 200, response.text
    assert len(response.json()["models"]) == 3


# -- GET /models/current ----------------------------------------------------------------------


def test_current_is_the_champion_with_its_deployment(
    client: TestClient, versions: Versions
) -> None:
    response = client.get("/models/current")
    assert response.status_code == 200, response.text
    current = response.json()
    assert current["version"] == 2
    assert current["arn"] == versions.arns[2]
    assert current["serving"] is True
    assert current["approval_status"] == "Approved"
    assert current["metrics"] == {"test_acc": 0.7412, "champion_test_acc": 0.7015}
    assert current["deployed_at"] == DEPLOYED_AT
    assert current["deployed_by_run_id"] == CHAMPION_RUN


def test_current_without_a_champion_is_a_404(client: TestClient, models: Registry) -> None:
    error = _error(client.get("/models/current"), 404, "no_model_in_service")
    assert error["message"] == "no model has been deployed yet"


def test_current_deployed_before_the_registry_is_what_the_run_recorded(
    client: TestClient, models: Registry, store: InMemoryRunStore
) -> None:
    store.set_champion(
        {
            "run_id": CHAMPION_RUN,
            "deployed_at": DEPLOYED_AT,
            "training_job_name": "cifar100-old-final",
            "model_data_url": "s3://cifar100-artifacts/runs/old/model.tar.gz",
            "metrics": {"test_acc": 0.66},
        }
    )
    response = client.get("/models/current")
    assert response.status_code == 200, response.text
    current = response.json()
    assert current["version"] is None
    assert current["arn"] is None
    assert current["serving"] is True
    assert current["metrics"] == {"test_acc": 0.66}
    assert current["training_job_name"] == "cifar100-old-final"
    assert current["deployed_by_run_id"] == CHAMPION_RUN


def test_current_when_the_registry_is_unreachable_is_a_502(
    client: TestClient, versions: Versions, sm: Any
) -> None:
    unreachable = EndpointConnectionError(
        endpoint_url="https://api.sagemaker.us-east-1.amazonaws.com/"
    )
    with Refusing(sm, "DescribeModelPackage", raises=unreachable):
        response = client.get("/models/current")
    error = _error(response, 502, "registry_unavailable")
    assert "EndpointConnectionError" in error["message"]


# -- GET /models/{version} --------------------------------------------------------------------


@pytest.mark.parametrize(("version", "serving"), [(1, False), (2, True), (3, False)])
def test_get_one_version(
    client: TestClient, versions: Versions, version: int, serving: bool
) -> None:
    response = client.get(f"/models/{version}")
    assert response.status_code == 200, response.text
    found = response.json()
    assert found["version"] == version
    assert found["arn"] == versions.arns[version]
    assert found["serving"] is serving
    assert found == next(
        m for m in client.get("/models").json()["models"] if m["version"] == version
    )


def test_unknown_version_is_a_404(client: TestClient, versions: Versions) -> None:
    error = _error(client.get("/models/99"), 404, "model_version_not_found")
    assert "99" in error["message"]


@pytest.mark.parametrize("version", ["0", "-1", "abc", "1.5", "1000001"])
def test_version_that_is_not_a_positive_integer_is_a_422(
    client: TestClient, versions: Versions, version: str
) -> None:
    _error(client.get(f"/models/{version}"), 422, "validation_error")


def test_get_when_sagemaker_fails_is_a_502_without_internals(
    client: TestClient, versions: Versions, sm: Any
) -> None:
    with Refusing(sm, "ListModelPackages", "InternalFailure", "stack trace at line 12", 500):
        response = client.get("/models/1", headers={"x-request-id": "req-502"})
    error = _error(response, 502, "registry_unavailable")
    assert error["request_id"] == "req-502"
    assert error["message"] == "the model registry could not describe the version (InternalFailure)"


# -- POST /models/{version}/deploy ------------------------------------------------------------


def test_deploy_starts_a_promote_run_that_creates_the_model_from_the_package(
    client: TestClient, versions: Versions, sm: Any, store: InMemoryRunStore
) -> None:
    with Calls(sm, "CreateModel", "CreateEndpointConfig", "CreateEndpoint") as calls:
        response = client.post("/models/1/deploy")  # a rollback to the earlier version
    assert response.status_code == 202, response.text
    accepted = response.json()
    run_id = accepted["run_id"]
    assert accepted == {
        "run_id": run_id,
        "status": "DEPLOYING",
        "location": f"/jobs/{run_id}",
        "version": 1,
    }
    assert response.headers["location"] == accepted["location"]

    run = client.get(accepted["location"])
    assert run.status_code == 200, run.text
    record = run.json()
    assert record["trigger"] == "promote"
    assert record["status"] == "DEPLOYING"
    assert record["model_package_arn"] == versions.arns[1]
    assert record["model_version"] == 1
    assert record["metrics"] == {"test_acc": 0.7015}

    (model,) = calls.bodies("CreateModel")
    assert model["PrimaryContainer"] == {"ModelPackageName": versions.arns[1]}
    assert model["ModelName"] == record["model_name"]
    (config,) = calls.bodies("CreateEndpointConfig")
    assert config["ProductionVariants"][0]["ModelName"] == record["model_name"]
    (endpoint,) = calls.bodies("CreateEndpoint")  # moto holds no endpoint yet: created
    assert endpoint["EndpointName"] == ENDPOINT
    assert endpoint["EndpointConfigName"] == record["endpoint_config_name"]
    champion = store.get_champion() or {}
    assert champion["model_package_arn"] == versions.arns[2]  # until the rollout is confirmed


def test_deploy_of_an_unknown_version_is_a_404_and_starts_nothing(
    client: TestClient, versions: Versions, store: InMemoryRunStore
) -> None:
    _error(client.post("/models/99/deploy"), 404, "model_version_not_found")
    assert store.list()[0] == []


@pytest.mark.parametrize(("status", "version"), [("Rejected", 3), ("PendingManualApproval", 4)])
def test_deploy_of_a_version_not_approved_is_a_409(
    client: TestClient,
    versions: Versions,
    store: InMemoryRunStore,
    status: str,
    version: int,
) -> None:
    if version == 4:
        versions.registry.register({"test_acc": 0.75})
    error = _error(client.post(f"/models/{version}/deploy"), 409, "model_version_not_approved")
    assert status in error["message"]
    assert store.list()[0] == []


def test_deploy_of_the_version_in_service_is_a_409(
    client: TestClient, versions: Versions, store: InMemoryRunStore
) -> None:
    error = _error(client.post("/models/2/deploy"), 409, "model_version_in_service")
    assert "2" in error["message"]
    assert store.list()[0] == []


@pytest.mark.parametrize("endpoint_status", ["Updating", "Creating", "RollingBack", "Deleting"])
def test_deploy_while_the_endpoint_is_busy_is_a_409_with_retry_after(
    client: TestClient,
    versions: Versions,
    sm: Any,
    store: InMemoryRunStore,
    endpoint_status: str,
) -> None:
    described = {
        "EndpointName": ENDPOINT,
        "EndpointArn": f"arn:aws:sagemaker:us-east-1:123456789012:endpoint/{ENDPOINT}",
        "EndpointConfigName": "cifar100-ec-r20261129030512ab12",
        "EndpointStatus": endpoint_status,
        "CreationTime": "2026-11-29T04:00:00Z",
        "LastModifiedTime": "2026-11-29T04:00:00Z",
    }
    with AnsweringClient(sm, "DescribeEndpoint", described), Calls(sm, "CreateModel") as calls:
        response = client.post("/models/1/deploy")
    error = _error(response, 409, "endpoint_busy")
    assert endpoint_status in error["message"]
    assert response.headers["retry-after"] == "60"
    assert calls.requests["CreateModel"] == []
    assert store.list()[0] == []


def test_deploy_onto_a_failed_endpoint_deletes_it_and_asks_to_retry(
    client: TestClient, versions: Versions, sm: Any, store: InMemoryRunStore
) -> None:
    described = {
        "EndpointName": ENDPOINT,
        "EndpointArn": f"arn:aws:sagemaker:us-east-1:123456789012:endpoint/{ENDPOINT}",
        "EndpointConfigName": "cifar100-ec-r20261129030512ab12",
        "EndpointStatus": "Failed",
        "FailureReason": "the container did not pass the ping health check",
        "CreationTime": "2026-11-29T04:00:00Z",
        "LastModifiedTime": "2026-11-29T04:00:00Z",
    }
    with AnsweringClient(sm, "DescribeEndpoint", described), Calls(sm, "DeleteEndpoint") as calls:
        response = client.post("/models/1/deploy")
    _error(response, 409, "endpoint_busy")
    assert response.headers["retry-after"] == "60"
    assert calls.bodies("DeleteEndpoint") == [{"EndpointName": ENDPOINT}]
    (run,) = store.list()[0]
    assert run.status is RunStatus.FAILED  # the slot is free for the retry
    assert client.post("/models/1/deploy").status_code == 202


def test_deploy_while_a_run_is_active_is_a_409_pointing_at_it(
    client: TestClient, versions: Versions, store: InMemoryRunStore, sm: Any
) -> None:
    _active_run(store)
    with Calls(sm, "CreateModel") as calls:
        response = client.post("/models/1/deploy")
    error = _error(response, 409, "run_already_active")
    assert ACTIVE_RUN in error["message"]
    assert response.headers["location"] == f"/jobs/{ACTIVE_RUN}"
    assert calls.requests["CreateModel"] == []


def test_second_deploy_while_the_first_deploys_points_at_the_first(
    client: TestClient, versions: Versions
) -> None:
    first = client.post("/models/1/deploy")
    assert first.status_code == 202, first.text
    second = client.post("/models/1/deploy")
    _error(second, 409, "run_already_active")
    assert second.headers["location"] == first.headers["location"]


@pytest.mark.parametrize("version", ["0", "abc", "-3"])
def test_deploy_of_a_version_that_is_not_a_positive_integer_is_a_422(
    client: TestClient, versions: Versions, version: str
) -> None:
    _error(client.post(f"/models/{version}/deploy"), 422, "validation_error")


def test_deploy_sagemaker_refuses_is_a_502_and_the_run_fails(
    client: TestClient, versions: Versions, sm: Any, store: InMemoryRunStore
) -> None:
    with Refusing(sm, "CreateModel", "ResourceLimitExceeded", "account model limit"):
        response = client.post("/models/1/deploy")
    error = _error(response, 502, "deployment_not_started")
    assert error["message"] == "SageMaker refused the deployment (ResourceLimitExceeded)"
    (run,) = store.list()[0]
    assert run.status is RunStatus.FAILED
    assert run.trigger == "promote"
    assert client.post("/models/1/deploy").status_code == 202  # the slot was freed


def test_deploy_refused_by_botocore_validation_is_a_502(
    client: TestClient, versions: Versions, settings: Settings, store: InMemoryRunStore
) -> None:
    # An empty execution role fails the service model's validation of CreateModel.
    settings.sagemaker_role_arn = ""
    response = client.post("/models/1/deploy")
    error = _error(response, 502, "deployment_not_started")
    assert "ParamValidationError" in error["message"]
    (run,) = store.list()[0]
    assert run.status is RunStatus.FAILED


# -- POST /models/{version}/approve -----------------------------------------------------------


def test_approve_in_manual_mode_sends_approved_to_the_registry(
    client: TestClient, versions: Versions, settings: Settings, sm: Any, store: InMemoryRunStore
) -> None:
    settings.model_approval = "manual"
    arn = versions.registry.register({"test_acc": 0.75, "champion_test_acc": 0.7412})
    with Calls(sm, "UpdateModelPackage") as calls:
        response = client.post("/models/4/approve")
    assert response.status_code == 202, response.text
    approved = response.json()
    assert approved["version"] == 4
    assert approved["arn"] == arn
    assert approved["approval_status"] == "Approved"
    assert approved["approval_description"] == "approved through the API"
    assert approved["serving"] is False  # the state-change event deploys it, later
    (sent,) = calls.bodies("UpdateModelPackage")
    assert sent == {
        "ModelPackageArn": arn,
        "ModelApprovalStatus": "Approved",
        "ApprovalDescription": "approved through the API",
    }
    assert versions.registry.status_of(arn) == "Approved"
    assert store.list()[0] == []  # approving starts no run itself


@pytest.mark.parametrize("version", [1, 3, 4, 99])
def test_approve_in_auto_mode_is_a_409_and_changes_nothing(
    client: TestClient, versions: Versions, settings: Settings, sm: Any, version: int
) -> None:
    assert settings.model_approval == "auto"
    pending = versions.registry.register({"test_acc": 0.75})
    with Calls(sm, "UpdateModelPackage") as calls:
        error = _error(client.post(f"/models/{version}/approve"), 409, "approval_not_expected")
    assert "MODEL_APPROVAL=auto" in error["message"]
    assert calls.requests["UpdateModelPackage"] == []
    assert versions.registry.status_of(pending) == "PendingManualApproval"


@pytest.mark.parametrize(("version", "status"), [(1, "Approved"), (3, "Rejected")])
def test_approve_of_a_version_not_waiting_for_approval_is_a_409(
    client: TestClient,
    versions: Versions,
    settings: Settings,
    sm: Any,
    version: int,
    status: str,
) -> None:
    settings.model_approval = "manual"
    with Calls(sm, "UpdateModelPackage") as calls:
        error = _error(client.post(f"/models/{version}/approve"), 409, "approval_not_expected")
    assert status in error["message"]
    assert calls.requests["UpdateModelPackage"] == []
    assert versions.registry.status_of(versions.arns[version]) == status


def test_approve_of_an_unknown_version_is_a_404(
    client: TestClient, versions: Versions, settings: Settings
) -> None:
    settings.model_approval = "manual"
    _error(client.post("/models/99/approve"), 404, "model_version_not_found")


@pytest.mark.parametrize("version", ["0", "abc"])
def test_approve_of_a_version_that_is_not_a_positive_integer_is_a_422(
    client: TestClient, versions: Versions, settings: Settings, version: str
) -> None:
    settings.model_approval = "manual"
    _error(client.post(f"/models/{version}/approve"), 422, "validation_error")


def test_approve_the_registry_refuses_is_a_502(
    client: TestClient, versions: Versions, settings: Settings, sm: Any
) -> None:
    settings.model_approval = "manual"
    arn = versions.registry.register({"test_acc": 0.75})
    with Refusing(sm, "UpdateModelPackage", "ConflictException", "being updated", 409):
        error = _error(client.post("/models/4/approve"), 502, "registry_unavailable")
    assert "ConflictException" in error["message"]
    assert versions.registry.status_of(arn) == "PendingManualApproval"


# -- failures never leak internals; the Lambda path -------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/models"),
        ("GET", "/models/current"),
        ("GET", "/models/1"),
        ("POST", "/models/1/deploy"),
    ],
)
def test_a_botocore_error_is_a_502_in_the_error_shape(
    client: TestClient, versions: Versions, sm: Any, method: str, path: str
) -> None:
    with Refusing(
        sm, "DescribeModelPackage", "InternalFailure", 'Traceback: File "x.py", line 1', 500
    ):
        response = client.request(method, path)
    assert response.status_code == 502, response.text
    assert response.json()["error"]["code"] in {"registry_unavailable", "deployment_not_started"}
    assert "Traceback" not in response.text


def test_an_unexpected_failure_is_a_500_without_internals(
    deps: Any, versions: Versions, sm: Any
) -> None:
    client = TestClient(api.app.app, raise_server_exceptions=False)
    with Refusing(sm, "ListModelPackages", raises=RuntimeError("password is hunter2")):
        response = client.get("/models", headers={"x-request-id": "req-500"})
    assert response.status_code == 500
    assert response.json() == {
        "error": {
            "code": "internal_error",
            "message": "internal server error",
            "request_id": "req-500",
        }
    }


def test_models_through_the_lambda_handler(versions: Versions, invoke: Invoke) -> None:
    response = invoke(http_v2_event("GET", "/models", query="limit=1"))
    assert response["statusCode"] == 200, response
    page = body_of(response)
    assert [m["version"] for m in page["models"]] == [3]
    assert page["next_cursor"]


def test_deploy_location_behind_a_rest_api_stage_keeps_the_stage(
    versions: Versions, invoke: Invoke
) -> None:
    response = invoke(rest_v1_event("POST", "/models/1/deploy", stage="prod"))
    assert response["statusCode"] == 202, response
    run_id = body_of(response)["run_id"]
    assert response["headers"]["location"] == f"/prod/jobs/{run_id}"
    assert body_of(response)["location"] == f"/prod/jobs/{run_id}"
