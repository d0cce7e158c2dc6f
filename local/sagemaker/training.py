"""Training jobs: CreateTrainingJob runs each job as one local process in its own thread
(see :mod:`local.sagemaker.process`); Describe, List and Stop answer as SageMaker does, and
every status change is emitted as a ``SageMaker Training Job State Change`` event."""

from __future__ import annotations

import logging
import time

from local import events
from local.sagemaker.context import (
    STACK_STOPPED,
    Document,
    ServiceContext,
    arn,
    public,
    tag_map,
)
from local.sagemaker.errors import ServiceError, in_use, validation
from local.sagemaker.process import JobOutcome, TrainingProcess

log = logging.getLogger("local.sagemaker")

TERMINAL_JOB = {"Completed", "Failed", "Stopped"}
_SUMMARY_KEYS = (
    "TrainingJobName",
    "TrainingJobArn",
    "CreationTime",
    "TrainingEndTime",
    "LastModifiedTime",
    "TrainingJobStatus",
)


def _missing() -> ServiceError:
    return validation("Requested resource not found.")


class TrainingJobs:
    def __init__(self, context: ServiceContext) -> None:
        self.context = context

    # --- operations -------------------------------------------------------------------
    def create(self, params: Document, tuning: Document | None = None) -> Document:
        """``tuning``: the tuning job that launches this one (its ARN goes on the job)."""
        context = self.context
        name = params["TrainingJobName"]
        with context.lock:
            if context.table.get("training", name) is not None:
                raise in_use(
                    "Training job names must be unique within an AWS account and region, and a "
                    f"training job with this name already exists ({arn('training-job', name)})"
                )
            now = time.time()
            job = {k: v for k, v in params.items() if k != "Tags"}
            job.update(
                TrainingJobArn=arn("training-job", name),
                TrainingJobStatus="InProgress",
                SecondaryStatus="Starting",
                CreationTime=now,
                TrainingStartTime=now,
                SecondaryStatusTransitions=[{"Status": "Starting", "StartTime": now}],
                _Tags=tag_map(params),
            )
            if tuning is not None:
                job["TuningJobArn"] = tuning["HyperParameterTuningJobArn"]
            context.save("training", name, job)
            process = TrainingProcess(
                job, context.job_dir(name), context.s3, context.threads_per_job
            )
            context.processes[name] = process
        context.job_dir(name).mkdir(parents=True, exist_ok=True)
        self._emit(job)
        context.spawn(self._run, name, process)
        return {"TrainingJobArn": job["TrainingJobArn"]}

    def describe(self, params: Document) -> Document:
        return public(self.context.find("training", params["TrainingJobName"], _missing()))

    def list_jobs(self, params: Document) -> Document:
        jobs = self.context.table.all("training")[::-1]  # newest first
        if "NameContains" in params:
            jobs = [j for j in jobs if params["NameContains"] in j["TrainingJobName"]]
        if "StatusEquals" in params:
            jobs = [j for j in jobs if j["TrainingJobStatus"] == params["StatusEquals"]]
        return {
            "TrainingJobSummaries": [
                {k: j[k] for k in _SUMMARY_KEYS if k in j}
                for j in jobs[: params.get("MaxResults", 10)]
            ]
        }

    def stop(self, params: Document) -> Document:
        context = self.context
        name = params["TrainingJobName"]
        with context.lock:
            job = context.find("training", name, _missing())
            if job["TrainingJobStatus"] != "InProgress":
                raise validation(
                    "The request was rejected because the training job is in status "
                    f"{job['TrainingJobStatus']}."
                )
            job.update(TrainingJobStatus="Stopping", SecondaryStatus="Stopping")
            context.save("training", name, job)
            process = context.processes.get(name)
        if process is not None:
            process.stop()  # the runner thread records Stopped once the process has exited
        return {}

    # --- lifecycle --------------------------------------------------------------------
    def is_running(self, name: str) -> bool:
        return self.context.existing("training", name)["TrainingJobStatus"] not in TERMINAL_JOB

    def recover(self) -> None:
        """After a restart: whatever was running died with the previous stack."""
        for job in self.context.table.all("training"):
            if job["TrainingJobStatus"] in ("InProgress", "Stopping"):
                self._finish(job["TrainingJobName"], JobOutcome("Failed", STACK_STOPPED))

    def _run(self, name: str, process: TrainingProcess) -> None:
        context = self.context

        def started(pid: int) -> None:
            with context.lock:
                job = context.existing("training", name)
                job.update(SecondaryStatus="Training", _Pid=pid)
                job["SecondaryStatusTransitions"].append(
                    {"Status": "Training", "StartTime": time.time()}
                )
                context.save("training", name, job)

        try:
            outcome = process.run(started, lambda _metrics: None)
        except Exception as error:  # a bug here must not leave the job InProgress forever
            log.exception("training job %s crashed the runner", name)
            outcome = JobOutcome("Failed", f"InternalServerError: {error}")
        with context.lock:
            context.processes.pop(name, None)
            if context.stack_stopping:
                return  # the stack is going down: the next start records the truth
        self._finish(name, outcome)

    def _finish(self, name: str, outcome: JobOutcome) -> None:
        context = self.context
        with context.lock:
            job = context.existing("training", name)
            now = time.time()
            job.update(
                TrainingJobStatus=outcome.status,
                SecondaryStatus="MaxRuntimeExceeded"
                if outcome.failure_reason == "MaxRuntimeExceeded"
                else outcome.status,
                TrainingEndTime=now,
                FinalMetricDataList=[
                    {"MetricName": k, "Value": v, "Timestamp": now}
                    for k, v in outcome.final_metrics.items()
                ],
            )
            job["SecondaryStatusTransitions"].append(
                {"Status": job["SecondaryStatus"], "StartTime": now}
            )
            if outcome.failure_reason:
                job["FailureReason"] = outcome.failure_reason
            if outcome.status == "Completed":
                prefix = job["OutputDataConfig"]["S3OutputPath"].rstrip("/")
                job["ModelArtifacts"] = {"S3ModelArtifacts": f"{prefix}/{name}/output/model.tar.gz"}
            context.save("training", name, job)
        self._emit(job)

    def _emit(self, job: Document) -> None:
        self.context.emit_change(
            events.TRAINING, job["TrainingJobArn"], public(job), job.get("_Tags", {})
        )
