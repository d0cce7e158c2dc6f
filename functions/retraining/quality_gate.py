"""The quality gate: deploy only a model that is good enough and better than the champion."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import metric_definitions


@dataclass(frozen=True)
class GateDecision:
    passed: bool
    reason: str
    candidate: float | None
    champion: float | None


class MissingMetric(Exception):
    """The training job reported no gate metric (its log lines were not matched)."""


def final_metrics(training_description: dict[str, Any]) -> dict[str, float]:
    """DescribeTrainingJob ``FinalMetricDataList`` as ``{name: value}`` (the last value
    SageMaker read with the MetricDefinitions regexes)."""
    return {
        str(item["MetricName"]): float(item["Value"])
        for item in training_description.get("FinalMetricDataList") or []
        if "MetricName" in item and "Value" in item
    }


def decide(
    metrics: dict[str, float],
    champion: dict[str, Any] | None,
    min_accuracy: float,
    margin: float,
) -> GateDecision:
    """Pass iff ``candidate >= min_accuracy`` and, when a model is in service, the candidate
    beats it: ``candidate > champion`` and ``candidate >= champion + margin`` (a tie never
    redeploys, whatever the margin)."""
    name = metric_definitions.GATE_METRIC
    if name not in metrics:
        raise MissingMetric(f"the final training job reported no {name}")
    candidate = metrics[name]
    champion_value = _champion_value(champion, name)
    if candidate < min_accuracy:
        return GateDecision(
            False,
            f"{name} {candidate:.4f} is below the minimum {min_accuracy:.4f}",
            candidate,
            champion_value,
        )
    if champion_value is not None and (
        candidate <= champion_value or candidate < champion_value + margin
    ):
        return GateDecision(
            False,
            f"{name} {candidate:.4f} does not beat the champion's {champion_value:.4f} "
            f"by the margin {margin:.4f}",
            candidate,
            champion_value,
        )
    versus = f" (champion {champion_value:.4f})" if champion_value is not None else ""
    return GateDecision(True, f"{name} {candidate:.4f} passed{versus}", candidate, champion_value)


def _champion_value(champion: dict[str, Any] | None, name: str) -> float | None:
    if not champion:
        return None
    value = (champion.get("metrics") or {}).get(name)
    return float(value) if value is not None else None
