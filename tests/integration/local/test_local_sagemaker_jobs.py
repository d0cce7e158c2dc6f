from __future__ import annotations

import json
import tarfile
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from local.events import TRAINING, TUNING
from local.s3 import LocalS3
from local.sagemaker.backend import LocalSageMaker
from tests.integration.local.conftest import BUCKET, Emitted, training_request, wait_for


def job_status(sm: Any, name: str) -> str | None:
    status = sm.describe_training_job(TrainingJobName=name)["TrainingJobStatus"]
    return status if status not in ("InProgress", "Stopping") else None


def test_training_job_runs_under_the_container_contract(
    sm: Any, s3: LocalS3, backend: LocalSageMaker, emitted: Emitted
) -> None:
    sm.create_training_job(**training_request("job-ok", learning_rate="0.05", epochs="2"))
    assert wait_for(lambda: job_status(sm, "job-ok")) == "Completed"

    job = sm.describe_training_job(TrainingJobName="job-ok")
    metrics = {m["MetricName"]: m["Value"] for m in job["FinalMetricDataList"]}
    assert metrics == {"val_acc": 0.5, "test_acc": 0.75}
    artifact = job["ModelArtifacts"]["S3ModelArtifacts"]
    assert artifact == f"s3://{BUCKET}/out/job-ok/output/model.tar.gz"
    with tarfile.open(s3.path(artifact)) as tar:
        model = json.load(tar.extractfile("model.txt"))
    assert model == {"train": ["a.png"], "lr": 0.05}  # channel and hyperparameters arrived
    assert "epoch=2" in backend.job_log("job-ok").read_text()
    wait_for(lambda: len(emitted.of(TRAINING)) >= 2)  # the event follows the saved state
    statuses = [e["detail"]["TrainingJobStatus"] for e in emitted.of(TRAINING)]
    assert statuses == ["InProgress", "Completed"]
    assert emitted.of(TRAINING)[-1]["detail"]["Tags"] == {"stage": "final"}


def test_a_torch_distributed_job_runs_one_torchrun_process_per_instance(
    sm: Any, s3: LocalS3
) -> None:
    """The container's torch_distributed launcher: torchrun over every instance (one CPU
    process each locally), the same SM_* contract, rank 0 reporting."""
    request = training_request("job-ddp", sagemaker_torch_distributed_enabled="true")
    request["ResourceConfig"]["InstanceCount"] = 2
    sm.create_training_job(**request)
    assert wait_for(lambda: job_status(sm, "job-ddp"), timeout=120) == "Completed"
    job = sm.describe_training_job(TrainingJobName="job-ddp")
    metrics = {m["MetricName"]: m["Value"] for m in job["FinalMetricDataList"]}
    assert metrics == {"val_acc": 0.1, "test_acc": 0.75}
    with tarfile.open(s3.path(job["ModelArtifacts"]["S3ModelArtifacts"])) as tar:
        launch = json.load(tar.extractfile("launch.json"))
    assert launch["WORLD_SIZE"] == launch["LOCAL_WORLD_SIZE"] == "2"
    assert json.loads(launch["SM_HOSTS"]) == ["algo-1", "algo-2"]
    assert launch["SM_NUM_CPUS"] == "1"  # the job's threads shared by the two processes


def test_failing_script_fails_the_job_with_its_error_line(sm: Any) -> None:
    sm.create_training_job(**training_request("job-bad", fail="yes"))
    assert wait_for(lambda: job_status(sm, "job-bad")) == "Failed"
    reason = sm.describe_training_job(TrainingJobName="job-bad")["FailureReason"]
    assert "exit code 2" in reason
    assert "error: the data channel is empty" in reason


