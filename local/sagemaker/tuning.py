"""Hyperparameter tuning jobs: a runner thread samples trials from the ParameterRanges
(:mod:`local.sagemaker.search`) and launches each as a training job, at most
MaxParallelTrainingJobs at a time; the job completes with its best trial, as SageMaker's
tuner does, and emits ``SageMaker HyperParameter Tuning Job State Change`` events."""

from __future__ import annotations

import logging
import secrets
import time

from local import events
from local.sagemaker.context import STACK_STOPPED, Document, ServiceContext, arn, public, tag_map
from local.sagemaker.errors import ServiceError, in_use, not_found, validation
from local.sagemaker.search import sample_trials
from local.sagemaker.training import TrainingJobs
from local.sagemaker.tuning_results import (
    best_trial,
    objective_counters,
    status_counters,
    summaries,
)

log = logging.getLogger("local.sagemaker")

_POLL_SECONDS = 0.5  # how often the runner looks at its trials


def _missing(name: str) -> ServiceError:
    return not_found(f"Amazon SageMaker can't find a tuning job with name {name}")


def _trial_request(child: str, trial: dict[str, str], tuning: Document, objective: str) -> Document:
    """The CreateTrainingJob request of one trial, from the TrainingJobDefinition."""
    definition = tuning["TrainingJobDefinition"]
    hyperparameters = {**definition.get("StaticHyperParameters", {}), **trial}
    hyperparameters["_tuning_objective_metric"] = objective
    return {
        "TrainingJobName": child,
        "HyperParameters": hyperparameters,
        "AlgorithmSpecification": definition["AlgorithmSpecification"],
        "RoleArn": definition["RoleArn"],
        "InputDataConfig": definition.get("InputDataConfig", []),
        "OutputDataConfig": definition["OutputDataConfig"],
        "ResourceConfig": definition.get("ResourceConfig", {}),
        "StoppingCondition": definition.get("StoppingCondition", {}),
        "Environment": definition.get("Environment", {}),
        # Jobs a tuning job launches carry the tuning job's tags, as in AWS.
        "Tags": [{"Key": k, "Value": v} for k, v in tuning["_Tags"].items()],
    }


