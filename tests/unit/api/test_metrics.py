"""CloudWatch EMF lines: one per prediction and one per error, in Powertools' shape."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aws_lambda_powertools import Metrics
from aws_lambda_powertools.metrics import MetricUnit
from botocore.stub import Stubber
from fastapi.testclient import TestClient

from api.observability import NAMESPACE, SERVICE
from tests.unit.api.support import b64, expected_invoke, invoke_response, model_answer, png_bytes


def emf_lines(out: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.splitlines() if line.startswith('{"_aws"')]


def powertools_prediction_line(latency_ms: float, endpoint_ms: float) -> dict[str, Any]:
    metrics = Metrics(namespace=NAMESPACE, service=SERVICE)
    metrics.add_metric(name="Predictions", unit=MetricUnit.Count, value=1)
    metrics.add_metric(name="PredictLatency", unit=MetricUnit.Milliseconds, value=latency_ms)
    metrics.add_metric(name="EndpointLatency", unit=MetricUnit.Milliseconds, value=endpoint_ms)
    line = metrics.serialize_metric_set()
    metrics.clear_metrics()
    return line


def test_a_prediction_prints_one_line_equal_to_powertools_own(
    client: TestClient, stubber: Stubber, capsys: pytest.CaptureFixture[str]
) -> None:
    image = b64(png_bytes())
    stubber.add_response(
        "invoke_endpoint", invoke_response(model_answer(3)), expected_invoke(image, 3)
    )
    capsys.readouterr()
    assert client.post("/predict", json={"image": image, "top_k": 3}).status_code == 200

    [line] = emf_lines(capsys.readouterr().out)
    latency, endpoint_ms = line["PredictLatency"][0], line["EndpointLatency"][0]
    assert 0 < endpoint_ms <= latency
    expected = powertools_prediction_line(latency, endpoint_ms)
    assert abs(line["_aws"].pop("Timestamp") - expected["_aws"].pop("Timestamp")) < 60_000
    assert line == expected


def test_an_error_prints_one_errors_line_by_code_and_status(
    client: TestClient, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    assert client.post("/predict", json={"image": "not base64!"}).status_code == 400

    [line] = emf_lines(capsys.readouterr().out)
    assert line["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["service", "code", "status"]]
    assert (line["code"], line["status"], line["Errors"]) == ("invalid_base64", "400", [1.0])
    assert "Predictions" not in line