def test_stop_training_job(sm: Any) -> None:
    sm.create_training_job(**training_request("job-long", sleep="60"))
    wait_for(
        lambda: (
            sm.describe_training_job(TrainingJobName="job-long")["SecondaryStatus"] == "Training"
        )
    )
    sm.stop_training_job(TrainingJobName="job-long")
    assert wait_for(lambda: job_status(sm, "job-long"), timeout=20) == "Stopped"
    with pytest.raises(ClientError) as error:
        sm.stop_training_job(TrainingJobName="job-long")
    assert error.value.response["Error"]["Code"] == "ValidationException"


def test_aws_errors_for_bad_and_duplicate_requests(sm: Any) -> None:
    with pytest.raises(ClientError) as missing:
        sm.describe_training_job(TrainingJobName="nope")
    assert missing.value.response["Error"]["Code"] == "ValidationException"

    sm.create_training_job(**training_request("job-dup"))
    with pytest.raises(ClientError) as duplicate:
        sm.create_training_job(**training_request("job-dup"))
    assert duplicate.value.response["Error"]["Code"] == "ResourceInUse"

    too_long = training_request("x" * 64)
    with pytest.raises(ClientError, match="length less than or equal to 63"):
        sm.create_training_job(**too_long)
    with pytest.raises(ClientError) as unknown:
        sm.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName="nope")
    assert unknown.value.response["Error"]["Code"] == "ResourceNotFound"


def test_tuning_job_searches_ranges_and_reports_the_best_trial(sm: Any, emitted: Emitted) -> None:
    definition = training_request("unused")
    sm.create_hyper_parameter_tuning_job(
        HyperParameterTuningJobName="tune-1",
        HyperParameterTuningJobConfig={
            "Strategy": "Bayesian",
            "HyperParameterTuningJobObjective": {"Type": "Maximize", "MetricName": "val_acc"},
            "ResourceLimits": {"MaxNumberOfTrainingJobs": 3, "MaxParallelTrainingJobs": 2},
            "ParameterRanges": {
                "ContinuousParameterRanges": [
                    {
                        "Name": "learning_rate",
                        "MinValue": "0.001",
                        "MaxValue": "0.09",
                        "ScalingType": "Logarithmic",
                    }
                ],
                "CategoricalParameterRanges": [{"Name": "epochs", "Values": ["1", "2"]}],
            },
        },
        TrainingJobDefinition={
            "StaticHyperParameters": definition["HyperParameters"],
            **{
                k: definition[k]
                for k in (
                    "AlgorithmSpecification",
                    "RoleArn",
                    "InputDataConfig",
                    "OutputDataConfig",
                    "ResourceConfig",
                    "StoppingCondition",
                )
            },
        },
        Tags=[{"Key": "stage", "Value": "hpo"}, {"Key": "run-id", "Value": "r1"}],
    )
    done = wait_for(
        lambda: (
            (d := sm.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName="tune-1"))[
                "HyperParameterTuningJobStatus"
            ]
            != "InProgress"
            and d
        ),
        timeout=90,
    )
    assert done["HyperParameterTuningJobStatus"] == "Completed"
    assert done["TrainingJobStatusCounters"]["Completed"] == 3

    trials = sm.list_training_jobs_for_hyper_parameter_tuning_job(
        HyperParameterTuningJobName="tune-1", SortBy="FinalObjectiveMetricValue"
    )["TrainingJobSummaries"]
    assert len(trials) == 3
    values = [t["FinalHyperParameterTuningJobObjectiveMetric"]["Value"] for t in trials]
    assert values == sorted(values, reverse=True)
    for trial in trials:  # the objective is what the trial's learning rate produced
        expected = min(0.99, float(trial["TunedHyperParameters"]["learning_rate"]) * 10)
        assert trial["FinalHyperParameterTuningJobObjectiveMetric"]["Value"] == pytest.approx(
            expected, abs=1e-4
        )
        assert 0.001 <= float(trial["TunedHyperParameters"]["learning_rate"]) <= 0.09
    assert done["BestTrainingJob"]["TrainingJobName"] == trials[0]["TrainingJobName"]

    wait_for(lambda: len(emitted.of(TUNING)) >= 2)
    tuning_events = emitted.of(TUNING)
    assert [e["detail"]["HyperParameterTuningJobStatus"] for e in tuning_events] == [
        "InProgress",
        "Completed",
    ]
    assert "BestTrainingJob" not in tuning_events[-1]["detail"]
    child_tags = {json.dumps(e["detail"]["Tags"], sort_keys=True) for e in emitted.of(TRAINING)}
    assert child_tags == {json.dumps({"run-id": "r1", "stage": "hpo"}, sort_keys=True)}
    assert all(e["detail"]["TuningJobArn"].endswith("/tune-1") for e in emitted.of(TRAINING))


