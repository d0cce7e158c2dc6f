"""Endpoints hosted in-process, answering InvokeEndpoint through a real botocore client."""

from __future__ import annotations

import json
import os
import textwrap
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from local.events import ENDPOINT
from local.s3 import LocalS3
from local.sagemaker.backend import LocalSageMaker
from local.sagemaker.wire import attach_runtime_backend, make_client
from tests.integration.local.conftest import BUCKET, Emitted, wait_for

# A handler with the inference toolkit's four functions; errors carry .status_code.
HANDLER = textwrap.dedent(
    """
    import json
    from dataclasses import dataclass

    @dataclass(frozen=True)
    class Model:
        label: str

    class BadRequest(Exception):
        status_code = 400

    def model_fn(model_dir):
        with open(f"{model_dir}/label.txt") as f:
            label = f.read()
        if label == "broken":
            raise RuntimeError("weights are corrupt")
        return Model(label)

    def input_fn(body, content_type):
        if content_type != "application/json":
            raise BadRequest(f"unsupported content type {content_type}")
        return json.loads(body)

    def predict_fn(data, model):
        return {"label": model.label, "echo": data}

    def output_fn(prediction, accept):
        return json.dumps(prediction), "application/json"
    """
)


# A handler that answers with INFERENCE_PRECISION as it saw it at import and in model_fn.
ENVIRONMENT_HANDLER = textwrap.dedent(
    """
    import json
    import os

    AT_IMPORT = os.environ.get("INFERENCE_PRECISION")

    def model_fn(model_dir):
        return {"import": AT_IMPORT, "model_fn": os.environ.get("INFERENCE_PRECISION")}

    def input_fn(body, content_type):
        return None

    def predict_fn(data, model):
        return model

    def output_fn(prediction, accept):
        return json.dumps(prediction), "application/json"
    """
)


def publish_model(
    s3: LocalS3, tmp_path: Path, name: str, label: str, handler: str = HANDLER
) -> str:
    folder = tmp_path / f"artifact-{name}"
    (folder / "code").mkdir(parents=True)
    (folder / "code" / "inference.py").write_text(handler)
    (folder / "label.txt").write_text(label)
    (folder / "metadata.json").write_text("{}")
    uri = f"s3://{BUCKET}/models/{name}/model.tar.gz"
    s3.put_tarball(folder, uri)
    return uri


def deploy_config(
    sm: Any,
    s3: LocalS3,
    tmp_path: Path,
    name: str,
    label: str,
    handler: str = HANDLER,
    environment: dict[str, str] | None = None,
) -> None:
    sm.create_model(
        ModelName=name,
        ExecutionRoleArn="arn:aws:iam::000000000000:role/local",
        PrimaryContainer={
            "Image": "local/pytorch-inference:cpu",
            "ModelDataUrl": publish_model(s3, tmp_path, name, label, handler),
            "Environment": {"SAGEMAKER_PROGRAM": "inference.py", **(environment or {})},
        },
    )
    sm.create_endpoint_config(
        EndpointConfigName=name,
        ProductionVariants=[
            {
                "VariantName": "AllTraffic",
                "ModelName": name,
                "InitialInstanceCount": 1,
                "InstanceType": "ml.m5.large",
            }
        ],
    )


def settled(sm: Any) -> dict[str, Any] | None:
    endpoint = sm.describe_endpoint(EndpointName="ep")
    return endpoint if endpoint["EndpointStatus"] not in ("Creating", "Updating") else None


def invoke(runtime: Any, payload: dict[str, Any]) -> dict[str, Any]:
    response = runtime.invoke_endpoint(
        EndpointName="ep", ContentType="application/json", Body=json.dumps(payload)
    )
    assert response["ContentType"] == "application/json"
    return json.loads(response["Body"].read())


