"""Steps that drive one run through the workflow with the SageMaker answers queued."""

from __future__ import annotations

from typing import Any

import metric_definitions
from retraining import workflow
from retraining.overrides import TuneOverrides
from retraining.records import RunRecord
from tests.support.sagemaker_double import (
    ACCOUNT,
    RecordingSageMaker,
    endpoint_description,
    load_event,
    package_arn,
    training_description,
    tuning_description,
)

ARN = f"arn:aws:sagemaker:us-east-1:{ACCOUNT}"
CHAMPION_METRIC = metric_definitions.CHAMPION_GATE_METRIC
P_VALUE_METRIC = metric_definitions.GATE_P_VALUE_METRIC
#: What a final job that beat its champion clearly reports (unless a test says otherwise).
CLEAR_WIN = 0.05
CLEAR_P = 1e-6


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


def comparison(champion_acc: float, p_value: float) -> dict[str, float]:
    """The final job's comparison metrics (it was given the champion's model)."""
    return {CHAMPION_METRIC: champion_acc, P_VALUE_METRIC: p_value}


def expect_describe_final(
    sagemaker: RecordingSageMaker, run: RunRecord, test_acc: float | None, **reported: float
) -> None:
    sagemaker.expect(
        "describe_training_job",
        training_description(final_job(run), run.run_id, test_acc, **reported),
    )


def _reported(
    deps: Any, run: RunRecord, test_acc: float, champion_acc: float | None, p_value: float
) -> dict[str, float]:
    """The comparison metrics a final job reports: those asked for, else, when the run's
    job was given a champion, a clear win over it (a job without one compares nothing)."""
    if champion_acc is not None:
        return comparison(champion_acc, p_value)
    stored = deps.store.get(run.run_id)
    if stored is not None and stored.champion_model_data_url:
        return comparison(test_acc - CLEAR_WIN, p_value)
    return {}


def expect_registration(
    sagemaker: RecordingSageMaker,
    run: RunRecord,
    approval: str | None = "Approved",
    version: int | None = None,
) -> str:
    """CreateModelPackage (the registry's next version, or the run's own on a redelivery)
    and, unless ``approval`` is None (MODEL_APPROVAL=manual), the gate's UpdateModelPackage.
    Returns the package ARN."""
    arn = package_arn(version or sagemaker.version_for(run.run_id))
    sagemaker.expect("create_model_package", {"ModelPackageArn": arn})
    if approval is not None:
        sagemaker.expect("update_model_package", {"ModelPackageArn": arn})
    return arn


def expect_deployment(
    sagemaker: RecordingSageMaker, live_config: str | None = None, created: bool = True
) -> None:
    """CreateModel, CreateEndpointConfig (or both already there when not ``created``), then
    the first endpoint (``live_config`` None) or a blue/green update away from it."""
    if created:
        sagemaker.expect("create_model", {"ModelArn": f"{ARN}:model/x"})
        sagemaker.expect(
            "create_endpoint_config", {"EndpointConfigArn": f"{ARN}:endpoint-config/x"}
        )
    else:
        sagemaker.fail("create_model", "ValidationException", "Cannot create already existing")
        sagemaker.fail(
            "create_endpoint_config", "ValidationException", "Cannot create already existing"
        )
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


def expect_gate(
    deps: Any,
    sagemaker: RecordingSageMaker,
    run: RunRecord,
    test_acc: float | None,
    approval: str | None = "Approved",
    champion_acc: float | None = None,
    p_value: float = CLEAR_P,
    version: int | None = None,
) -> str:
    """The final job's description and its registration (see expect_registration)."""
    reported = _reported(deps, run, test_acc, champion_acc, p_value) if test_acc is not None else {}
    expect_describe_final(sagemaker, run, test_acc, **reported)
    return expect_registration(sagemaker, run, approval, version)


def _completed(deps: Any, run: RunRecord) -> dict[str, Any]:
    event = load_event("training_job_final_completed.json", run.run_id)
    return workflow.on_training_job_state_change(event, deps)


def finish_training(
    deps: Any,
    sagemaker: RecordingSageMaker,
    run: RunRecord,
    test_acc: float,
    live_config: str | None = None,
    champion_acc: float | None = None,
    p_value: float = CLEAR_P,
) -> dict[str, Any]:
    """Completed final job that passes the gate (registered, Approved, deployed from its
    package): first deployment when ``live_config`` is None, else a blue/green update away
    from ``live_config``. A job given a champion reports a clear win unless told otherwise."""
    expect_gate(deps, sagemaker, run, test_acc, "Approved", champion_acc, p_value)
    expect_deployment(sagemaker, live_config)
    return _completed(deps, run)


def reject_training(
    deps: Any,
    sagemaker: RecordingSageMaker,
    run: RunRecord,
    test_acc: float | None,
    champion_acc: float | None = None,
    p_value: float = CLEAR_P,
) -> dict[str, Any]:
    """Completed final job the gate refuses (or cannot judge): registered, then Rejected."""
    expect_gate(deps, sagemaker, run, test_acc, "Rejected", champion_acc, p_value)
    return _completed(deps, run)


def await_approval(
    deps: Any,
    sagemaker: RecordingSageMaker,
    run: RunRecord,
    test_acc: float,
    champion_acc: float | None = None,
    p_value: float = CLEAR_P,
) -> dict[str, Any]:
    """MODEL_APPROVAL=manual: the job passes the gate and its version waits for a person."""
    expect_gate(deps, sagemaker, run, test_acc, None, champion_acc, p_value)
    return _completed(deps, run)


def settle(
    deps: Any,
    sagemaker: RecordingSageMaker,
    run: RunRecord,
    status: str,
    live_config: str,
    reject_package: bool = False,
) -> dict[str, Any]:
    """The endpoint's state change, as DescribeEndpoint tells it. ``reject_package``: the
    run's gated version rolled back, so the workflow sets its package Rejected."""
    sagemaker.expect("describe_endpoint", endpoint_description(status, live_config))
    if reject_package:
        arn = deps.store.get(run.run_id).model_package_arn
        sagemaker.expect("update_model_package", {"ModelPackageArn": arn})
    event = load_event("endpoint_in_service.json", run.run_id)
    return workflow.on_endpoint_state_change(event, deps)
