"""The local SageMaker service: answers the operations the orchestration and the API call.

Requests arrive already validated and parsed by botocore (see :mod:`local.sagemaker.wire`);
this module keeps the resources, runs jobs in threads (each job one local process), hosts
endpoints in-process and emits the ``aws.sagemaker`` state-change events AWS emits.
"""

from __future__ import annotations

import logging
import re
import secrets
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from local import events
from local.s3 import LocalS3
from local.sagemaker.errors import ServiceError, in_use, not_found, validation
from local.sagemaker.hosting import Hosting
from local.sagemaker.process import JobOutcome, TrainingProcess
from local.sagemaker.search import sample_trials
from local.sagemaker.state import ResourceTable
from local.sagemaker.wire import ACCOUNT, REGION

log = logging.getLogger("local.sagemaker")

STACK_STOPPED = "local stack stopped"
TERMINAL_JOB = {"Completed", "Failed", "Stopped"}
_ENDPOINT_EVENT_STATUS = {
    "InService": "IN_SERVICE",
    "Creating": "CREATING",
    "Updating": "UPDATING",
    "Failed": "FAILED",
    "RollingBack": "ROLLING_BACK",
}


def _arn(kind: str, name: str) -> str:
    return f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:{kind}/{name.lower()}"


def _public(doc: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in doc.items() if not k.startswith("_")}


def _event_times(doc: dict[str, Any]) -> dict[str, Any]:
    """Events carry times as epoch milliseconds."""
    return {
        k: int(v * 1000) if k.endswith("Time") and isinstance(v, float) else v
        for k, v in doc.items()
    }


