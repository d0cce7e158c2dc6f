"""The retraining chain, one EventBridge delivery at a time, against a Stubber-validated
SageMaker client and the in-memory store."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

import metric_definitions
from retraining import workflow
from retraining.overrides import TuneOverrides
from retraining.records import RunAlreadyActive, RunStatus
from retraining.sagemaker.events import BadEvent
from tests.support.run_flow import (
    best_trial,
    expect_gate,
    final_job,
    finish_training,
    finish_tuning,
    reject_training,
    settle,
    start,
)
from tests.support.sagemaker_double import (
    endpoint_description,
    load_event,
    model_artifact,
    package_arn,
    tuning_description,
)

#: A champion as the workflow records it (its model is the next final job's champion channel).
CHAMPION = {
    "run_id": "r20261101000000aaaa",
    "model_package_arn": package_arn(1),
    "model_version": 1,
    "model_data_url": model_artifact("r20261101000000aaaa"),
    "metrics": {"test_acc": 0.70},
}


def statuses(store, run_id):
    return [change.status for change in store.get(run_id).history]


def test_full_run_first_deployment(deps, sagemaker, store):
    run = start(deps, sagemaker)
    assert store.get(run.run_id).status is RunStatus.TUNING
    assert finish_tuning(deps, sagemaker, run)["action"] == "training"
    assert finish_training(deps, sagemaker, run, test_acc=0.71)["action"] == "deploying"
    assert settle(deps, sagemaker, run, "InService", run.tuning_job_name)["action"] == "deployed"

    done = store.get(run.run_id)
    assert statuses(store, run.run_id) == [
        RunStatus.TUNING,
        RunStatus.TRAINING,
        RunStatus.DEPLOYING,
        RunStatus.DEPLOYED,
    ]
    assert done.best_training_job_name == best_trial(run)
    assert done.best_hyperparameters == {
        "learning_rate": "0.0123",
        "batch_size": "128",
        "epochs": "6",
    }
    assert done.metrics["test_acc"] == pytest.approx(0.71)
    assert done.model_data_url.endswith(f"/{final_job(run)}/output/model.tar.gz")
    champion = store.get_champion()
    assert champion["run_id"] == run.run_id
    assert champion["tuning_job_name"] == run.tuning_job_name
    assert champion["metrics"]["test_acc"] == pytest.approx(0.71)
    # First deployment creates the endpoint; no blue/green update on an endpoint that is not there.
    assert sagemaker.requests("CreateEndpoint") == [
        {
            "EndpointName": "cifar100-classifier",
            "EndpointConfigName": run.tuning_job_name,
            "Tags": [
                {"Key": "project", "Value": "cifar100"},
                {"Key": "run-id", "Value": run.run_id},
            ],
        }
    ]
    assert sagemaker.requests("UpdateEndpoint") == []
    sagemaker.assert_all_used()


def test_final_job_gets_best_hyperparameters_and_instrumentation(deps, sagemaker, store):
    run = start(deps, sagemaker)
    finish_tuning(deps, sagemaker, run)
    (request,) = sagemaker.requests("CreateTrainingJob")
    assert request["TrainingJobName"] == f"cifar100-{run.run_id}-final"
    hyper = request["HyperParameters"]
    assert {k: hyper[k] for k in ("learning_rate", "batch_size", "epochs")} == {
        "learning_rate": "0.0123",
        "batch_size": "128",
        "epochs": "6",
    }
    assert hyper["sagemaker_program"] == "train_model.py"
    assert hyper["sagemaker_submit_directory"] == deps.settings.training_source_s3_uri
    assert (
        request["AlgorithmSpecification"]["MetricDefinitions"]
        == metric_definitions.METRIC_DEFINITIONS
    )
    channels = {
        c["ChannelName"]: c["DataSource"]["S3DataSource"]["S3Uri"]
        for c in request["InputDataConfig"]
    }
    assert channels == {
        "train": deps.settings.train_data_s3_uri,
        "test": deps.settings.test_data_s3_uri,
        "inference_code": deps.settings.inference_source_s3_uri,
    }
    assert request["TensorBoardOutputConfig"]["S3OutputPath"].endswith(
        f"/runs/{run.run_id}/tensorboard"
    )
    assert {"Key": "stage", "Value": "final"} in request["Tags"]
    assert request["ProfilerConfig"] == {"DisableProfiler": True}  # debugger switch is off
    assert "DebugHookConfig" not in request
    assert store.get(run.run_id).training_job_name == request["TrainingJobName"]


def test_second_run_warm_starts_and_updates_blue_green(deps, sagemaker, store):
    first = start(deps, sagemaker)
    finish_tuning(deps, sagemaker, first)
    finish_training(deps, sagemaker, first, test_acc=0.70)
    settle(deps, sagemaker, first, "InService", first.tuning_job_name)

    second = start(deps, sagemaker)
    tuning = sagemaker.requests("CreateHyperParameterTuningJob")[-1]
    assert tuning["WarmStartConfig"] == {
        "ParentHyperParameterTuningJobs": [{"HyperParameterTuningJobName": first.tuning_job_name}],
        "WarmStartType": "TransferLearning",
    }
    assert store.get(second.run_id).warm_start_parent == first.tuning_job_name
    finish_tuning(deps, sagemaker, second)
    finish_training(deps, sagemaker, second, test_acc=0.72, live_config=first.tuning_job_name)
    (update,) = sagemaker.requests("UpdateEndpoint")
    assert update["EndpointConfigName"] == second.tuning_job_name
    assert update["DeploymentConfig"] == {
        "BlueGreenUpdatePolicy": {
            "TrafficRoutingConfiguration": {"Type": "ALL_AT_ONCE", "WaitIntervalInSeconds": 300},
            "TerminationWaitInSeconds": 120,
        },
        "AutoRollbackConfiguration": {
            "Alarms": [
                {"AlarmName": "cifar100-endpoint-5xx"},
                {"AlarmName": "cifar100-endpoint-latency"},
            ]
        },
    }
    settle(deps, sagemaker, second, "InService", second.tuning_job_name)
    assert store.get_champion()["run_id"] == second.run_id
    sagemaker.assert_all_used()


def test_the_model_is_created_from_its_package_whose_container_runs_the_artifact_code(
    deps, sagemaker, store
):
    run = start(deps, sagemaker)
    finish_tuning(deps, sagemaker, run)
    finish_training(deps, sagemaker, run, test_acc=0.7)
    (model,) = sagemaker.requests("CreateModel")
    # The registry says what serves: the model names the package, not an image or artifact.
    assert model["PrimaryContainer"] == {
        "ModelPackageName": store.get(run.run_id).model_package_arn
    }
    (package,) = sagemaker.requests("CreateModelPackage")
    (container,) = package["InferenceSpecification"]["Containers"]
    assert container["Image"] == deps.settings.inference_image_uri
    assert container["ModelDataUrl"] == store.get(run.run_id).model_data_url
    assert container["Environment"]["SAGEMAKER_PROGRAM"] == "inference.py"
    assert container["Environment"]["SAGEMAKER_SUBMIT_DIRECTORY"] == "/opt/ml/model/code"
    assert container["Environment"]["SAGEMAKER_REGION"] == "us-east-1"
    assert container["Environment"]["INFERENCE_PRECISION"] == deps.settings.inference_precision
    (config,) = sagemaker.requests("CreateEndpointConfig")
    assert config["ProductionVariants"][0]["ModelName"] == model["ModelName"] == run.tuning_job_name


def test_duplicate_tuning_event_starts_one_training_job(deps, sagemaker, store):
    run = start(deps, sagemaker)
    finish_tuning(deps, sagemaker, run)
    again = workflow.on_tuning_job_state_change(
        load_event("tuning_job_completed.json", run.run_id), deps
    )
    assert again["action"] == "stale"
    assert len(sagemaker.requests("CreateTrainingJob")) == 1
    assert statuses(store, run.run_id) == [RunStatus.TUNING, RunStatus.TRAINING]


def test_redelivery_after_a_crash_treats_an_existing_training_job_as_done(deps, sagemaker, store):
    """The first delivery created the job but died before its status write."""
    run = start(deps, sagemaker)
    sagemaker.expect(
        "describe_hyper_parameter_tuning_job",
        tuning_description(run.tuning_job_name, best=best_trial(run)),
    )
    sagemaker.fail(
        "create_training_job",
        "ResourceInUse",
        f"Training job names must be unique: {final_job(run)}",
    )
    outcome = workflow.on_tuning_job_state_change(
        load_event("tuning_job_completed.json", run.run_id), deps
    )
    assert outcome["action"] == "training"
    assert store.get(run.run_id).status is RunStatus.TRAINING


def test_duplicate_training_and_endpoint_events_deploy_once(deps, sagemaker, store):
    run = start(deps, sagemaker)
    finish_tuning(deps, sagemaker, run)
    finish_training(deps, sagemaker, run, test_acc=0.7)
    again = workflow.on_training_job_state_change(
        load_event("training_job_final_completed.json", run.run_id), deps
    )
    assert again["action"] == "stale"
    settle(deps, sagemaker, run, "InService", run.tuning_job_name)
    late = workflow.on_endpoint_state_change(
        load_event("endpoint_in_service.json", run.run_id), deps
    )
    assert late["action"] == "ignored"  # nothing is deploying any more
    assert len(sagemaker.requests("CreateModelPackage")) == 1
    assert len(sagemaker.requests("CreateModel")) == 1
    assert len(sagemaker.requests("CreateEndpoint")) == 1
    sagemaker.assert_all_used()


def test_out_of_order_events_do_not_move_a_run(deps, sagemaker, store):
    run = start(deps, sagemaker)
    # The final job's event before the tuning job's: the run has no final job yet.
    early = workflow.on_training_job_state_change(
        load_event("training_job_final_completed.json", run.run_id), deps
    )
    assert early["action"] == "stale"
    finish_tuning(deps, sagemaker, run)
    # A late "InProgress" for the tuning job after the run moved on.
    late = workflow.on_tuning_job_state_change(
        load_event("tuning_job_in_progress.json", run.run_id), deps
    )
    assert late["action"] == "stale"
    in_progress = workflow.on_training_job_state_change(
        load_event("training_job_final_in_progress.json", run.run_id), deps
    )
    assert in_progress["action"] == "waiting"
    assert store.get(run.run_id).status is RunStatus.TRAINING
    assert sagemaker.operations() == [
        "CreateHyperParameterTuningJob",
        "DescribeHyperParameterTuningJob",
        "CreateTrainingJob",
    ]


def test_endpoint_still_updating_waits(deps, sagemaker, store):
    run = start(deps, sagemaker)
    finish_tuning(deps, sagemaker, run)
    finish_training(deps, sagemaker, run, test_acc=0.7)
    # An event can say IN_SERVICE while Describe already says Updating: Describe decides.
    outcome = settle(deps, sagemaker, run, "Updating", "cifar100-old")
    assert outcome == {"action": "waiting", "run_id": run.run_id, "status": "Updating"}
    assert store.get(run.run_id).status is RunStatus.DEPLOYING


def test_every_trial_failed(deps, sagemaker, store):
    run = start(deps, sagemaker)
    sagemaker.expect(
        "describe_hyper_parameter_tuning_job", tuning_description(run.tuning_job_name, best=None)
    )
    sagemaker.expect(
        "list_training_jobs_for_hyper_parameter_tuning_job",
        {
            "TrainingJobSummaries": [
                {
                    "TrainingJobName": f"{run.tuning_job_name}-001-aaaabbbb",
                    "TrainingJobArn": "arn:aws:sagemaker:us-east-1:123456789012:training-job/t1",
                    "CreationTime": "2026-11-28T04:00:00Z",
                    "TrainingJobStatus": "Failed",
                    "TunedHyperParameters": {"learning_rate": "0.09"},
                    "FailureReason": "AlgorithmError: error: no images found in /opt/ml/input/data/train",
                }
            ]
        },
    )
    outcome = workflow.on_tuning_job_state_change(
        load_event("tuning_job_completed_all_trials_failed.json", run.run_id), deps
    )
    assert outcome["action"] == "failed"
    failed = store.get(run.run_id)
    assert failed.status is RunStatus.FAILED
    assert "without a successful trial" in failed.error
    assert "no images found" in failed.error
    assert (
        sagemaker.requests("ListTrainingJobsForHyperParameterTuningJob")[0]["StatusEquals"]
        == "Failed"
    )
    assert sagemaker.requests("CreateTrainingJob") == []


def test_tuning_job_failed(deps, sagemaker, store):
    run = start(deps, sagemaker)
    workflow.on_tuning_job_state_change(load_event("tuning_job_failed.json", run.run_id), deps)
    assert store.get(run.run_id).status is RunStatus.FAILED
    assert store.get(run.run_id).error.startswith("All training jobs failed")


def test_training_failed_frees_the_slot(deps, sagemaker, store):
    run = start(deps, sagemaker)
    finish_tuning(deps, sagemaker, run)
    outcome = workflow.on_training_job_state_change(
        load_event("training_job_final_failed.json", run.run_id), deps
    )
    assert outcome["action"] == "failed"
    assert (
        store.get(run.run_id).error == "AlgorithmError: ExecuteUserScriptError: CUDA out of memory"
    )
    assert start(deps, sagemaker).run_id != run.run_id  # the next run may start


def test_hpo_trial_events_are_ignored(deps, sagemaker, store):
    run = start(deps, sagemaker)
    finish_tuning(deps, sagemaker, run)
    outcome = workflow.on_training_job_state_change(
        load_event("training_job_hpo_trial_completed.json", run.run_id), deps
    )
    assert outcome["action"] == "ignored"
    # A final-looking name with an hpo tag is refused too (the rule filters on both).
    event = load_event("training_job_final_completed.json", run.run_id)
    event["detail"]["Tags"]["stage"] = "hpo"
    assert workflow.on_training_job_state_change(event, deps)["action"] == "ignored"
    assert store.get(run.run_id).status is RunStatus.TRAINING


def test_gate_rejects_below_the_minimum(deps, sagemaker, store):
    run = start(deps, sagemaker)
    finish_tuning(deps, sagemaker, run)
    outcome = reject_training(deps, sagemaker, run, test_acc=0.31)
    assert outcome["action"] == "rejected"
    rejected = store.get(run.run_id)
    assert rejected.status is RunStatus.REJECTED
    assert "below the minimum 0.5000" in rejected.history[-1].reason
    assert rejected.metrics["test_acc"] == pytest.approx(0.31)
    (approval,) = sagemaker.requests("UpdateModelPackage")
    assert approval["ModelApprovalStatus"] == "Rejected"
    assert sagemaker.requests("CreateModel") == []
    assert store.get_champion() is None
    sagemaker.assert_all_used()


def test_gate_rejects_a_model_that_does_not_beat_the_champion_by_the_margin(deps, sagemaker, store):
    store.set_champion(CHAMPION)
    run = start(deps, sagemaker)
    finish_tuning(deps, sagemaker, run)
    # Better on the same images, significantly, but not by GATE_MARGIN=0.01.
    reject_training(deps, sagemaker, run, test_acc=0.705, champion_acc=0.70, p_value=0.001)
    assert store.get(run.run_id).status is RunStatus.REJECTED
    reason = store.get(run.run_id).history[-1].reason
    assert "champion's 0.7000" in reason
    assert "not better (needs +1.00)" in reason
    assert store.get_champion()["run_id"] == "r20261101000000aaaa"
    sagemaker.assert_all_used()


def test_missing_gate_metric_fails_the_run(deps, sagemaker, store):
    run = start(deps, sagemaker)
    finish_tuning(deps, sagemaker, run)
    reject_training(deps, sagemaker, run, test_acc=None)
    assert store.get(run.run_id).status is RunStatus.FAILED
    assert "reported no test_acc" in store.get(run.run_id).error
    # Registered all the same, and Rejected with the reason: the registry shows why.
    (approval,) = sagemaker.requests("UpdateModelPackage")
    assert approval["ModelApprovalStatus"] == "Rejected"
    assert "reported no test_acc" in approval["ApprovalDescription"]
    sagemaker.assert_all_used()


def test_rollback(deps, sagemaker, store):
    store.set_champion({"run_id": "r20261101000000aaaa", "metrics": {"test_acc": 0.6}})
    run = start(deps, sagemaker)
    finish_tuning(deps, sagemaker, run)
    finish_training(deps, sagemaker, run, test_acc=0.7, live_config="cifar100-r20261101000000aaaa")
    sagemaker.expect(
        "describe_endpoint",
        {
            **endpoint_description("InService", "cifar100-r20261101000000aaaa"),
            "FailureReason": "Alarm cifar100-endpoint-5xx went into ALARM",
        },
    )
    sagemaker.expect("update_model_package", {"ModelPackageArn": package_arn(1)})
    outcome = workflow.on_endpoint_state_change(
        load_event("endpoint_in_service.json", run.run_id), deps
    )
    assert outcome["action"] == "rolled_back"
    rolled = store.get(run.run_id)
    assert rolled.status is RunStatus.ROLLED_BACK
    assert "rolled back to cifar100-r20261101000000aaaa" in rolled.error
    assert "ALARM" in rolled.error
    assert store.get_champion()["run_id"] == "r20261101000000aaaa"


def test_endpoint_failed(deps, sagemaker, store):
    run = start(deps, sagemaker)
    finish_tuning(deps, sagemaker, run)
    finish_training(deps, sagemaker, run, test_acc=0.7)
    sagemaker.expect(
        "describe_endpoint",
        {**endpoint_description("Failed", run.tuning_job_name), "FailureReason": "Image not found"},
    )
    workflow.on_endpoint_state_change(load_event("endpoint_failed.json", run.run_id), deps)
    assert store.get(run.run_id).status is RunStatus.FAILED
    assert store.get(run.run_id).error == "Image not found"


def test_duplicate_deploy_while_the_update_is_in_flight(deps, sagemaker, store):
    store.set_champion({"run_id": "r20261101000000aaaa", "metrics": {"test_acc": 0.6}})
    run = start(deps, sagemaker)
    finish_tuning(deps, sagemaker, run)
    expect_gate(deps, sagemaker, run, test_acc=0.7)
    sagemaker.fail(
        "create_model",
        "ValidationException",
        f'Cannot create already existing model "{run.tuning_job_name}".',
    )
    sagemaker.fail(
        "create_endpoint_config",
        "ValidationException",
        "Cannot create already existing endpoint configuration",
    )
    sagemaker.expect(
        "describe_endpoint",
        endpoint_description(
            "Updating", "cifar100-r20261101000000aaaa", pending=run.tuning_job_name
        ),
    )
    outcome = workflow.on_training_job_state_change(
        load_event("training_job_final_completed.json", run.run_id), deps
    )
    assert outcome["action"] == "deploying"
    assert "already moving" in outcome["detail"]
    assert sagemaker.requests("UpdateEndpoint") == []


def test_second_start_is_refused_while_a_run_is_active(deps, sagemaker, store):
    run = start(deps, sagemaker)
    with pytest.raises(RunAlreadyActive) as refused:
        workflow.start_run("schedule", TuneOverrides(), deps)
    assert refused.value.active_run_id == run.run_id
    assert len(sagemaker.requests("CreateHyperParameterTuningJob")) == 1


def test_start_refuses_an_instance_type_the_stack_does_not_allow(deps, sagemaker, store):
    with pytest.raises(ValueError, match="not allowed"):
        workflow.start_run("api", TuneOverrides(instance_type="ml.p5.48xlarge"), deps)
    assert store.list() == ([], None)


def test_start_fails_the_run_when_sagemaker_refuses(deps, sagemaker, store):
    sagemaker.fail(
        "create_hyper_parameter_tuning_job", "ResourceLimitExceeded", "quota of 0 ml.g5.xlarge"
    )
    with pytest.raises(ClientError):
        workflow.start_run("api", TuneOverrides(), deps)
    (run,), _ = store.list()
    assert run.status is RunStatus.FAILED
    assert "quota of 0" in run.error
    start(deps, sagemaker)  # the slot is free again


PARENT = "cifar100-r20261101000000aaaa"
WARM_START_REFUSAL = (
    "The static hyperparameters of the parent tuning job cifar100-r20261101000000aaaa "
    "do not match this tuning job's static hyperparameters (warm start)."
)


def test_a_refused_warm_start_parent_falls_back_to_a_cold_search(deps, sagemaker, store):
    store.set_champion({"run_id": "r20261101000000aaaa", "tuning_job_name": PARENT})
    sagemaker.fail("create_hyper_parameter_tuning_job", "ValidationException", WARM_START_REFUSAL)
    run = start(deps, sagemaker)  # queues the accepted second attempt

    warm, cold = sagemaker.requests("CreateHyperParameterTuningJob")
    assert warm["WarmStartConfig"]["ParentHyperParameterTuningJobs"] == [
        {"HyperParameterTuningJobName": PARENT}
    ]
    assert "WarmStartConfig" not in cold
    assert cold["HyperParameterTuningJobName"] == warm["HyperParameterTuningJobName"]
    stored = store.get(run.run_id)
    assert stored.status is RunStatus.TUNING
    assert stored.warm_start_parent is None
    assert run.warm_start_parent is None  # start_run answers the record as stored
    note = stored.history[-1]
    assert note.status is RunStatus.TUNING
    assert f"warm start from {PARENT} refused" in note.reason
    assert "static hyperparameters" in note.reason
    sagemaker.assert_all_used()
    assert finish_tuning(deps, sagemaker, run)["action"] == "training"  # the run goes on


def test_a_cold_search_refused_too_fails_the_run_after_one_fallback(deps, sagemaker, store):
    store.set_champion({"run_id": "r20261101000000aaaa", "tuning_job_name": PARENT})
    sagemaker.fail("create_hyper_parameter_tuning_job", "ValidationException", WARM_START_REFUSAL)
    sagemaker.fail("create_hyper_parameter_tuning_job", "ValidationException", "bad parent x")
    with pytest.raises(ClientError, match="bad parent x"):
        workflow.start_run("api", TuneOverrides(), deps)
    assert len(sagemaker.requests("CreateHyperParameterTuningJob")) == 2
    (run,), _ = store.list()
    assert run.status is RunStatus.FAILED
    assert "bad parent x" in run.error


def test_other_validation_errors_do_not_drop_the_warm_start(deps, sagemaker, store):
    store.set_champion({"run_id": "r20261101000000aaaa", "tuning_job_name": PARENT})
    sagemaker.fail(
        "create_hyper_parameter_tuning_job", "ValidationException", "MaxRuntimeInSeconds too big"
    )
    with pytest.raises(ClientError, match="MaxRuntimeInSeconds"):
        workflow.start_run("api", TuneOverrides(), deps)
    assert len(sagemaker.requests("CreateHyperParameterTuningJob")) == 1
    (run,), _ = store.list()
    assert run.status is RunStatus.FAILED
    assert run.warm_start_parent == PARENT


def test_throttling_is_reraised_and_the_redelivery_succeeds(deps, sagemaker, store):
    run = start(deps, sagemaker)
    sagemaker.fail("describe_hyper_parameter_tuning_job", "ThrottlingException", "Rate exceeded")
    with pytest.raises(ClientError, match="Rate exceeded"):
        workflow.on_tuning_job_state_change(
            load_event("tuning_job_completed.json", run.run_id), deps
        )
    assert store.get(run.run_id).status is RunStatus.TUNING
    assert finish_tuning(deps, sagemaker, run)["action"] == "training"


def test_a_logic_error_ends_the_run_with_its_message(deps, sagemaker, store):
    run = start(deps, sagemaker)
    sagemaker.expect(
        "describe_hyper_parameter_tuning_job",
        tuning_description(run.tuning_job_name, best=best_trial(run)),
    )
    sagemaker.fail("create_training_job", "ValidationException", "Role is not authorized for S3")
    outcome = workflow.on_tuning_job_state_change(
        load_event("tuning_job_completed.json", run.run_id), deps
    )
    assert outcome["action"] == "failed"
    assert store.get(run.run_id).error == "ClientError: Role is not authorized for S3"


def test_events_for_other_resources_are_ignored(deps, sagemaker, store):
    tuning = load_event("tuning_job_completed.json")
    tuning["detail"]["HyperParameterTuningJobName"] = "someone-elses-job"
    assert workflow.on_tuning_job_state_change(tuning, deps)["action"] == "ignored"
    unknown_run = load_event("tuning_job_completed.json", "r20261128999999ffff")
    assert workflow.on_tuning_job_state_change(unknown_run, deps)["action"] == "ignored"
    endpoint = load_event("endpoint_in_service.json")
    endpoint["detail"]["EndpointName"] = "another-endpoint"
    assert workflow.on_endpoint_state_change(endpoint, deps)["action"] == "ignored"
    assert sagemaker.calls == []


def test_wrong_event_type_is_a_clear_error(deps):
    with pytest.raises(BadEvent, match="expected a 'SageMaker Training Job State Change'"):
        workflow.on_training_job_state_change(load_event("tuning_job_completed.json"), deps)
    event = load_event("training_job_final_completed.json")
    del event["detail"]["TrainingJobStatus"]
    with pytest.raises(BadEvent, match="without TrainingJobStatus"):
        workflow.on_training_job_state_change(event, deps)
