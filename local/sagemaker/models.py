"""Models and endpoint configurations: plain records, kept so endpoints can deploy them.

A model's containers are resolved once, at CreateModel: a container that names a
``ModelPackageName`` serves that (Approved) package's image, artifact and environment, as if
CreateModel had been given them. :func:`serving_container` is the one place hosting reads
what a model serves.
"""

from __future__ import annotations

import time

from local.sagemaker.context import Document, ServiceContext, arn, public
from local.sagemaker.errors import ServiceError, validation
from local.sagemaker.registry import ModelRegistry


def _missing_model(name: str) -> ServiceError:
    return validation(f'Could not find model "{arn("model", name)}".')


def _missing_config(name: str) -> ServiceError:
    return validation(f'Could not find endpoint configuration "{arn("endpoint-config", name)}".')


def serving_container(model: Document) -> Document:
    """The container a model serves (``Image``, ``ModelDataUrl``, ``Environment``): the
    first one CreateModel resolved, or, for a model stored before resolution existed, its
    ``PrimaryContainer`` (else the first of its ``Containers``)."""
    resolved = model.get("_Containers")
    if resolved:
        return dict(resolved[0])
    return dict(model.get("PrimaryContainer") or model["Containers"][0])


class Models:
    def __init__(self, context: ServiceContext, registry: ModelRegistry) -> None:
        self.context, self.registry = context, registry

    def create_model(self, params: Document) -> Document:
        context = self.context
        name = params["ModelName"]
        with context.lock:
            if context.table.get("model", name) is not None:
                raise validation(f'Cannot create already existing model "{arn("model", name)}".')
            containers = (
                [params["PrimaryContainer"]]
                if "PrimaryContainer" in params
                else params.get("Containers", [])
            )
            resolved = [self._resolve(container) for container in containers]
            model = {k: v for k, v in params.items() if k != "Tags"}
            model.update(ModelArn=arn("model", name), CreationTime=time.time())
            model["_Containers"] = resolved
            context.save("model", name, model)
        return {"ModelArn": model["ModelArn"]}

    def _resolve(self, container: Document) -> Document:
        """What a CreateModel container serves. With ``ModelPackageName``: the package's
        inference container, its environment overlaid by the container's own."""
        reference = container.get("ModelPackageName")
        if reference is None:
            return dict(container)
        given = [key for key in ("Image", "ModelDataUrl") if key in container]
        if given:
            raise validation(
                f"A container with ModelPackageName {reference} cannot also set "
                f"{' or '.join(given)}: the model package supplies them."
            )
        package = self.registry.package(reference)
        status = package.get("ModelApprovalStatus")
        if status != "Approved":  # every package here is versioned
            raise validation(
                f"Model package {package['ModelPackageArn']} has ModelApprovalStatus {status}: "
                "a versioned model package must be Approved to deploy it."
            )
        definitions = (package.get("InferenceSpecification") or {}).get("Containers") or []
        if len(definitions) != 1:
            raise validation(
                f"Model package {package['ModelPackageArn']} has {len(definitions)} inference "
                "containers; the local SageMaker serves packages with exactly one."
            )
        served = dict(definitions[0])
        served["Environment"] = {
            **definitions[0].get("Environment", {}),
            **container.get("Environment", {}),
        }
        served["ModelPackageName"] = package["ModelPackageArn"]
        return served

    def describe_model(self, params: Document) -> Document:
        name = params["ModelName"]
        return public(self.context.find("model", name, _missing_model(name)))

    def create_config(self, params: Document) -> Document:
        context = self.context
        name = params["EndpointConfigName"]
        with context.lock:
            if context.table.get("endpoint-config", name) is not None:
                raise validation(
                    "Cannot create already existing endpoint configuration "
                    f'"{arn("endpoint-config", name)}".'
                )
            for variant in params["ProductionVariants"]:
                if context.table.get("model", variant["ModelName"]) is None:
                    raise _missing_model(variant["ModelName"])
            config = {k: v for k, v in params.items() if k != "Tags"}
            config.update(EndpointConfigArn=arn("endpoint-config", name), CreationTime=time.time())
            context.save("endpoint-config", name, config)
        return {"EndpointConfigArn": config["EndpointConfigArn"]}

    def describe_config(self, params: Document) -> Document:
        return public(self.config(params["EndpointConfigName"]))

    def config(self, name: str) -> Document:
        """The stored endpoint configuration, or the error a request naming it gets."""
        return self.context.find("endpoint-config", name, _missing_config(name))

    def model_of(self, config_name: str) -> Document:
        """The model an endpoint configuration serves (its first production variant)."""
        variant = self.config(config_name)["ProductionVariants"][0]
        return self.context.existing("model", variant["ModelName"])
