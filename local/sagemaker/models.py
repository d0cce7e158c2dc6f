"""Models and endpoint configurations: plain records, kept so endpoints can deploy them."""

from __future__ import annotations

import time

from local.sagemaker.context import Document, ServiceContext, arn, public
from local.sagemaker.errors import ServiceError, validation


def _missing_model(name: str) -> ServiceError:
    return validation(f'Could not find model "{arn("model", name)}".')


def _missing_config(name: str) -> ServiceError:
    return validation(f'Could not find endpoint configuration "{arn("endpoint-config", name)}".')


class Models:
    def __init__(self, context: ServiceContext) -> None:
        self.context = context

    def create_model(self, params: Document) -> Document:
        context = self.context
        name = params["ModelName"]
        with context.lock:
            if context.table.get("model", name) is not None:
                raise validation(f'Cannot create already existing model "{arn("model", name)}".')
            model = {k: v for k, v in params.items() if k != "Tags"}
            model.update(ModelArn=arn("model", name), CreationTime=time.time())
            context.save("model", name, model)
        return {"ModelArn": model["ModelArn"]}

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