def test_endpoint_lifecycle_blue_green_and_model_errors(
    sm: Any, runtime: Any, s3: LocalS3, tmp_path: Path, emitted: Emitted
) -> None:
    with pytest.raises(ClientError) as missing:
        invoke(runtime, {})
    assert missing.value.response["Error"]["Code"] == "ValidationError"

    deploy_config(sm, s3, tmp_path, "blue", "apple")
    sm.create_endpoint(EndpointName="ep", EndpointConfigName="blue")
    assert wait_for(lambda: settled(sm))["EndpointStatus"] == "InService"
    assert invoke(runtime, {"x": 1}) == {"label": "apple", "echo": {"x": 1}}

    with pytest.raises(ClientError) as bad:
        runtime.invoke_endpoint(EndpointName="ep", ContentType="text/csv", Body=b"1,2")
    assert bad.value.response["Error"]["Code"] == "ModelError"
    assert bad.value.response["OriginalStatusCode"] == 400
    assert "unsupported content type text/csv" in bad.value.response["OriginalMessage"]

    deploy_config(sm, s3, tmp_path, "green", "sea")
    sm.update_endpoint(EndpointName="ep", EndpointConfigName="green")
    assert wait_for(lambda: settled(sm))["EndpointConfigName"] == "green"
    assert invoke(runtime, {})["label"] == "sea"

    # A model that cannot load leaves the old one serving (SageMaker's rollback).
    deploy_config(sm, s3, tmp_path, "broken", "broken")
    sm.update_endpoint(EndpointName="ep", EndpointConfigName="broken")
    rolled_back = wait_for(lambda: settled(sm))
    assert rolled_back["EndpointConfigName"] == "green"
    assert "weights are corrupt" in rolled_back["FailureReason"]
    assert invoke(runtime, {})["label"] == "sea"

    wait_for(lambda: len(emitted.of(ENDPOINT)) >= 6)  # the event follows the saved state
    statuses = [e["detail"]["EndpointStatus"] for e in emitted.of(ENDPOINT)]
    assert statuses == [
        "CREATING",
        "IN_SERVICE",
        "UPDATING",
        "IN_SERVICE",
        "UPDATING",
        "IN_SERVICE",
    ]
    with pytest.raises(ClientError, match="already existing"):
        sm.create_endpoint_config(
            EndpointConfigName="blue",
            ProductionVariants=[{"VariantName": "AllTraffic", "ModelName": "blue"}],
        )


def test_restart_settles_endpoints_in_flight_and_reloads_served_models(
    sm: Any, runtime: Any, s3: LocalS3, tmp_path: Path, backend: LocalSageMaker
) -> None:
    deploy_config(sm, s3, tmp_path, "blue", "apple")
    for name in ("ep", "ep-new"):
        sm.create_endpoint(EndpointName=name, EndpointConfigName="blue")
    assert wait_for(lambda: settled(sm))["EndpointStatus"] == "InService"
    wait_for(lambda: sm.describe_endpoint(EndpointName="ep-new")["EndpointStatus"] != "Creating")
    backend.shutdown()
    # What a stack killed mid-deployment leaves behind.
    for name, status in (("ep", "Updating"), ("ep-new", "Creating")):
        doc = backend.table.get("endpoint", name)
        assert doc is not None
        backend.table.put("endpoint", name, {**doc, "EndpointStatus": status})

    after: list[dict[str, Any]] = []
    restarted = LocalSageMaker(tmp_path / "sm", s3, after.append)
    restarted.recover()
    try:
        assert [(e["detail"]["EndpointName"], e["detail"]["EndpointStatus"]) for e in after] == [
            ("ep", "IN_SERVICE"),
            ("ep-new", "FAILED"),
        ]
        assert all(e["detail"]["FailureReason"] == "local stack stopped" for e in after)
        # The new process hosts nothing yet: the first invocation loads what ep served.
        new_runtime = attach_runtime_backend(make_client("sagemaker-runtime"), restarted.invoke)
        assert invoke(new_runtime, {"n": 1}) == {"label": "apple", "echo": {"n": 1}}
        with pytest.raises(ClientError) as failed:
            new_runtime.invoke_endpoint(
                EndpointName="ep-new", ContentType="application/json", Body=b"{}"
            )
        assert failed.value.response["Error"]["Code"] == "ValidationError"
    finally:
        restarted.shutdown()


def test_each_model_loads_under_its_own_container_environment(
    sm: Any, runtime: Any, s3: LocalS3, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As in SageMaker, a model's handler reads its container's Environment (a promoted
    version keeps the INFERENCE_PRECISION it was registered with), not the stack's."""
    monkeypatch.setenv("INFERENCE_PRECISION", "int8")
    for name, precision in (("fp32-model", "fp32"), ("auto-model", "auto")):
        deploy_config(
            sm,
            s3,
            tmp_path,
            name,
            "",
            ENVIRONMENT_HANDLER,
            {"INFERENCE_PRECISION": precision},
        )
    sm.create_endpoint(EndpointName="ep", EndpointConfigName="fp32-model")
    assert wait_for(lambda: settled(sm))["EndpointStatus"] == "InService"
    assert invoke(runtime, {}) == {"import": "fp32", "model_fn": "fp32"}
    sm.update_endpoint(EndpointName="ep", EndpointConfigName="auto-model")
    assert wait_for(lambda: settled(sm))["EndpointConfigName"] == "auto-model"
    assert invoke(runtime, {}) == {"import": "auto", "model_fn": "auto"}
    assert os.environ["INFERENCE_PRECISION"] == "int8"  # the stack's own, restored
