"""Through ``api.app.handler`` (Mangum) with API Gateway REST (v1) and HTTP API (v2) events."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from botocore.stub import Stubber
from mangum import Mangum

from api.app import create_app
from retraining.deps import Deps
from tests.unit.api.fakes import AnsweringClient
from tests.unit.api.support import (
    LambdaContext,
    b64,
    body_of,
    expected_invoke,
    http_v2_event,
    invoke_response,
    model_answer,
    png_bytes,
    rest_v1_event,
)

Invoke = Callable[[dict[str, Any]], dict[str, Any]]
IMAGE = b64(png_bytes())
PREDICT_BODY = json.dumps({"image": IMAGE, "top_k": 2}).encode()


def test_rest_v1_base64_body_without_content_type_predicts(
    invoke: Invoke, stubber: Stubber
) -> None:
    """As `sam local generate-event apigateway aws-proxy` makes it: no Content-Type."""
    stubber.add_response(
        "invoke_endpoint", invoke_response(model_answer(2)), expected_invoke(IMAGE, 2)
    )
    event = rest_v1_event("POST", "/predict", PREDICT_BODY)
    assert "Content-Type" not in event["headers"]
    response = invoke(event)
    assert response["statusCode"] == 200, response
    body = body_of(response)
    assert len(body["predictions"]) == 2
    # The correlation id is API Gateway's request id.
    assert body["request_id"] == event["requestContext"]["requestId"]
    assert response["headers"]["x-request-id"] == event["requestContext"]["requestId"]


def test_http_v2_json_body_predicts(invoke: Invoke, stubber: Stubber) -> None:
    stubber.add_response(
        "invoke_endpoint", invoke_response(model_answer(2)), expected_invoke(IMAGE, 2)
    )
    event = http_v2_event("POST", "/predict", PREDICT_BODY)
    response = invoke(event)
    assert response["statusCode"] == 200, response
    assert body_of(response)["request_id"] == event["requestContext"]["requestId"]


def test_http_v2_base64_body_predicts(invoke: Invoke, stubber: Stubber) -> None:
    stubber.add_response("invoke_endpoint", invoke_response(model_answer(2)))
    response = invoke(http_v2_event("POST", "/predict", PREDICT_BODY, base64_body=True))
    assert response["statusCode"] == 200, response


@pytest.mark.parametrize("make_event", [rest_v1_event, http_v2_event])
def test_errors_have_one_shape_through_the_handler(invoke: Invoke, make_event: Any) -> None:
    cases = [
        (make_event("POST", "/predict", b'{"image": "%%%"}'), 400, "invalid_base64"),
        (make_event("POST", "/predict", b"{"), 400, "invalid_json"),
        (make_event("GET", "/nowhere"), 404, "not_found"),
        (make_event("DELETE", "/predict"), 405, "method_not_allowed"),
        (make_event("GET", "/jobs/r20260101000000abcd"), 404, "run_not_found"),
    ]
    for event, status, code in cases:
        response = invoke(event)
        assert response["statusCode"] == status, response
        body = body_of(response)
        assert set(body) == {"error"}
        assert body["error"]["code"] == code
        assert body["error"]["request_id"] == event["requestContext"]["requestId"]


@pytest.mark.parametrize(
    ("make_event", "kwargs", "prefix"),
    [
        (rest_v1_event, {"stage": "prod"}, "/prod"),
        (http_v2_event, {}, ""),
        (http_v2_event, {"stage": "live"}, "/live"),
    ],
)
def test_tune_location_is_the_url_the_caller_can_follow(
    deps: Deps, tuning: AnsweringClient, make_event: Any, kwargs: dict[str, Any], prefix: str
) -> None:
    app = create_app()
    # A named v2 stage arrives in rawPath; the handler strips it like a base path.
    base = "/live" if kwargs.get("stage") == "live" else "/"
    handler = Mangum(app, lifespan="off", api_gateway_base_path=base)
    response = handler(make_event("POST", "/jobs/tune", b"{}", **kwargs), LambdaContext())
    assert response["statusCode"] == 202, response
    run_id = body_of(response)["run_id"]
    assert response["headers"]["location"] == f"{prefix}/jobs/{run_id}"


def test_rest_v1_query_parameters_reach_the_route(invoke: Invoke) -> None:
    response = invoke(rest_v1_event("GET", "/jobs", query={"limit": "0"}))
    assert response["statusCode"] == 422
    assert "limit" in body_of(response)["error"]["message"]


def test_custom_domain_base_path_is_stripped() -> None:
    handler = Mangum(create_app(), lifespan="off", api_gateway_base_path="/v1")
    response = handler(rest_v1_event("GET", "/v1/health"), LambdaContext())
    assert response["statusCode"] == 200
    assert body_of(response) == {"status": "ok"}


def test_health_and_openapi(invoke: Invoke) -> None:
    assert body_of(invoke(http_v2_event("GET", "/health"))) == {"status": "ok"}
    spec = body_of(invoke(http_v2_event("GET", "/openapi.json")))
    paths = spec["paths"]
    assert set(paths) >= {"/predict", "/jobs/tune", "/jobs/{run_id}", "/jobs", "/health"}
    predict = paths["/predict"]["post"]
    assert {"200", "400", "413", "415", "429", "502", "503", "504"} <= set(predict["responses"])
    # The route answers a prebuilt Response; the documented body is still PredictResponse.
    ok_schema = predict["responses"]["200"]["content"]["application/json"]["schema"]
    assert ok_schema == {"$ref": "#/components/schemas/PredictResponse"}
    assert spec["components"]["schemas"]["PredictRequest"]["examples"]
    assert paths["/jobs/tune"]["post"]["responses"]["409"]


@pytest.mark.parametrize(
    ("handler_base", "make_event", "kwargs", "prefix"),
    [
        ("/", rest_v1_event, {"stage": "prod"}, "/prod"),
        ("/live", http_v2_event, {"stage": "live"}, "/live"),
        ("/", http_v2_event, {}, ""),
    ],
)
def test_docs_behind_a_stage_load_the_spec_through_that_stage(
    deps: Deps, handler_base: str, make_event: Any, kwargs: dict[str, Any], prefix: str
) -> None:
    handler = Mangum(create_app(), lifespan="off", api_gateway_base_path=handler_base)
    docs = handler(make_event("GET", "/docs", **kwargs), LambdaContext())
    assert docs["statusCode"] == 200
    assert f"url: '{prefix}/openapi.json'" in docs["body"]

    spec = body_of(handler(make_event("GET", "/openapi.json", **kwargs), LambdaContext()))
    assert [server["url"] for server in spec.get("servers", [])] == ([prefix] if prefix else [])
    assert "/predict" in spec["paths"]


def test_a_stage_named_like_a_route_still_routes(invoke: Invoke) -> None:
    # Stage "jobs": the caller's path is /jobs/jobs; only the stage is the prefix.
    response = invoke(rest_v1_event("GET", "/jobs", stage="jobs", query={"limit": "1"}))
    assert response["statusCode"] == 200, response
    assert body_of(response)["runs"] == []
