"""The local model-confidence alarm: CloudWatch's evaluation rules (Average per period, M out
of N, missing data as not breaching), its state-change events in the documented shape, and
the prediction listener that feeds it."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest

import api.observability as observability
from local.alarm import ALARM, INSUFFICIENT_DATA, OK, LocalAlarm
from local.events import matches
from local.sagemaker.wire import ACCOUNT, REGION

FIXTURES = Path(__file__).resolve().parents[2] / "events" / "cloudwatch"
NAME = "cifar100-model-confidence"
PERIOD = 60.0
T0 = 1_796_000_040.0  # 2026-11-30T00:54:00Z, a period boundary (a multiple of 60 s)
LOW, HIGH = 0.2, 0.9  # against a threshold of 0.5
RETRAIN_PATTERN = {
    "source": ["aws.cloudwatch"],
    "detail-type": ["CloudWatch Alarm State Change"],
    "detail": {"alarmName": [NAME], "state": {"value": ["ALARM"]}},
}


class Clock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def make_alarm(
    events: list[dict[str, Any]], n: int = 3, m: int | None = None, **kwargs: Any
) -> LocalAlarm:
    return LocalAlarm(
        NAME,
        threshold=0.5,
        emit=events.append,
        period_s=PERIOD,
        evaluation_periods=n,
        datapoints_to_alarm=m,
        namespace="Cifar100",
        dimensions={"service": "cifar100-api"},
        description="Mean top-1 probability below 0.5",
        clock=Clock(),
        **kwargs,
    )


def run_periods(alarm: LocalAlarm, pattern: str, start: float = T0) -> float:
    """Feed one period per character ('X' breaching, '0' not breaching, '-' no data), then
    evaluate at its end; return the time after the last period."""
    at = start
    for mark in pattern.split():
        if mark != "-":
            for offset in (1.0, 30.0, 59.0):
                alarm.record(LOW if mark == "X" else HIGH, at + offset)
        at += PERIOD
        alarm.evaluate(at)
    return at


def states(events: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(e["detail"]["previousState"]["value"], e["detail"]["state"]["value"]) for e in events]


def shape(value: Any, key: str = "") -> Any:
    """Keys and nesting, not values: what the documented example and ours must share (a
    metric's ``dimensions`` is a map of names to values, whatever the names)."""
    if isinstance(value, dict) and key == "dimensions":
        return {"<name>": sorted({shape(item) for item in value.values()})}
    if isinstance(value, dict):
        return {name: shape(item, name) for name, item in value.items()}
    if isinstance(value, list):
        return [shape(item) for item in value]
    return type(value).__name__


def fixture(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((FIXTURES / name).read_text())
    return loaded


# -- CloudWatch's evaluation rules -------------------------------------------------------------


def test_a_burst_of_low_confidence_raises_alarm_once_and_recovery_emits_ok() -> None:
    events: list[dict[str, Any]] = []
    alarm = make_alarm(events, n=3)
    assert alarm.state == INSUFFICIENT_DATA

    alarm.evaluate(T0)  # created: no data, missing data is not breaching
    assert states(events) == [(INSUFFICIENT_DATA, OK)]

    at = run_periods(alarm, "X X")  # 2 of 3: not yet
    assert alarm.state == OK
    assert len(events) == 1
    at = run_periods(alarm, "X X X X", at)  # the third in a row alarms; more change nothing
    assert states(events)[1:] == [(OK, ALARM)]
    alarm.evaluate(at)  # evaluating the same periods again sends nothing
    assert len(events) == 2

    run_periods(alarm, "0 0", at)  # one good period of the last 3 is enough for OK
    assert states(events)[2:] == [(ALARM, OK)]
    assert [e["detail"]["state"]["value"] for e in events].count(ALARM) == 1


def test_the_metric_is_the_average_of_each_period() -> None:
    events: list[dict[str, Any]] = []
    alarm = make_alarm(events, n=1)
    for value in (0.1, 0.95, 0.95):  # mean 0.667: not breaching though one value is low
        alarm.record(value, T0 + 5)
    alarm.evaluate(T0 + PERIOD)
    assert alarm.state == OK
    assert [d.value for d in alarm.datapoints(T0 + PERIOD)] == [pytest.approx(2.0 / 3)]

    for value in (0.1, 0.1, 0.95):  # mean 0.383
        alarm.record(value, T0 + PERIOD + 5)
    alarm.evaluate(T0 + 2 * PERIOD)
    assert alarm.state == ALARM
    data = json.loads(events[-1]["detail"]["state"]["reasonData"])
    assert data["recentDatapoints"] == [pytest.approx(0.3833333)]
    assert data["statistic"] == "Average"
    assert data["period"] == 60


def test_the_period_being_recorded_is_not_evaluated_until_it_ends() -> None:
    events: list[dict[str, Any]] = []
    alarm = make_alarm(events, n=1)
    alarm.evaluate(T0)
    alarm.record(LOW, T0 + 10)
    alarm.evaluate(T0 + 59.9)
    assert alarm.state == OK
    alarm.evaluate(T0 + 60.0)
    assert alarm.state == ALARM


def test_periods_without_predictions_do_not_breach() -> None:
    events: list[dict[str, Any]] = []
    alarm = make_alarm(events, n=1)
    at = T0
    for _ in range(10):
        at += PERIOD
        alarm.evaluate(at)
    assert states(events) == [(INSUFFICIENT_DATA, OK)]
    assert "treated as [NonBreaching]" in events[0]["detail"]["state"]["reason"]

    at = run_periods(alarm, "X", at)
    assert alarm.state == ALARM
    # Traffic stops. While the breaching datapoint is in the evaluation range (N + 2 = 3
    # periods) it is the most recent one and is evaluated again, as the guide warns; once it
    # has left, the missing periods count as not breaching.
    at = run_periods(alarm, "- -", at)
    assert alarm.state == ALARM
    run_periods(alarm, "-", at)
    assert states(events)[-1] == (ALARM, OK)


def test_m_out_of_n_breaching_periods_need_not_be_consecutive() -> None:
    events: list[dict[str, Any]] = []
    alarm = make_alarm(events, n=3, m=2)
    at = run_periods(alarm, "X 0")
    assert alarm.state == OK
    at = run_periods(alarm, "X", at)  # X 0 X: 2 of the last 3
    assert alarm.state == ALARM
    at = run_periods(alarm, "0", at)  # 0 X 0: 1 of 3
    assert alarm.state == OK
    reason = events[-1]["detail"]["state"]["reason"]
    assert "(minimum 2 datapoints for ALARM -> OK transition)" in reason  # N - M + 1 good


# The guide's tables ("Configuring how CloudWatch alarms treat missing data"): 5 datapoints
# retrieved for 3 evaluation periods, oldest first; 0 not breaching, X breaching, - missing.
DOCUMENTED = [
    # (datapoints to alarm, datapoints, NOT BREACHING, BREACHING)
    (3, "0 - X - X", OK, OK),
    (3, "0 - - - -", OK, OK),
    (3, "- - - - -", OK, ALARM),
    (3, "0 X X - X", ALARM, ALARM),
    (3, "- - - - X", OK, ALARM),
    (3, "X - - - -", OK, ALARM),
    (2, "0 - X - X", ALARM, ALARM),
    (2, "0 0 X 0 X", ALARM, ALARM),
    (2, "0 - X - -", OK, ALARM),
    (2, "- - - - 0", OK, ALARM),
    (2, "- - - - X", OK, ALARM),
]


@pytest.mark.parametrize(("m", "datapoints", "not_breaching", "breaching"), DOCUMENTED)
@pytest.mark.parametrize("treat", ["notBreaching", "breaching"])
def test_the_documented_missing_data_examples(
    treat: str, m: int, datapoints: str, not_breaching: str, breaching: str
) -> None:
    events: list[dict[str, Any]] = []
    alarm = make_alarm(events, n=3, m=m, treat_missing_data=treat)
    assert alarm.evaluation_range == 5
    at = T0
    for mark in datapoints.split():
        if mark != "-":
            alarm.record(LOW if mark == "X" else HIGH, at + 1)
        at += PERIOD
    alarm.evaluate(at)  # one evaluation over the 5 periods
    assert alarm.state == (not_breaching if treat == "notBreaching" else breaching)


def test_unsupported_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="TreatMissingData"):
        make_alarm([], treat_missing_data="missing")
    with pytest.raises(ValueError, match="datapoints_to_alarm"):
        make_alarm([], n=2, m=3)
    with pytest.raises(ValueError, match="ComparisonOperator"):
        make_alarm([], comparison_operator="LessThanLowerThreshold")


# -- the event -------------------------------------------------------------------------------


def test_the_event_has_the_documented_keys_and_nesting() -> None:
    events: list[dict[str, Any]] = []
    alarm = make_alarm(events, n=1)
    at = run_periods(alarm, "0")  # INSUFFICIENT_DATA -> OK
    run_periods(alarm, "X", at)  # OK -> ALARM, as in the documented example
    documented = fixture("alarm_state_change.json")

    first, event = events
    assert shape(event) == shape(documented)
    for key in ("state", "previousState"):
        assert shape(json.loads(event["detail"][key]["reasonData"])) == shape(
            json.loads(documented["detail"][key]["reasonData"])
        )
    assert (event["version"], event["source"], event["detail-type"]) == (
        "0",
        "aws.cloudwatch",
        "CloudWatch Alarm State Change",
    )
    assert (event["account"], event["region"]) == (ACCOUNT, REGION)
    assert event["resources"] == [f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:{NAME}"]
    assert event["time"] == "2026-11-30T00:56:00Z"
    assert event["detail"]["previousState"] == first["detail"]["state"]
    assert event["detail"]["state"]["timestamp"] == "2026-11-30T00:56:00.000+0000"
    [mean] = json.loads(event["detail"]["state"]["reasonData"])["recentDatapoints"]
    assert mean == pytest.approx(LOW)
    assert event["detail"]["state"]["reason"] == (
        f"Threshold Crossed: 1 out of the last 1 datapoints [{mean!r} (30/11/26 00:55:00)] was "
        "less than the threshold (0.5) (minimum 1 datapoint for OK -> ALARM transition)."
    )
    assert event["detail"]["configuration"] == {
        "description": "Mean top-1 probability below 0.5",
        "metrics": [
            {
                "id": event["detail"]["configuration"]["metrics"][0]["id"],
                "metricStat": {
                    "metric": {
                        "dimensions": {"service": "cifar100-api"},
                        "name": "TopProbability",
                        "namespace": "Cifar100",
                    },
                    "period": 60,
                    "stat": "Average",
                },
                "returnData": True,
            }
        ],
    }


def test_the_first_event_leaves_insufficient_data_as_cloudwatch_reports_it() -> None:
    events: list[dict[str, Any]] = []
    make_alarm(events, n=1).evaluate(T0)
    documented = fixture("alarm_state_change_metric_math_first.json")["detail"]["previousState"]

    previous = events[0]["detail"]["previousState"]
    assert shape(previous) == shape(documented)
    assert (previous["value"], previous["reason"]) == (
        INSUFFICIENT_DATA,
        "Unchecked: Initial alarm creation",
    )


def test_only_the_alarm_event_matches_the_retraining_rule_pattern() -> None:
    events: list[dict[str, Any]] = []
    alarm = make_alarm(events, n=1)
    at = run_periods(alarm, "0 X")
    run_periods(alarm, "0", at)
    assert states(events) == [(INSUFFICIENT_DATA, OK), (OK, ALARM), (ALARM, OK)]

    assert [matches(RETRAIN_PATTERN, e) for e in events] == [False, True, False]
    documented = fixture("alarm_state_change.json")  # an ALARM event of another alarm
    assert not matches(RETRAIN_PATTERN, documented)
    renamed = {**documented, "detail": {**documented["detail"], "alarmName": NAME}}
    assert matches(RETRAIN_PATTERN, renamed)


# -- feeding it: the prediction listener and the timer --------------------------------------


def test_start_listens_to_predictions_and_evaluates_on_period_boundaries() -> None:
    events: list[dict[str, Any]] = []
    changed = threading.Event()

    def emit(event: dict[str, Any]) -> None:
        events.append(event)
        changed.set()

    alarm = LocalAlarm(
        NAME,
        threshold=0.5,
        emit=emit,
        period_s=0.3,
        namespace="Cifar100",
        dimensions={"service": "cifar100-api"},
        settle_s=0.02,
    )
    with alarm:
        assert alarm.record in observability._listeners
        assert changed.wait(2)  # evaluated at once: INSUFFICIENT_DATA -> OK
        changed.clear()
        observability.count_prediction(10.0, 8.0, 0.1)  # what /predict calls
        assert changed.wait(2)  # the next boundary
    assert alarm.record not in observability._listeners
    assert states(events) == [(INSUFFICIENT_DATA, OK), (OK, ALARM)]
    assert json.loads(events[1]["detail"]["state"]["reasonData"])["recentDatapoints"] == [0.1]

    time.sleep(0.4)  # stopped: no more evaluations at the boundaries that passed
    assert len(events) == 2