class LocalSageMaker:
    def __init__(
        self,
        root: Path,
        s3: LocalS3,
        emit: Callable[[dict[str, Any]], None],
        threads_per_job: int = 2,
    ) -> None:
        self.root, self.s3, self.emit = root, s3, emit
        self.threads_per_job = threads_per_job
        self.table = ResourceTable(root / "sagemaker.db")
        self.hosting = Hosting(root / "hosting", s3)
        self._lock = threading.RLock()
        self._processes: dict[str, TrainingProcess] = {}
        self._stopping: set[str] = set()
        self._threads: list[threading.Thread] = []

    # --- plumbing -------------------------------------------------------------------
    def handle(self, operation: str, params: dict[str, Any]) -> dict[str, Any]:
        method = getattr(self, "_" + re.sub(r"(?<!^)(?=[A-Z])", "_", operation).lower(), None)
        if method is None:
            raise validation(f"{operation} is not implemented by the local SageMaker")
        return method(params)

    def _spawn(self, target: Callable[..., None], *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _save(self, kind: str, name: str, doc: dict[str, Any]) -> None:
        doc["LastModifiedTime"] = time.time()
        self.table.put(kind, name, doc)

    def job_log(self, name: str) -> Path:
        return self.root / "jobs" / name / "log.txt"

    def job_dir(self, name: str) -> Path:
        return self.root / "jobs" / name

    def shutdown(self) -> None:
        """Kill running jobs. Their records stay InProgress: the next start marks them
        Failed (``local stack stopped``) and tells the handlers, as after a crash."""
        with self._lock:
            self._stopping.add("*")
            processes = list(self._processes.values())
        for process in processes:
            process.stop()

    def recover(self) -> None:
        """After a restart: whatever was running died with the previous stack."""
        for job in self.table.all("training"):
            if job["TrainingJobStatus"] in ("InProgress", "Stopping"):
                self._finish_training(job["TrainingJobName"], JobOutcome("Failed", STACK_STOPPED))
        for tuning in self.table.all("tuning"):
            if tuning["HyperParameterTuningJobStatus"] in ("InProgress", "Stopping"):
                self._finish_tuning(tuning["HyperParameterTuningJobName"], "Failed", STACK_STOPPED)
        for endpoint in self.table.all("endpoint"):
            if endpoint["EndpointStatus"] == "Creating":
                self._set_endpoint(endpoint["EndpointName"], "Failed", STACK_STOPPED)
            elif endpoint["EndpointStatus"] == "Updating":
                self._set_endpoint(endpoint["EndpointName"], "InService", STACK_STOPPED)

    # --- training jobs ----------------------------------------------------------------
    def _create_training_job(
        self, params: dict[str, Any], tuning: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        name = params["TrainingJobName"]
        with self._lock:
            if self.table.get("training", name) is not None:
                raise in_use(
                    "Training job names must be unique within an AWS account and region, and a "
                    f"training job with this name already exists ({_arn('training-job', name)})"
                )
            now = time.time()
            job = {k: v for k, v in params.items() if k != "Tags"}
            job.update(
                TrainingJobArn=_arn("training-job", name),
                TrainingJobStatus="InProgress",
                SecondaryStatus="Starting",
                CreationTime=now,
                TrainingStartTime=now,
                SecondaryStatusTransitions=[{"Status": "Starting", "StartTime": now}],
                _Tags={t["Key"]: t["Value"] for t in params.get("Tags", [])},
            )
            if tuning is not None:
                job["TuningJobArn"] = tuning["HyperParameterTuningJobArn"]
            self._save("training", name, job)
            process = TrainingProcess(job, self.job_dir(name), self.s3, self.threads_per_job)
            self._processes[name] = process
        self.job_dir(name).mkdir(parents=True, exist_ok=True)
        self._emit_training(job)
        self._spawn(self._run_training, name, process)
        return {"TrainingJobArn": job["TrainingJobArn"]}

    def _run_training(self, name: str, process: TrainingProcess) -> None:
        def started(pid: int) -> None:
            with self._lock:
                job = self.table.get("training", name)
                job.update(SecondaryStatus="Training", _Pid=pid)
                job["SecondaryStatusTransitions"].append(
                    {"Status": "Training", "StartTime": time.time()}
                )
                self._save("training", name, job)

        try:
            outcome = process.run(started, lambda _metrics: None)
        except Exception as error:  # a bug here must not leave the job InProgress forever
            log.exception("training job %s crashed the runner", name)
            outcome = JobOutcome("Failed", f"InternalServerError: {error}")
        with self._lock:
            self._processes.pop(name, None)
            if "*" in self._stopping:
                return  # the stack is going down: the next start records the truth
        self._finish_training(name, outcome)

    def _finish_training(self, name: str, outcome: JobOutcome) -> None:
        with self._lock:
            job = self.table.get("training", name)
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
            self._save("training", name, job)
        self._emit_training(job)

    def _emit_training(self, job: dict[str, Any]) -> None:
        detail = _event_times(_public(job))
        detail["Tags"] = dict(job.get("_Tags", {}))
        self.emit(events.envelope(events.TRAINING, job["TrainingJobArn"], detail))

    def _describe(self, kind: str, name: str, missing: ServiceError) -> dict[str, Any]:
        doc = self.table.get(kind, name)
        if doc is None:
            raise missing
        return doc

    def _describe_training_job(self, params: dict[str, Any]) -> dict[str, Any]:
        job = self._describe(
            "training", params["TrainingJobName"], validation("Requested resource not found.")
        )
        return _public(job)

    def _list_training_jobs(self, params: dict[str, Any]) -> dict[str, Any]:
        jobs = self.table.all("training")[::-1]
        if "NameContains" in params:
            jobs = [j for j in jobs if params["NameContains"] in j["TrainingJobName"]]
        if "StatusEquals" in params:
            jobs = [j for j in jobs if j["TrainingJobStatus"] == params["StatusEquals"]]
        keys = (
            "TrainingJobName",
            "TrainingJobArn",
            "CreationTime",
            "TrainingEndTime",
            "LastModifiedTime",
            "TrainingJobStatus",
        )
        return {
            "TrainingJobSummaries": [
                {k: j[k] for k in keys if k in j} for j in jobs[: params.get("MaxResults", 10)]
            ]
        }

    def _stop_training_job(self, params: dict[str, Any]) -> dict[str, Any]:
        name = params["TrainingJobName"]
        with self._lock:
            job = self._describe("training", name, validation("Requested resource not found."))
            if job["TrainingJobStatus"] != "InProgress":
                raise validation(
                    f"The request was rejected because the training job is in status {job['TrainingJobStatus']}."
                )
            job.update(TrainingJobStatus="Stopping", SecondaryStatus="Stopping")
            self._save("training", name, job)
            process = self._processes.get(name)
        if process is not None:
            process.stop()
        return {}

    # --- tuning jobs ------------------------------------------------------------------
    def _create_hyper_parameter_tuning_job(self, params: dict[str, Any]) -> dict[str, Any]:
        name = params["HyperParameterTuningJobName"]
        if "TrainingJobDefinition" not in params:
            raise validation("TrainingJobDefinition is required by the local SageMaker")
        with self._lock:
            if self.table.get("tuning", name) is not None:
                raise in_use(f"Hyperparameter tuning job {name} already exists")
            now = time.time()
            tuning = {k: v for k, v in params.items() if k != "Tags"}
            tuning.update(
                HyperParameterTuningJobArn=_arn("hyper-parameter-tuning-job", name),
                HyperParameterTuningJobStatus="InProgress",
                CreationTime=now,
                TrainingJobStatusCounters=_counters([]),
                ObjectiveStatusCounters={"Succeeded": 0, "Pending": 0, "Failed": 0},
                _Tags={t["Key"]: t["Value"] for t in params.get("Tags", [])},
                _Children=[],
            )
            self._save("tuning", name, tuning)
        self._emit_tuning(tuning)
        self._spawn(self._run_tuning, name)
        return {"HyperParameterTuningJobArn": tuning["HyperParameterTuningJobArn"]}

    def _run_tuning(self, name: str) -> None:
        tuning = self.table.get("tuning", name)
        config = tuning["HyperParameterTuningJobConfig"]
        limits = config["ResourceLimits"]
        definition = tuning["TrainingJobDefinition"]
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
                    time.sleep(0.5)
                if self._tuning_stopped(name):
                    break
                child = f"{name}-{number:03d}-{secrets.token_hex(4)}"
                hyperparameters = {**definition.get("StaticHyperParameters", {}), **trial}
                hyperparameters["_tuning_objective_metric"] = objective
                params = {
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
                with self._lock:
                    doc = self.table.get("tuning", name)
                    doc["_Children"].append(child)
                    doc["_Trials"] = {**doc.get("_Trials", {}), child: trial}
                    self._save("tuning", name, doc)
                children.append(child)
                self._create_training_job(params, tuning)
            while self._running(children):
                time.sleep(0.5)
        except Exception as error:
            log.exception("tuning job %s crashed the runner", name)
            self._finish_tuning(name, "Failed", f"InternalServerError: {error}")
            return
        if "*" in self._stopping:
            return
        if self._tuning_stopped(name):
            self._finish_tuning(name, "Stopped", None)
        elif self._best(self.table.get("tuning", name)) is None:
            self._finish_tuning(
                name, "Failed", "All training jobs failed or reported no objective metric"
            )
        else:
            self._finish_tuning(name, "Completed", None)

    def _running(self, children: list[str]) -> int:
        return sum(
            self.table.get("training", c)["TrainingJobStatus"] not in TERMINAL_JOB for c in children
        )

    def _tuning_stopped(self, name: str) -> bool:
        return self.table.get("tuning", name)["HyperParameterTuningJobStatus"] == "Stopping"

    def _summaries(self, tuning: dict[str, Any]) -> list[dict[str, Any]]:
        objective = tuning["HyperParameterTuningJobConfig"]["HyperParameterTuningJobObjective"]
        summaries = []
        for child in tuning.get("_Children", []):
            job = self.table.get("training", child)
            if job is None:
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
            summaries.append(summary)
        return summaries

    def _best(self, tuning: dict[str, Any]) -> dict[str, Any] | None:
        done = [
            s
            for s in self._summaries(tuning)
            if s["TrainingJobStatus"] == "Completed" and s["ObjectiveStatus"] == "Succeeded"
        ]
        if not done:
            return None
        sign = (
            1
            if tuning["HyperParameterTuningJobConfig"]["HyperParameterTuningJobObjective"]["Type"]
            == "Maximize"
            else -1
        )
        return max(
            done, key=lambda s: sign * s["FinalHyperParameterTuningJobObjectiveMetric"]["Value"]
        )

    def _finish_tuning(self, name: str, status: str, reason: str | None) -> None:
        with self._lock:
            tuning = self.table.get("tuning", name)
            tuning.update(
                HyperParameterTuningJobStatus=status, HyperParameterTuningEndTime=time.time()
            )
            if reason:
                tuning["FailureReason"] = reason
            self._save("tuning", name, tuning)
        self._emit_tuning(tuning)

    def _emit_tuning(self, tuning: dict[str, Any]) -> None:
        detail = _event_times(self._describe_tuning_doc(tuning))
        detail.pop("BestTrainingJob", None)  # the event does not carry it: handlers describe
        detail["Tags"] = dict(tuning.get("_Tags", {}))
        self.emit(events.envelope(events.TUNING, tuning["HyperParameterTuningJobArn"], detail))

    def _describe_tuning_doc(self, tuning: dict[str, Any]) -> dict[str, Any]:
        summaries = self._summaries(tuning)
        doc = _public(tuning)
        doc["TrainingJobStatusCounters"] = _counters(summaries)
        doc["ObjectiveStatusCounters"] = {
            state: sum(s["ObjectiveStatus"] == state for s in summaries)
            for state in ("Succeeded", "Pending", "Failed")
        }
        best = self._best(tuning)
        if best is not None:
            doc["BestTrainingJob"] = best
        return doc

    def _describe_hyper_parameter_tuning_job(self, params: dict[str, Any]) -> dict[str, Any]:
        name = params["HyperParameterTuningJobName"]
        tuning = self._describe(
            "tuning", name, not_found(f"Amazon SageMaker can't find a tuning job with name {name}")
        )
        return self._describe_tuning_doc(tuning)

    def _list_training_jobs_for_hyper_parameter_tuning_job(
        self, params: dict[str, Any]
    ) -> dict[str, Any]:
        name = params["HyperParameterTuningJobName"]
        tuning = self._describe(
            "tuning", name, not_found(f"Amazon SageMaker can't find a tuning job with name {name}")
        )
        summaries = self._summaries(tuning)
        if "StatusEquals" in params:
            summaries = [s for s in summaries if s["TrainingJobStatus"] == params["StatusEquals"]]
        sort_by = params.get("SortBy", "CreationTime")
        key = {
            "Name": lambda s: s["TrainingJobName"],
            "CreationTime": lambda s: s["CreationTime"],
            "Status": lambda s: s["TrainingJobStatus"],
            "FinalObjectiveMetricValue": lambda s: s.get(
                "FinalHyperParameterTuningJobObjectiveMetric", {}
            ).get("Value", float("-inf")),
        }[sort_by]
        summaries.sort(key=key, reverse=params.get("SortOrder", "Descending") == "Descending")
        return {"TrainingJobSummaries": summaries[: params.get("MaxResults", 10)]}

    def _stop_hyper_parameter_tuning_job(self, params: dict[str, Any]) -> dict[str, Any]:
        name = params["HyperParameterTuningJobName"]
        with self._lock:
            tuning = self._describe(
                "tuning",
                name,
                not_found(f"Amazon SageMaker can't find a tuning job with name {name}"),
            )
            if tuning["HyperParameterTuningJobStatus"] != "InProgress":
                raise validation(
                    f"The tuning job is in status {tuning['HyperParameterTuningJobStatus']}."
                )
            tuning["HyperParameterTuningJobStatus"] = "Stopping"
            self._save("tuning", name, tuning)
            processes = [self._processes[c] for c in tuning["_Children"] if c in self._processes]
        for process in processes:
            process.stop()
        return {}

    # --- models, endpoint configs, endpoints ------------------------------------------
    def _create_model(self, params: dict[str, Any]) -> dict[str, Any]:
        name = params["ModelName"]
        with self._lock:
            if self.table.get("model", name) is not None:
                raise validation(f'Cannot create already existing model "{_arn("model", name)}".')
            model = {k: v for k, v in params.items() if k != "Tags"}
            model.update(ModelArn=_arn("model", name), CreationTime=time.time())
            self._save("model", name, model)
        return {"ModelArn": model["ModelArn"]}

    def _describe_model(self, params: dict[str, Any]) -> dict[str, Any]:
        name = params["ModelName"]
        return _public(
            self._describe(
                "model", name, validation(f'Could not find model "{_arn("model", name)}".')
            )
        )

    def _create_endpoint_config(self, params: dict[str, Any]) -> dict[str, Any]:
        name = params["EndpointConfigName"]
        with self._lock:
            if self.table.get("endpoint-config", name) is not None:
                raise validation(
                    f'Cannot create already existing endpoint configuration "{_arn("endpoint-config", name)}".'
                )
            for variant in params["ProductionVariants"]:
                if self.table.get("model", variant["ModelName"]) is None:
                    raise validation(
                        f'Could not find model "{_arn("model", variant["ModelName"])}".'
                    )
            config = {k: v for k, v in params.items() if k != "Tags"}
            config.update(EndpointConfigArn=_arn("endpoint-config", name), CreationTime=time.time())
            self._save("endpoint-config", name, config)
        return {"EndpointConfigArn": config["EndpointConfigArn"]}

    def _describe_endpoint_config(self, params: dict[str, Any]) -> dict[str, Any]:
        name = params["EndpointConfigName"]
        missing = validation(
            f'Could not find endpoint configuration "{_arn("endpoint-config", name)}".'
        )
        return _public(self._describe("endpoint-config", name, missing))

    def _config(self, name: str) -> dict[str, Any]:
        missing = validation(
            f'Could not find endpoint configuration "{_arn("endpoint-config", name)}".'
        )
        return self._describe("endpoint-config", name, missing)

    def _create_endpoint(self, params: dict[str, Any]) -> dict[str, Any]:
        name = params["EndpointName"]
        with self._lock:
            if self.table.get("endpoint", name) is not None:
                raise validation(
                    f'Cannot create already existing endpoint "{_arn("endpoint", name)}".'
                )
            config = self._config(params["EndpointConfigName"])
            now = time.time()
            endpoint = {
                "EndpointName": name,
                "EndpointArn": _arn("endpoint", name),
                "EndpointConfigName": config["EndpointConfigName"],
                "EndpointStatus": "Creating",
                "CreationTime": now,
                "_Tags": {t["Key"]: t["Value"] for t in params.get("Tags", [])},
            }
            self._save("endpoint", name, endpoint)
        self._emit_endpoint(endpoint)
        self._spawn(self._deploy, name, config["EndpointConfigName"], None)
        return {"EndpointArn": endpoint["EndpointArn"]}

    def _update_endpoint(self, params: dict[str, Any]) -> dict[str, Any]:
        name = params["EndpointName"]
        with self._lock:
            endpoint = self._describe(
                "endpoint", name, validation(f'Could not find endpoint "{_arn("endpoint", name)}".')
            )
            if endpoint["EndpointStatus"] != "InService":
                raise validation(f'Cannot update in-progress endpoint "{_arn("endpoint", name)}".')
            config = self._config(params["EndpointConfigName"])
            previous = endpoint["EndpointConfigName"]
            endpoint.update(EndpointStatus="Updating")
            endpoint.pop("FailureReason", None)
            if "DeploymentConfig" in params:
                endpoint["LastDeploymentConfig"] = params["DeploymentConfig"]
            self._save("endpoint", name, endpoint)
        self._emit_endpoint(endpoint)
        self._spawn(self._deploy, name, config["EndpointConfigName"], previous)
        return {"EndpointArn": endpoint["EndpointArn"]}

    def _deploy(self, name: str, config_name: str, previous: str | None) -> None:
        """Blue/green: the new model loads beside the old one; traffic moves only once it
        is up. A model that fails to load leaves the old one serving (SageMaker's rollback)."""
        try:
            self.hosting.serve(name, self._model_of(config_name))
        except Exception as error:
            log.exception("endpoint %s failed to deploy %s", name, config_name)
            if previous is None:
                self._set_endpoint(name, "Failed", f"ClientError: {error}")
            else:
                self._set_endpoint(name, "InService", f"Rolled back to {previous}: {error}")
            return
        self._set_endpoint(name, "InService", None, config_name)

    def _model_of(self, config_name: str) -> dict[str, Any]:
        variant = self._config(config_name)["ProductionVariants"][0]
        return self.table.get("model", variant["ModelName"])

    def _set_endpoint(
        self, name: str, status: str, reason: str | None, config_name: str | None = None
    ) -> None:
        with self._lock:
            endpoint = self.table.get("endpoint", name)
            endpoint["EndpointStatus"] = status
            if config_name is not None:
                endpoint["EndpointConfigName"] = config_name
            if reason:
                endpoint["FailureReason"] = reason
            self._save("endpoint", name, endpoint)
        self._emit_endpoint(endpoint)

    def _describe_endpoint_doc(self, endpoint: dict[str, Any]) -> dict[str, Any]:
        doc = _public(endpoint)
        config = self.table.get("endpoint-config", endpoint["EndpointConfigName"]) or {}
        doc["ProductionVariants"] = [
            {
                "VariantName": v["VariantName"],
                "CurrentWeight": v.get("InitialVariantWeight", 1.0),
                "DesiredWeight": v.get("InitialVariantWeight", 1.0),
                "CurrentInstanceCount": v.get("InitialInstanceCount", 1),
                "DesiredInstanceCount": v.get("InitialInstanceCount", 1),
            }
            for v in config.get("ProductionVariants", [])
        ]
        return doc

    def _describe_endpoint(self, params: dict[str, Any]) -> dict[str, Any]:
        name = params["EndpointName"]
        endpoint = self._describe(
            "endpoint", name, validation(f'Could not find endpoint "{_arn("endpoint", name)}".')
        )
        return self._describe_endpoint_doc(endpoint)

    def _emit_endpoint(self, endpoint: dict[str, Any]) -> None:
        detail = _event_times(self._describe_endpoint_doc(endpoint))
        detail["EndpointStatus"] = _ENDPOINT_EVENT_STATUS.get(
            endpoint["EndpointStatus"], endpoint["EndpointStatus"]
        )
        detail["Tags"] = dict(endpoint.get("_Tags", {}))
        self.emit(events.envelope(events.ENDPOINT, endpoint["EndpointArn"], detail))

    def _list_tags(self, params: dict[str, Any]) -> dict[str, Any]:
        arn = params["ResourceArn"]
        arn_keys = ("TrainingJobArn", "HyperParameterTuningJobArn", "EndpointArn")
        for kind in ("training", "tuning", "endpoint"):
            for doc in self.table.all(kind):
                if arn in (doc.get(key) for key in arn_keys):
                    tags = doc.get("_Tags", {})
                    return {"Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}
        raise validation(f"Could not find resource {arn}")

    # --- runtime ---------------------------------------------------------------------
    def invoke(
        self, endpoint: str, body: bytes, content_type: str, accept: str
    ) -> tuple[bytes, str]:
        if not self.hosting.is_serving(endpoint):
            doc = self.table.get("endpoint", endpoint)
            if doc is not None and doc["EndpointStatus"] in ("InService", "Updating"):
                # After a restart: load what the endpoint served before.
                self.hosting.serve(endpoint, self._model_of(doc["EndpointConfigName"]))
        return self.hosting.invoke(endpoint, body, content_type, accept)


def _counters(summaries: list[dict[str, Any]]) -> dict[str, int]:
    statuses = [s["TrainingJobStatus"] for s in summaries]
    return {
        "Completed": statuses.count("Completed"),
        "InProgress": statuses.count("InProgress") + statuses.count("Stopping"),
        "RetryableError": 0,
        "NonRetryableError": statuses.count("Failed"),
        "Stopped": statuses.count("Stopped"),
    }
