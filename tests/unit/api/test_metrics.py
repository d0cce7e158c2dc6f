"""CloudWatch EMF lines: one per prediction and one per error, in Powertools' shape; and the
prediction listeners that see each answer's top-1 probability."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from typing import Any

import pytest
from aws_lambda_powertools import Metrics
from aws_lambda_powertools.metrics import MetricUnit
from botocore.stub import Stubber
from fastapi.testclient import TestClient

import api.observability as observability
from api.observability import NAMESPACE, SERVICE
from tests.unit.api.support import b64, expected_invoke, invoke_response, model_answer, png_bytes

# The units a MetricDefinition may name (the EMF specification's JSON schema).
EMF_UNITS = {
    "Seconds", "Microseconds", "Milliseconds", "Bytes", "Kilobytes", "Megabytes", "Gigabytes",
    "Terabytes", "Bits", "Kilobits", "Megabits", "Gigabits", "Terabits", "Percent", "Count",
    "Bytes/Second", "Kilobytes/Second", "Megabytes/Second", "Gigabytes/Second",
    "Terabytes/Second", "Bits/Second", "Kilobits/Second", "Megabits/Second", "Gigabits/Second",
    "Terabits/Second", "Count/Second", "None",
}  # fmt: skip


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")  # NaN / Infinity: Python accepts them, JSON not


def emf_lines(out: str) -> list[dict[str, Any]]:
    return [
        json.loads(line, parse_constant=_no_constants)
        for line in out.splitlines()
        if line.startswith('{"_aws"')
    ]


def assert_valid_emf(line: dict[str, Any]) -> None:
    """The rules of "Specification: Embedded metric format" (CloudWatch User Guide,
    https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html)
    and its JSON schema, checked by hand (no schema library is pinned)."""
    metadata = line["_aws"]
    assert isinstance(metadata["Timestamp"], int)
    assert metadata["Timestamp"] > 0
    directives = metadata["CloudWatchMetrics"]
    assert isinstance(directives, list)
    assert directives
    for directive in directives:
        assert set(directive) == {"Namespace", "Dimensions", "Metrics"}
        assert isinstance(directive["Namespace"], str)
        assert 1 <= len(directive["Namespace"]) <= 255
        assert len(directive["Dimensions"]) >= 1
        for dimension_set in directive["Dimensions"]:
            assert len(dimension_set) <= 9
            for key in dimension_set:  # a dimension target: a string member of the root
                assert isinstance(line[key], str)
        assert 1 <= len(directive["Metrics"]) <= 100
        for definition in directive["Metrics"]:
            assert set(definition) <= {"Name", "Unit"}
            assert definition.get("Unit", "None") in EMF_UNITS
            target = line[definition["Name"]]  # a metric target: a number or <= 100 numbers
            values = target if isinstance(target, list) else [target]
            assert 1 <= len(values) <= 100
            assert all(
                isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
                for v in values
            )


def powertools_prediction_line(
    latency_ms: float, endpoint_ms: float, top_probability: float | None
) -> dict[str, Any]:
    metrics = Metrics(namespace=NAMESPACE, service=SERVICE)
    metrics.add_metric(name="Predictions", unit=MetricUnit.Count, value=1)
    metrics.add_metric(name="PredictLatency", unit=MetricUnit.Milliseconds, value=latency_ms)
    metrics.add_metric(name="EndpointLatency", unit=MetricUnit.Milliseconds, value=endpoint_ms)
    if top_probability is not None:
        metrics.add_metric(name="TopProbability", unit=MetricUnit.NoUnit, value=top_probability)
    line = metrics.serialize_metric_set()
    metrics.clear_metrics()
    return line


def predict(client: TestClient, stubber: Stubber, answer: Any, top_k: int = 3) -> None:
    image = b64(png_bytes())
    stubber.add_response("invoke_endpoint", invoke_response(answer), expected_invoke(image, top_k))
    assert client.post("/predict", json={"image": image, "top_k": top_k}).status_code == 200


@pytest.fixture
def heard() -> Iterator[list[tuple[float, float]]]:
    calls: list[tuple[float, float]] = []

    def listener(top_probability: float, timestamp: float) -> None:
        calls.append((top_probability, timestamp))

    observability.add_prediction_listener(listener)
    yield calls
    observability.remove_prediction_listener(listener)


def test_a_prediction_prints_one_valid_emf_line_equal_to_powertools_own(
    client: TestClient, stubber: Stubber, capsys: pytest.CaptureFixture[str]
) -> None:
    answer = model_answer(3)
    capsys.readouterr()
    predict(client, stubber, answer)

    [line] = emf_lines(capsys.readouterr().out)
    assert_valid_emf(line)
    latency, endpoint_ms = line["PredictLatency"][0], line["EndpointLatency"][0]
    assert 0 < endpoint_ms <= latency
    top = answer["predictions"][0]["probability"]
    assert line["TopProbability"] == [top]
    expected = powertools_prediction_line(latency, endpoint_ms, top)
    assert abs(line["_aws"].pop("Timestamp") - expected["_aws"].pop("Timestamp")) < 60_000
    assert line == expected


def test_the_top_probability_is_the_metric_the_confidence_alarm_reads(
    client: TestClient, stubber: Stubber, capsys: pytest.CaptureFixture[str]
) -> None:
    """Namespace, name, the one dimension set and the unit a CloudWatch alarm on Average of
    TopProbability must name to find this metric."""
    capsys.readouterr()
    predict(client, stubber, model_answer(2), top_k=2)

    [line] = emf_lines(capsys.readouterr().out)
    [directive] = line["_aws"]["CloudWatchMetrics"]
    assert directive["Namespace"] == NAMESPACE
    assert directive["Dimensions"] == [["service"]]
    assert line["service"] == SERVICE
    assert {"Name": "TopProbability", "Unit": "None"} in directive["Metrics"]
    assert 0 <= line["TopProbability"][0] <= 1


@pytest.mark.parametrize(
    "predictions",
    [[], [{"label": "apple", "index": 0, "probability": float("nan")}]],
    ids=["no predictions", "NaN probability"],
)
def test_an_answer_without_a_top_probability_has_no_top_probability_metric(
    client: TestClient,
    stubber: Stubber,
    capsys: pytest.CaptureFixture[str],
    heard: list[tuple[float, float]],
    predictions: list[dict[str, Any]],
) -> None:
    answer = {**model_answer(1), "predictions": predictions}
    raw = json.dumps(answer).encode()  # json writes NaN, as a model's encoder might
    capsys.readouterr()
    predict(client, stubber, raw, top_k=1)

    [line] = emf_lines(capsys.readouterr().out)  # still valid JSON: no NaN printed
    assert_valid_emf(line)
    assert "TopProbability" not in line
    latency, endpoint_ms = line["PredictLatency"][0], line["EndpointLatency"][0]
    expected = powertools_prediction_line(latency, endpoint_ms, None)
    line["_aws"].pop("Timestamp"), expected["_aws"].pop("Timestamp")
    assert line == expected
    assert heard == []


def test_a_real_predict_calls_the_listeners_with_the_top_1_probability(
    client: TestClient, stubber: Stubber, heard: list[tuple[float, float]]
) -> None:
    answer = model_answer(3)
    predict(client, stubber, answer)
    predict(client, stubber, model_answer(1), top_k=1)

    [(first, first_at), (second, second_at)] = heard
    assert first == answer["predictions"][0]["probability"] == 0.9
    assert second == 0.9
    assert 0 < first_at <= second_at  # seconds since the epoch, as time.time()


def test_listeners_are_called_when_emf_printing_is_disabled(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    heard: list[tuple[float, float]],
) -> None:
    monkeypatch.setattr(observability, "METRICS_DISABLED", True)
    capsys.readouterr()
    observability.count_prediction(12.0, 10.0, 0.25)

    assert capsys.readouterr().out == ""
    assert [p for p, _ in heard] == [0.25]


def test_a_failing_listener_neither_fails_the_request_nor_silences_the_others(
    client: TestClient, stubber: Stubber, heard: list[tuple[float, float]]
) -> None:
    def broken(top_probability: float, timestamp: float) -> None:
        raise RuntimeError("listener bug")

    observability.add_prediction_listener(broken)
    try:
        predict(client, stubber, model_answer(3))
    finally:
        observability.remove_prediction_listener(broken)
    assert [p for p, _ in heard] == [0.9]


def test_removing_a_listener_stops_it_and_unknown_ones_are_ignored() -> None:
    calls: list[float] = []

    def listener(top_probability: float, timestamp: float) -> None:
        calls.append(top_probability)

    before = observability._listeners
    observability.add_prediction_listener(listener)
    observability.count_prediction(1.0, 1.0, 0.5)
    observability.remove_prediction_listener(listener)
    observability.remove_prediction_listener(listener)  # no longer there: nothing happens
    observability.count_prediction(1.0, 1.0, 0.5)
    assert calls == [0.5]
    assert observability._listeners == before


def test_an_error_prints_one_errors_line_by_code_and_status(
    client: TestClient, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    assert client.post("/predict", json={"image": "not base64!"}).status_code == 400

    [line] = emf_lines(capsys.readouterr().out)
    assert_valid_emf(line)
    assert line["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["service", "code", "status"]]
    assert (line["code"], line["status"], line["Errors"]) == ("invalid_base64", "400", [1.0])
    assert "Predictions" not in line
