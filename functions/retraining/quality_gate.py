"""The quality gate: deploy only a model that is good enough and *significantly* better than
the champion, both measured by the final training job on the same test images.

The final job receives the champion's model.tar.gz and evaluates both models image by image
(training/trainlib: the comparison metrics of metric_definitions). Two accuracies from two
jobs on two test sets would be no comparison; the same images make the difference a paired
one, and the exact McNemar test says whether it is more than noise.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import metric_definitions

GATE_METRIC = metric_definitions.GATE_METRIC
CHAMPION_METRIC = metric_definitions.CHAMPION_GATE_METRIC
P_VALUE_METRIC = metric_definitions.GATE_P_VALUE_METRIC


@dataclass(frozen=True)
class GateDecision:
    passed: bool
    reason: str
    candidate: float | None
    champion: float | None
    p_value: float | None = None


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


def _metric(metrics: dict[str, float], name: str, why: str) -> float:
    if name not in metrics:
        raise MissingMetric(f"the final training job reported no {name}{why}")
    return metrics[name]


def decide(
    metrics: dict[str, float],
    compared_with_champion: bool,
    min_accuracy: float,
    margin: float,
    significance: float,
) -> GateDecision:
    """Pass iff ``test_acc >= min_accuracy`` and, when the job was given a champion, the
    candidate beats it on the same images (``test_acc > champion_test_acc``, by at least
    ``margin``) with ``mcnemar_p_value < significance``. A tie never deploys.

    ``compared_with_champion``: the final job received the champion's artifact; then the
    comparison metrics must be there (a job that skipped the comparison is no pass)."""
    candidate = _metric(metrics, GATE_METRIC, "")
    if candidate < min_accuracy:
        return GateDecision(
            False,
            f"{GATE_METRIC} {candidate:.4f} is below the minimum {min_accuracy:.4f}",
            candidate,
            None,
        )
    if not compared_with_champion:
        return GateDecision(
            True,
            f"{GATE_METRIC} {candidate:.4f} passed the minimum {min_accuracy:.4f} "
            "(no model in service to compare with)",
            candidate,
            None,
        )
    why = " although it was given the champion's model"
    champion = _metric(metrics, CHAMPION_METRIC, why)
    p_value = _metric(metrics, P_VALUE_METRIC, why)
    versus = (
        f"{GATE_METRIC} {candidate:.4f} vs the champion's {champion:.4f} on the same test "
        f"images: {100 * (candidate - champion):+.2f} points, p={p_value:.2g}"
    )
    if candidate <= champion or candidate < champion + margin:
        needed = f" (needs +{100 * margin:.2f})" if margin > 0 and candidate > champion else ""
        return GateDecision(False, f"{versus}: not better{needed}", candidate, champion, p_value)
    if p_value >= significance:
        return GateDecision(
            False,
            f"{versus}: not significant (p >= {significance:g}, GATE_SIGNIFICANCE)",
            candidate,
            champion,
            p_value,
        )
    return GateDecision(True, f"{versus} < {significance:g}: better", candidate, champion, p_value)
