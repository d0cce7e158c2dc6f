"""A tuning job's results as SageMaker reports them: one summary per trial (its tuned
hyperparameters and objective value), the status counters, and the best trial."""

from __future__ import annotations

from local.sagemaker.context import Document
from local.sagemaker.state import ResourceTable

OBJECTIVE_STATES = ("Succeeded", "Pending", "Failed")


def summaries(tuning: Document, table: ResourceTable) -> list[Document]:
    """``HyperParameterTrainingJobSummary`` of each trial launched so far, oldest first."""
    objective = tuning["HyperParameterTuningJobConfig"]["HyperParameterTuningJobObjective"]
    found = []
    for child in tuning.get("_Children", []):
        job = table.get("training", child)
        if job is None:  # named before it is created: not a trial yet
            continue
        summary = {
            "TrainingJobName": child,
            "TrainingJobArn": job["TrainingJobArn"],
            "TuningJobName": tuning["HyperParameterTuningJobName"],
            "CreationTime": job["CreationTime"],
            "TrainingStartTime": job["TrainingStartTime"],
            "TrainingJobStatus": job["TrainingJobStatus"],
            "TunedHyperParameters": tuning.get("_Trials", {}).get(child, {}),
        }
        for key in ("TrainingEndTime", "FailureReason"):
            if key in job:
                summary[key] = job[key]
        value = next(
            (
                m["Value"]
                for m in job.get("FinalMetricDataList", [])
                if m["MetricName"] == objective["MetricName"]
            ),
            None,
        )
        if value is not None:
            summary["FinalHyperParameterTuningJobObjectiveMetric"] = {
                "Type": objective["Type"],
                "MetricName": objective["MetricName"],
                "Value": value,
            }
            summary["ObjectiveStatus"] = "Succeeded"
        else:
            summary["ObjectiveStatus"] = (
                "Pending" if job["TrainingJobStatus"] == "InProgress" else "Failed"
            )
        found.append(summary)
    return found


def best_trial(tuning: Document, trials: list[Document]) -> Document | None:
    """The completed trial with the best objective value; None while there is none."""
    done = [
        s
        for s in trials
        if s["TrainingJobStatus"] == "Completed" and s["ObjectiveStatus"] == "Succeeded"
    ]
    if not done:
        return None
    objective = tuning["HyperParameterTuningJobConfig"]["HyperParameterTuningJobObjective"]
    sign = 1 if objective["Type"] == "Maximize" else -1
    return max(done, key=lambda s: sign * s["FinalHyperParameterTuningJobObjectiveMetric"]["Value"])


def status_counters(trials: list[Document]) -> dict[str, int]:
    """``TrainingJobStatusCounters``: a stopping trial still counts as in progress."""
    statuses = [s["TrainingJobStatus"] for s in trials]
    return {
        "Completed": statuses.count("Completed"),
        "InProgress": statuses.count("InProgress") + statuses.count("Stopping"),
        "RetryableError": 0,
        "NonRetryableError": statuses.count("Failed"),
        "Stopped": statuses.count("Stopped"),
    }


def objective_counters(trials: list[Document]) -> dict[str, int]:
    return {state: sum(s["ObjectiveStatus"] == state for s in trials) for state in OBJECTIVE_STATES}
