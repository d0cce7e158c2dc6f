"""POST /jobs/tune, GET /jobs/{run_id}, GET /jobs against the in-memory run store."""

from __future__ import annotations

import json
import socket
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.stub import Stubber
from fastapi.testclient import TestClient

from retraining.deps import Deps
from retraining.records import RunRecord, RunStatus
from retraining.settings import Settings
from retraining.stores.memory import InMemoryRunStore
from tests.unit.api.fakes import AnsweringClient


def test_tune_answers_202_with_location_and_the_run_is_readable(
    client: TestClient, store: InMemoryRunStore
) -> None:
    response = client.post("/jobs/tune")
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["status"] == "TUNING"
    assert response.headers["location"] == f"/jobs/{body['run_id']}" == body["location"]
    assert store.get(body["run_id"]) is not None

    run = client.get(body["location"])
    assert run.status_code == 200
    assert run.json()["run_id"] == body["run_id"]
    assert run.json()["trigger"] == "api"


def test_tune_passes_overrides_to_the_run_and_the_tuning_job(
    client: TestClient, store: InMemoryRunStore, tuning: AnsweringClient
) -> None:
    overrides = {
        "max_jobs": 4,
        "max_parallel_jobs": 2,
        "epochs": {"min": 2, "max": 6},
        "learning_rate": {"min": 0.0001, "max": 0.05},
        "instance_type": "ml.m5.xlarge",
    }
    response = client.post("/jobs/tune", json=overrides)
    assert response.status_code == 202, response.text
    record = store.get(response.json()["run_id"])
    assert record is not None
    assert record.overrides == overrides
    (sent,) = tuning.requests
    request = json.loads(sent["body"])  # the wire body SageMaker would receive
    config = request["HyperParameterTuningJobConfig"]
    assert config["ResourceLimits"]["MaxNumberOfTrainingJobs"] == 4
    assert config["ResourceLimits"]["MaxParallelTrainingJobs"] == 2
    assert request["HyperParameterTuningJobName"] == record.tuning_job_name


def test_sagemaker_refusing_the_tuning_job_is_a_502_and_frees_the_slot(
    client: TestClient, store: InMemoryRunStore, sagemaker: Any
) -> None:
    with Stubber(sagemaker) as stub:  # outranks the answering hook: this call is refused
        stub.add_client_error(
            "create_hyper_parameter_tuning_job", "ResourceLimitExceeded", "limit", 400
        )
        response = client.post("/jobs/tune")
    assert response.status_code == 502
    assert response.json()["error"]["code"] == "tuning_not_started"
    (run,) = store.list()[0]
    assert run.status is RunStatus.FAILED
    assert client.post("/jobs/tune").status_code == 202


def test_tuning_request_refused_by_botocore_is_a_502_and_frees_the_slot(
    client: TestClient, store: InMemoryRunStore, settings: Settings
) -> None:
    # An empty role fails botocore's parameter validation (ParamValidationError), before
    # any request leaves the function.
    settings.sagemaker_role_arn = ""
    response = client.post("/jobs/tune")
    assert response.status_code == 502, response.text
    error = response.json()["error"]
    assert error["code"] == "tuning_not_started"
    assert "ParamValidationError" in error["message"]
    (run,) = store.list()[0]
    assert run.status is RunStatus.FAILED


def test_sagemaker_unreachable_is_a_502_and_frees_the_slot(
    client: TestClient, store: InMemoryRunStore, deps: Deps
) -> None:
    with socket.socket() as closed:  # a port that nothing listens on: connection refused
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    deps.__dict__["sagemaker"] = boto3.client(
        "sagemaker",
        region_name="us-east-1",
        endpoint_url=f"http://127.0.0.1:{port}",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(retries={"mode": "standard", "total_max_attempts": 1}, connect_timeout=1),
    )
    response = client.post("/jobs/tune")
    assert response.status_code == 502, response.text
    assert "EndpointConnectionError" in response.json()["error"]["message"]
    (run,) = store.list()[0]
    assert run.status is RunStatus.FAILED


