"""Steps that drive one run through the workflow with the SageMaker answers queued."""

from __future__ import annotations

from typing import Any

from retraining import workflow
from retraining.overrides import TuneOverrides
from retraining.records import RunRecord
from tests.support.sagemaker_double import (
    ACCOUNT,
    RecordingSageMaker,
    endpoint_description,
    load_event,
    training_description,
    tuning_description,
)

ARN = f"arn:aws:sagemaker:us-east-1:{ACCOUNT}"


def start(deps: Any, sagemaker: RecordingSageMaker, **overrides: Any) -> RunRecord:
    sagemaker.expect(
        "create_hyper_parameter_tuning_job",
        {"HyperParameterTuningJobArn": f"{ARN}:hyper-parameter-tuning-job/x"},
    )
    return workflow.start_run("api", TuneOverrides(**overrides), deps)


def best_trial(run: RunRecord) -> str:
    return f"{run.tuning_job_name}-002-4f1c2a9b"


def finish_tuning(deps: Any, sagemaker: RecordingSageMaker, run: RunRecord) -> dict[str, Any]:
    sagemaker.expect(
        "describe_hyper_parameter_tuning_job",
        tuning_description(run.tuning_job_name, best=best_trial(run)),
    )
    sagemaker.expect("create_training_job", {"TrainingJobArn": f"{ARN}:training-job/x"})
    event = load_event("tuning_job_completed.json", run.run_id)
    return workflow.on_tuning_job_state_change(event, deps)


def final_job(run: RunRecord) -> str:
    return f"{run.tuning_job_name}-final"


def expect_describe_final(sagemaker: RecordingSageMaker, run: RunRecord, test_acc: float) -> None:
    sagemaker.expect(
        "describe_training_job", training_description(final_job(run), run.run_id, test_acc)
    )


def finish_training(
    deps: Any,
    sagemaker: RecordingSageMaker,
    run: RunRecord,
    test_acc: float,
    live_config: str | None = None,
) -> dict[str, Any]:
    """Completed final job that passes the gate: first deployment when ``live_config`` is
    None, else a blue/green update away from ``live_config``."""
    expect_describe_final(sagemaker, run, test_acc)
    sagemaker.expect("create_model", {"ModelArn": f"{ARN}:model/x"})
    sagemaker.expect("create_endpoint_config", {"EndpointConfigArn": f"{ARN}:endpoint-config/x"})
    if live_config is None:
        sagemaker.fail(
            "describe_endpoint",
            "ValidationException",
            'Could not find endpoint "cifar100-classifier".',
        )
        sagemaker.expect("create_endpoint", {"EndpointArn": f"{ARN}:endpoint/cifar100-classifier"})
    else:
        sagemaker.expect("describe_endpoint", endpoint_description("InService", live_config))
        sagemaker.expect("update_endpoint", {"EndpointArn": f"{ARN}:endpoint/cifar100-classifier"})
    event = load_event("training_job_final_completed.json", run.run_id)
    return workflow.on_training_job_state_change(event, deps)


def settle(
    deps: Any, sagemaker: RecordingSageMaker, run: RunRecord, status: str, live_config: str
) -> dict[str, Any]:
    sagemaker.expect("describe_endpoint", endpoint_description(status, live_config))
    event = load_event("endpoint_in_service.json", run.run_id)
    return workflow.on_endpoint_state_change(event, deps)