class TuningJobs:
    def __init__(self, context: ServiceContext, training: TrainingJobs) -> None:
        self.context, self.training = context, training

    # --- operations -------------------------------------------------------------------
    def create(self, params: Document) -> Document:
        context = self.context
        name = params["HyperParameterTuningJobName"]
        if "TrainingJobDefinition" not in params:
            raise validation("TrainingJobDefinition is required by the local SageMaker")
        with context.lock:
            if context.table.get("tuning", name) is not None:
                raise in_use(f"Hyperparameter tuning job {name} already exists")
            tuning = {k: v for k, v in params.items() if k != "Tags"}
            tuning.update(
                HyperParameterTuningJobArn=arn("hyper-parameter-tuning-job", name),
                HyperParameterTuningJobStatus="InProgress",
                CreationTime=time.time(),
                TrainingJobStatusCounters=status_counters([]),
                ObjectiveStatusCounters=objective_counters([]),
                _Tags=tag_map(params),
                _Children=[],
            )
            context.save("tuning", name, tuning)
        self._emit(tuning)
        context.spawn(self._run, name)
        return {"HyperParameterTuningJobArn": tuning["HyperParameterTuningJobArn"]}

    def describe(self, params: Document) -> Document:
        name = params["HyperParameterTuningJobName"]
        return self._description(self.context.find("tuning", name, _missing(name)))

    def list_training_jobs(self, params: Document) -> Document:
        name = params["HyperParameterTuningJobName"]
        trials = summaries(self.context.find("tuning", name, _missing(name)), self.context.table)
        if "StatusEquals" in params:
            trials = [s for s in trials if s["TrainingJobStatus"] == params["StatusEquals"]]
        key = {
            "Name": lambda s: s["TrainingJobName"],
            "CreationTime": lambda s: s["CreationTime"],
            "Status": lambda s: s["TrainingJobStatus"],
            "FinalObjectiveMetricValue": lambda s: s.get(
                "FinalHyperParameterTuningJobObjectiveMetric", {}
            ).get("Value", float("-inf")),
        }[params.get("SortBy", "CreationTime")]
        trials.sort(key=key, reverse=params.get("SortOrder", "Descending") == "Descending")
        return {"TrainingJobSummaries": trials[: params.get("MaxResults", 10)]}

    def stop(self, params: Document) -> Document:
        context = self.context
        name = params["HyperParameterTuningJobName"]
        with context.lock:
            tuning = context.find("tuning", name, _missing(name))
            if tuning["HyperParameterTuningJobStatus"] != "InProgress":
                raise validation(
                    f"The tuning job is in status {tuning['HyperParameterTuningJobStatus']}."
                )
            tuning["HyperParameterTuningJobStatus"] = "Stopping"
            context.save("tuning", name, tuning)
            processes = [
                context.processes[c] for c in tuning["_Children"] if c in context.processes
            ]
        for process in processes:
            process.stop()  # the runner sees Stopping, launches no more and records Stopped
        return {}

    # --- lifecycle --------------------------------------------------------------------
    def recover(self) -> None:
        """After a restart: a tuning job's runner died with the previous stack."""
        for tuning in self.context.table.all("tuning"):
            if tuning["HyperParameterTuningJobStatus"] in ("InProgress", "Stopping"):
                self._finish(tuning["HyperParameterTuningJobName"], "Failed", STACK_STOPPED)

    def _run(self, name: str) -> None:
        context = self.context
        tuning = context.existing("tuning", name)
        config = tuning["HyperParameterTuningJobConfig"]
        limits = config["ResourceLimits"]
        objective = config["HyperParameterTuningJobObjective"]["MetricName"]
        trials = sample_trials(
            config.get("ParameterRanges", {}),
            limits["MaxNumberOfTrainingJobs"],
            config.get("Strategy", "Bayesian"),
            name,
        )
        children: list[str] = []
        try:
            for number, trial in enumerate(trials, start=1):
                while self._running(children) >= limits["MaxParallelTrainingJobs"]:
                    time.sleep(_POLL_SECONDS)
                if self._stopping(name):
                    break
                child = f"{name}-{number:03d}-{secrets.token_hex(4)}"
                with context.lock:
                    doc = context.existing("tuning", name)
                    doc["_Children"].append(child)
                    doc["_Trials"] = {**doc.get("_Trials", {}), child: trial}
                    context.save("tuning", name, doc)
                children.append(child)
                self.training.create(_trial_request(child, trial, tuning, objective), tuning)
            while self._running(children):
                time.sleep(_POLL_SECONDS)
        except Exception as error:
            log.exception("tuning job %s crashed the runner", name)
            self._finish(name, "Failed", f"InternalServerError: {error}")
            return
        if context.stack_stopping:
            return  # the next start's recover() records it
        if self._stopping(name):
            self._finish(name, "Stopped", None)
        elif self._best(context.existing("tuning", name)) is None:
            self._finish(name, "Failed", "All training jobs failed or reported no objective metric")
        else:
            self._finish(name, "Completed", None)

    def _best(self, tuning: Document) -> Document | None:
        return best_trial(tuning, summaries(tuning, self.context.table))

    def _running(self, children: list[str]) -> int:
        return sum(self.training.is_running(child) for child in children)

    def _stopping(self, name: str) -> bool:
        status = self.context.existing("tuning", name)["HyperParameterTuningJobStatus"]
        return bool(status == "Stopping")

    def _finish(self, name: str, status: str, reason: str | None) -> None:
        context = self.context
        with context.lock:
            tuning = context.existing("tuning", name)
            tuning.update(
                HyperParameterTuningJobStatus=status, HyperParameterTuningEndTime=time.time()
            )
            if reason:
                tuning["FailureReason"] = reason
            context.save("tuning", name, tuning)
        self._emit(tuning)

    def _description(self, tuning: Document) -> Document:
        """DescribeHyperParameterTuningJob's answer: counters and best trial from one read."""
        trials = summaries(tuning, self.context.table)
        doc = public(tuning)
        doc["TrainingJobStatusCounters"] = status_counters(trials)
        doc["ObjectiveStatusCounters"] = objective_counters(trials)
        best = best_trial(tuning, trials)
        if best is not None:
            doc["BestTrainingJob"] = best
        return doc

    def _emit(self, tuning: Document) -> None:
        detail = self._description(tuning)
        detail.pop("BestTrainingJob", None)  # the event does not carry it: handlers describe
        self.context.emit_change(
            events.TUNING, tuning["HyperParameterTuningJobArn"], detail, tuning.get("_Tags", {})
        )