def test_second_tune_while_active_is_a_409_pointing_at_the_active_run(
    client: TestClient,
) -> None:
    first = client.post("/jobs/tune", json={})
    second = client.post("/jobs/tune", json={})
    assert second.status_code == 409
    error = second.json()["error"]
    assert error["code"] == "run_already_active"
    assert first.json()["run_id"] in error["message"]
    assert second.headers["location"] == first.headers["location"]


def test_tune_after_the_active_run_finished_starts_another(
    client: TestClient, store: InMemoryRunStore
) -> None:
    first = client.post("/jobs/tune").json()["run_id"]
    store.transition(first, RunStatus.FAILED, expected={RunStatus.TUNING}, reason="test")
    assert client.post("/jobs/tune").status_code == 202


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"instance_type": "ml.p5.48xlarge"}, "not allowed"),
        ({"max_jobs": 0}, "max_jobs"),
        ({"max_jobs": 2, "max_parallel_jobs": 3}, "max_parallel_jobs must not exceed max_jobs"),
        ({"epochs": {"min": 5, "max": 2}}, "must not exceed max"),
        ({"learning_rate": {"min": 0.1, "max": 0.01}}, "must be below max"),
        ({"max_job": 3}, "max_job"),
        ({"batch_sizes": [0]}, "batch_sizes"),
    ],
)
def test_bad_overrides_are_422_with_a_clear_message(
    client: TestClient, store: InMemoryRunStore, body: dict, fragment: str
) -> None:
    response = client.post("/jobs/tune", json=body)
    assert response.status_code == 422, response.text
    assert fragment in response.json()["error"]["message"]
    assert store.list()[0] == []  # nothing started


def test_instance_type_not_allowed_names_the_choices(client: TestClient) -> None:
    error = client.post("/jobs/tune", json={"instance_type": "ml.p5.48xlarge"}).json()["error"]
    assert error["code"] == "instance_type_not_allowed"
    assert "ml.g5.xlarge" in error["message"]


def test_unknown_run_is_a_404(client: TestClient) -> None:
    response = client.get("/jobs/r20260101000000abcd")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "run_not_found"


def test_run_id_with_odd_characters_is_refused(client: TestClient) -> None:
    response = client.get("/jobs/a%20b%3Bc")
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "validation_error"


def _seed(store: InMemoryRunStore, count: int) -> list[str]:
    ids = []
    for second in range(count):
        run_id = f"r20260101000{second:03d}abcd"
        store.create(RunRecord(run_id=run_id, trigger="schedule", status=RunStatus.TUNING))
        store.transition(run_id, RunStatus.FAILED, expected={RunStatus.TUNING}, reason="seed")
        ids.append(run_id)
    return ids


def test_list_pages_newest_first_until_the_cursor_runs_out(
    client: TestClient, store: InMemoryRunStore
) -> None:
    ids = _seed(store, 5)
    seen: list[str] = []
    cursor = None
    for _ in range(5):
        params = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        page = client.get("/jobs", params=params)
        assert page.status_code == 200, page.text
        seen += [run["run_id"] for run in page.json()["runs"]]
        cursor = page.json()["next_cursor"]
        if cursor is None:
            break
    assert seen == sorted(ids, reverse=True)


def test_list_is_empty_without_runs(client: TestClient) -> None:
    assert client.get("/jobs").json() == {"runs": [], "next_cursor": None}


@pytest.mark.parametrize(
    ("params", "status", "code"),
    [
        ({"cursor": "garbage"}, 400, "invalid_cursor"),
        ({"limit": 0}, 422, "validation_error"),
        ({"limit": 101}, 422, "validation_error"),
        ({"limit": "ten"}, 422, "validation_error"),
    ],
)
def test_list_refuses_bad_parameters(
    client: TestClient, params: dict, status: int, code: str
) -> None:
    response = client.get("/jobs", params=params)
    assert response.status_code == status
    assert response.json()["error"]["code"] == code
