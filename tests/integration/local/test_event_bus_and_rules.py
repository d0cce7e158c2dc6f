from __future__ import annotations

import json
import sys
import time
import types
from pathlib import Path
from typing import Any

import pytest

from local.bus import EventBus, Rule, Schedule
from local.events import ENDPOINT, TRAINING, TUNING, envelope, matches
from local.rules import TemplateError, stack_rules

REPO = Path(__file__).resolve().parents[3]


def training_event(name: str, status: str, stage: str) -> dict[str, Any]:
    detail = {"TrainingJobName": name, "TrainingJobStatus": status}
    detail["Tags"] = {"project": "cifar100", "run-id": "r1", "stage": stage}
    return envelope(TRAINING, f"arn:aws:sagemaker:us-east-1:0:training-job/{name}", detail)


def test_only_the_final_training_job_reaches_the_deploy_handler() -> None:
    chosen = stack_rules(REPO, "cifar100", "ep")
    training = next(r for r in chosen if r.target.endswith(":training_job_state_change"))
    assert matches(training.pattern, training_event("cifar100-r1-final", "Completed", "final"))
    assert not matches(training.pattern, training_event("cifar100-r1-001-ab", "Completed", "hpo"))
    assert not matches(training.pattern, training_event("cifar100-r1-final", "InProgress", "final"))
    assert not matches(training.pattern, training_event("other-r1-final", "Completed", "final"))

    tuning = next(r for r in chosen if r.target.endswith(":tuning_job_state_change"))
    done = {"HyperParameterTuningJobName": "cifar100-r1", "HyperParameterTuningJobStatus": "Failed"}
    assert matches(tuning.pattern, envelope(TUNING, "arn", done))
    assert not matches(
        tuning.pattern,
        envelope(TUNING, "arn", {**done, "HyperParameterTuningJobStatus": "InProgress"}),
    )

    endpoint = next(r for r in chosen if r.target.endswith(":endpoint_state_change"))
    assert matches(
        endpoint.pattern,
        envelope(ENDPOINT, "arn", {"EndpointName": "ep", "EndpointStatus": "IN_SERVICE"}),
    )
    assert not matches(endpoint.pattern, envelope(ENDPOINT, "arn", {"EndpointName": "other"}))


@pytest.mark.parametrize(
    ("template", "message"),
    [
        (None, "cannot read the event rules"),
        ("Resources: [unclosed", "cannot read the event rules"),
        ("- a list", "not a CloudFormation template"),
        ("Resources:\n  Api:\n    Type: AWS::Serverless::Function\n", "declares no"),
    ],
)
def test_a_missing_or_unusable_template_is_a_clear_error(
    tmp_path: Path, template: str | None, message: str
) -> None:
    if template is not None:
        (tmp_path / "template.yaml").write_text(template)
    with pytest.raises(TemplateError, match=message):
        stack_rules(tmp_path, "cifar100", "ep")


def test_pattern_filters() -> None:
    assert matches({"a": [{"anything-but": ["x"]}]}, {"a": "y"})
    assert not matches({"a": [{"anything-but": ["x"]}]}, {"a": "x"})
    assert matches({"a": [{"exists": False}]}, {"b": 1})
    assert not matches({"a": [{"exists": False}]}, {"a": 1})
    assert matches({"a": [{"suffix": "-final"}]}, {"a": "j-final"})
    assert matches({"a": {"b": [1, 2]}}, {"a": {"b": 2, "c": 3}})
    assert not matches({"a": {"b": [1, 2]}}, {"a": {"c": 3}})


def test_bus_delivers_matching_events_and_retries_a_failing_handler(tmp_path: Path) -> None:
    module = types.ModuleType("fake_handlers")
    seen: list[tuple[str, str]] = []
    failures = {"count": 0}

    def flaky(event: dict[str, Any], context: Any) -> None:
        if failures["count"] < 1:
            failures["count"] += 1
            raise RuntimeError("transient")
        seen.append((event["detail"]["TrainingJobName"], context.function_name))

    module.flaky = flaky  # type: ignore[attr-defined]
    sys.modules["fake_handlers"] = module
    try:
        rule = Rule("Final", {"detail": {"Tags": {"stage": ["final"]}}}, "fake_handlers:flaky")
        bus = EventBus([rule], tmp_path / "events.jsonl")
        bus.start()
        bus.put(training_event("cifar100-r1-001-ab", "Completed", "hpo"))
        bus.put(training_event("cifar100-r1-final", "Completed", "final"))
        deadline = time.monotonic() + 10
        while not (bus.idle() and seen) and time.monotonic() < deadline:
            time.sleep(0.05)
        bus.stop()
    finally:
        del sys.modules["fake_handlers"]
    assert seen == [("cifar100-r1-final", "Final")]
    journal = (tmp_path / "events.jsonl").read_text().splitlines()
    assert len(journal) == 1
    assert '"outcome": "delivered"' in journal[0]


def test_schedule_delivers_the_rule_input_to_the_scheduled_run_handler(tmp_path: Path) -> None:
    scheduled = next(
        r for r in stack_rules(REPO, "cifar100", "ep") if r.target.endswith(":start_scheduled_run")
    )
    assert scheduled.input is not None
    module = types.ModuleType("fake_schedule")
    received: list[Any] = []
    module.start = lambda event, context: received.append(event)  # type: ignore[attr-defined]
    sys.modules["fake_schedule"] = module
    try:
        rule = Rule(scheduled.name, scheduled.pattern, "fake_schedule:start", scheduled.input)
        bus = EventBus([rule], tmp_path / "events.jsonl")
        bus.start()
        schedule = Schedule(bus, scheduled.pattern["resources"][0], interval_s=0.05)
        schedule.start()
        deadline = time.monotonic() + 10
        while len(received) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        schedule.stop()
        bus.stop()
    finally:
        del sys.modules["fake_schedule"]
    assert received[:2] == [json.loads(scheduled.input)] * 2
