"""The SageMaker PyTorch container's serving stack driven in-process (tests/unit/handler/
test_toolkit.py says how): TorchServe's worker context and the toolkit's HandlerService, which
imports code/inference.py from the model dir and runs model_fn -> input_fn -> predict_fn ->
output_fn. Only the Java front end and its socket are left out."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import ts
from sagemaker_pytorch_serving_container.handler_service import HandlerService
from ts.context import Context
from ts.service import Service

from tests.unit.handler.artifacts import HANDLER_DIR, HANDLER_MODULES


def container_model_dir(artifact: Path, target: Path) -> Path:
    """model.tar.gz as the endpoint unpacks it: the artifact plus code/, a copy of
    model_handler/ made the way training's artifact writer copies its inference code."""
    shutil.copytree(artifact, target)
    shutil.copytree(
        HANDLER_DIR, target / "code", ignore=shutil.ignore_patterns("__pycache__", "*.pyc", ".*")
    )
    return target


def worker_request(body: bytes, content_type: str, accept: str | None) -> dict:
    """One request in the shape TorchServe's front end hands its Python worker."""
    headers = [{"name": b"Content-Type", "value": content_type.encode()}]
    if accept is not None:
        headers.append({"name": b"Accept", "value": accept.encode()})
    return {
        "requestId": b"req-1",
        "parameters": [{"name": "body", "contentType": content_type, "value": body}],
        "headers": headers,
    }


class Endpoint:
    """A started handler service and the worker context it answers through."""

    def __init__(self, model_dir: Path) -> None:
        self.context = Context("model", str(model_dir), None, 1, None, ts.__version__)
        self.service = HandlerService()

    def start(self) -> None:
        # What TorchServe does once per worker; the transformer loads the model on first use.
        self.service.initialize(self.context)

    def invoke(
        self, body: bytes, content_type: str, accept: str | None = "application/json"
    ) -> tuple[int, str | None, str]:
        processors, batch, _ = Service.retrieve_data_for_inference(
            [worker_request(body, content_type, accept)]
        )
        self.context.request_processor = processors
        (response,) = self.service.handle(batch, self.context)
        status, _phrase = self.context.get_response_status(0)
        text = response.decode() if isinstance(response, bytes) else str(response)
        return status, self.context.get_response_content_type(0), text


@contextmanager
def served(model_dir: Path, **env: str) -> Iterator[Endpoint]:
    """The endpoint started on ``model_dir`` (an unpacked model.tar.gz) with the model's
    environment ``env``; its handler modules are dropped afterwards (any others restored)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("INFERENCE_NUM_THREADS", "1")
        for name, value in env.items():
            patch.setenv(name, value)
        patch.setenv("PYTHONPATH", "")  # initialize() prepends model_dir/code to it
        patch.delenv("SAGEMAKER_PROGRAM", raising=False)  # the toolkit's default: inference.py
        patch.syspath_prepend(str(model_dir / "code"))
        for name in HANDLER_MODULES:  # inference.py and its helpers, imported from code/
            patch.delitem(sys.modules, name, raising=False)
        endpoint = Endpoint(model_dir)
        endpoint.start()
        yield endpoint
        for name in HANDLER_MODULES:  # the copies in code/; the patch restores any originals
            sys.modules.pop(name, None)
