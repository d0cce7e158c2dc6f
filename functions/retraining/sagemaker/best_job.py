"""Picking the tuning job's winner, or explaining why there is none."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class BestJob:
    training_job_name: str
    hyperparameters: dict[str, str]
    objective_metric: str | None
    objective_value: float | None


class NoBestJob(Exception):
    """Every trial failed or was stopped before reporting the objective."""


def best_job(tuning_description: dict[str, Any]) -> BestJob:
    """The best trial of *this* tuning job from DescribeHyperParameterTuningJob.

    ``BestTrainingJob``, not ``OverallBestTrainingJob``: with warm start the overall best can
    be a parent's trial, trained on older data. The tuning job state-change event carries no
    best job at all, hence the Describe call.
    """
    best = tuning_description.get("BestTrainingJob")
    if not best or best.get("TrainingJobStatus") not in (None, "Completed"):
        raise NoBestJob(_no_best_reason(tuning_description))
    objective = best.get("FinalHyperParameterTuningJobObjectiveMetric") or {}
    value = objective.get("Value")
    return BestJob(
        training_job_name=best["TrainingJobName"],
        hyperparameters={
            str(k): str(v).strip('"')  # the SDK JSON-quotes categorical values
            for k, v in (best.get("TunedHyperParameters") or {}).items()
        },
        objective_metric=objective.get("MetricName"),
        objective_value=float(value) if value is not None else None,
    )


def _no_best_reason(tuning_description: dict[str, Any]) -> str:
    counters = tuning_description.get("TrainingJobStatusCounters") or {}
    summary = ", ".join(f"{k}={v}" for k, v in sorted(counters.items()) if v)
    return "tuning finished without a successful trial" + (f" ({summary})" if summary else "")


def first_failure(trial_summaries: list[dict[str, Any]]) -> str | None:
    """A trial's FailureReason (ListTrainingJobsForHyperParameterTuningJob) to show the user
    why every trial failed."""
    for summary in trial_summaries:
        if summary.get("FailureReason"):
            return f"{summary['TrainingJobName']}: {summary['FailureReason']}"
    return None