def test_restart_marks_running_jobs_failed_and_tells_the_handlers(
    tmp_path: Path, sm: Any, s3: LocalS3, backend: LocalSageMaker
) -> None:
    sm.create_training_job(**training_request("job-died", sleep="60"))
    wait_for(
        lambda: (
            sm.describe_training_job(TrainingJobName="job-died")["SecondaryStatus"] == "Training"
        )
    )
    backend.shutdown()  # the stack goes down with the job running

    after: list[dict[str, Any]] = []
    restarted = LocalSageMaker(tmp_path / "sm", s3, after.append)
    restarted.recover()
    job = restarted.handle("DescribeTrainingJob", {"TrainingJobName": "job-died"})
    assert job["TrainingJobStatus"] == "Failed"
    assert job["FailureReason"] == "local stack stopped"
    assert [e["detail"]["TrainingJobStatus"] for e in after] == ["Failed"]


def test_stopping_a_tuning_job_stops_its_trials_and_launches_no_more(
    sm: Any, emitted: Emitted
) -> None:
    definition = training_request("unused", sleep="60")
    sm.create_hyper_parameter_tuning_job(
        HyperParameterTuningJobName="tune-stop",
        HyperParameterTuningJobConfig={
            "Strategy": "Random",
            "HyperParameterTuningJobObjective": {"Type": "Maximize", "MetricName": "val_acc"},
            "ResourceLimits": {"MaxNumberOfTrainingJobs": 3, "MaxParallelTrainingJobs": 1},
        },
        TrainingJobDefinition={
            "StaticHyperParameters": definition["HyperParameters"],
            **{
                k: definition[k]
                for k in (
                    "AlgorithmSpecification",
                    "RoleArn",
                    "InputDataConfig",
                    "OutputDataConfig",
                    "ResourceConfig",
                    "StoppingCondition",
                )
            },
        },
    )

    def first_trial_training() -> bool:
        trials = sm.list_training_jobs_for_hyper_parameter_tuning_job(
            HyperParameterTuningJobName="tune-stop"
        )["TrainingJobSummaries"]
        return bool(trials) and (
            sm.describe_training_job(TrainingJobName=trials[0]["TrainingJobName"])[
                "SecondaryStatus"
            ]
            == "Training"
        )

    wait_for(first_trial_training)
    sm.stop_hyper_parameter_tuning_job(HyperParameterTuningJobName="tune-stop")
    done = wait_for(
        lambda: (
            (d := sm.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName="tune-stop"))[
                "HyperParameterTuningJobStatus"
            ]
            not in ("InProgress", "Stopping")
            and d
        ),
        timeout=30,
    )
    assert done["HyperParameterTuningJobStatus"] == "Stopped"
    assert done["TrainingJobStatusCounters"]["Stopped"] == 1
    assert sum(done["TrainingJobStatusCounters"].values()) == 1
    assert "BestTrainingJob" not in done
    with pytest.raises(ClientError, match="The tuning job is in status Stopped"):
        sm.stop_hyper_parameter_tuning_job(HyperParameterTuningJobName="tune-stop")
    statuses = [e["detail"]["HyperParameterTuningJobStatus"] for e in emitted.of(TUNING)]
    assert statuses == ["InProgress", "Stopped"]
