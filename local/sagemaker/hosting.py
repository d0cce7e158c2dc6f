"""Endpoints hosted in-process: the model artifact's ``code/inference.py`` (or the repo's
``model_handler/inference.py``) loaded with its ``model_fn`` under the container's
environment, answering InvokeEndpoint through ``input_fn`` -> ``predict_fn`` -> ``output_fn``
as the inference toolkit does."""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from local.s3 import LocalS3
from local.sagemaker.errors import ServiceError
from local.sagemaker.models import serving_container

log = logging.getLogger("local.endpoint")
REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass
class LoadedModel:
    name: str
    handler: ModuleType
    model: Any


# os.environ is the process's: one model loads at a time while its container's is applied.
_ENVIRONMENT_LOCK = threading.Lock()


@contextmanager
def container_environment(environment: dict[str, str]) -> Iterator[None]:
    """The model's container ``Environment`` (CreateModel's, or its model package's) in
    os.environ while its handler is imported and its ``model_fn`` runs, where the handler
    reads its settings (INFERENCE_PRECISION, limits), as the container's would; restored
    after. Variables the container does not set keep this process's values."""
    with _ENVIRONMENT_LOCK:
        saved = {name: os.environ.get(name) for name in environment}
        os.environ.update(environment)
        try:
            yield
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value


def _import_handler(path: Path, unique: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"_local_endpoint_{unique}", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses and pickling look modules up by name
    # Each model's code dir is its own: drop helpers an earlier model imported under the same
    # plain names (serving_*), or this model would silently run the first model's copies.
    for sibling in path.parent.glob("*.py"):
        sys.modules.pop(sibling.stem, None)
    # Like the toolkit, the code dir is on the path so inference.py may import its siblings.
    sys.path.insert(0, str(path.parent))
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(path.parent))
    return module


class Hosting:
    def __init__(self, root: Path, s3: LocalS3) -> None:
        self.root, self.s3 = root, s3
        self._models: dict[str, LoadedModel] = {}
        self._serving: dict[str, str] = {}  # endpoint -> model name
        self._lock = threading.Lock()

    def load(self, model: dict[str, Any]) -> LoadedModel:
        """Unpack and load a model (CreateModel's description); cached per model name."""
        name = model["ModelName"]
        with self._lock:
            if name in self._models:
                return self._models[name]
        container = serving_container(model)
        model_dir = self.root / name
        if not (model_dir / "metadata.json").exists():
            self.s3.extract(container["ModelDataUrl"], model_dir)
        program = container.get("Environment", {}).get("SAGEMAKER_PROGRAM", "inference.py")
        candidates = [model_dir / "code" / program, REPO_ROOT / "model_handler" / "inference.py"]
        script = next((p for p in candidates if p.is_file()), None)
        if script is None:
            raise FileNotFoundError(f"no inference script in {model_dir / 'code'}")
        with container_environment(dict(container.get("Environment", {}))):
            handler = _import_handler(script, name.replace("-", "_"))
            loaded = LoadedModel(name, handler, handler.model_fn(str(model_dir)))
        with self._lock:
            self._models[name] = loaded
        return loaded

    def serve(self, endpoint: str, model: dict[str, Any]) -> None:
        loaded = self.load(model)
        with self._lock:
            self._serving[endpoint] = loaded.name

    def is_serving(self, endpoint: str) -> bool:
        with self._lock:
            return endpoint in self._serving

    def invoke(
        self, endpoint: str, body: bytes, content_type: str, accept: str
    ) -> tuple[bytes, str]:
        with self._lock:
            name = self._serving.get(endpoint)
            loaded = self._models.get(name) if name else None
        if loaded is None:
            raise ServiceError(
                "ValidationError", f"Endpoint {endpoint} of account 000000000000 not found."
            )
        handler = loaded.handler
        try:
            data = handler.input_fn(body, content_type)
            prediction = handler.predict_fn(data, loaded.model)
            result = handler.output_fn(prediction, accept)
        except Exception as error:
            status = getattr(error, "status_code", 500)
            log.warning(
                "endpoint %s answered %s: %s", endpoint, status, error, exc_info=status >= 500
            )
            message = _error_body(error)
            raise ServiceError(
                "ModelError",
                f"Received {'client' if status < 500 else 'server'} error ({status}) from "
                f'primary with message "{message}". See the endpoint\'s log.',
                424,
                OriginalStatusCode=status,
                OriginalMessage=message,
            ) from error
        if isinstance(result, tuple):
            payload, out_type = result
        else:
            payload, out_type = (
                result,
                accept if accept and "*" not in accept else "application/json",
            )
        if isinstance(payload, str):
            payload = payload.encode()
        elif not isinstance(payload, bytes):
            payload = json.dumps(payload).encode()
        return payload, out_type


def _error_body(error: Exception) -> str:
    for attribute in ("body", "message", "detail"):
        value = getattr(error, attribute, None)
        if value is not None:
            return value if isinstance(value, str) else json.dumps(value)
    return str(error)
