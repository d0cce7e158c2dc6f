"""Endpoints: Create/Update deploy an endpoint configuration's model into the in-process
:class:`~local.sagemaker.hosting.Hosting` in a thread, blue/green as SageMaker does, and
emit ``SageMaker Endpoint State Change`` events with the statuses EventBridge spells."""

from __future__ import annotations

import logging
import time

from local import events
from local.sagemaker.context import STACK_STOPPED, Document, ServiceContext, arn, public, tag_map
from local.sagemaker.errors import ServiceError, validation
from local.sagemaker.hosting import Hosting
from local.sagemaker.models import Models

log = logging.getLogger("local.sagemaker")

# DescribeEndpoint says "InService"; the state-change event says "IN_SERVICE".
_EVENT_STATUS = {
    "InService": "IN_SERVICE",
    "Creating": "CREATING",
    "Updating": "UPDATING",
    "Failed": "FAILED",
    "RollingBack": "ROLLING_BACK",
}


def _missing(name: str) -> ServiceError:
    return validation(f'Could not find endpoint "{arn("endpoint", name)}".')


class Endpoints:
    def __init__(self, context: ServiceContext, models: Models, hosting: Hosting) -> None:
        self.context, self.models, self.hosting = context, models, hosting

    # --- operations -------------------------------------------------------------------
    def create(self, params: Document) -> Document:
        context = self.context
        name = params["EndpointName"]
        with context.lock:
            if context.table.get("endpoint", name) is not None:
                raise validation(
                    f'Cannot create already existing endpoint "{arn("endpoint", name)}".'
                )
            config = self.models.config(params["EndpointConfigName"])
            endpoint = {
                "EndpointName": name,
                "EndpointArn": arn("endpoint", name),
                "EndpointConfigName": config["EndpointConfigName"],
                "EndpointStatus": "Creating",
                "CreationTime": time.time(),
                "_Tags": tag_map(params),
            }
            context.save("endpoint", name, endpoint)
        self._emit(endpoint)
        context.spawn(self._deploy, name, config["EndpointConfigName"], None)
        return {"EndpointArn": endpoint["EndpointArn"]}

    def update(self, params: Document) -> Document:
        context = self.context
        name = params["EndpointName"]
        with context.lock:
            endpoint = context.find("endpoint", name, _missing(name))
            if endpoint["EndpointStatus"] != "InService":
                raise validation(f'Cannot update in-progress endpoint "{arn("endpoint", name)}".')
            config = self.models.config(params["EndpointConfigName"])
            previous = endpoint["EndpointConfigName"]
            endpoint.update(EndpointStatus="Updating")
            endpoint.pop("FailureReason", None)
            if "DeploymentConfig" in params:
                endpoint["LastDeploymentConfig"] = params["DeploymentConfig"]
            context.save("endpoint", name, endpoint)
        self._emit(endpoint)
        context.spawn(self._deploy, name, config["EndpointConfigName"], previous)
        return {"EndpointArn": endpoint["EndpointArn"]}

    def describe(self, params: Document) -> Document:
        name = params["EndpointName"]
        return self._description(self.context.find("endpoint", name, _missing(name)))

    # --- lifecycle --------------------------------------------------------------------
    def recover(self) -> None:
        """After a restart: a deployment in flight died with the previous stack; an update
        that died leaves the old configuration serving."""
        for endpoint in self.context.table.all("endpoint"):
            if endpoint["EndpointStatus"] == "Creating":
                self._set_status(endpoint["EndpointName"], "Failed", STACK_STOPPED)
            elif endpoint["EndpointStatus"] == "Updating":
                self._set_status(endpoint["EndpointName"], "InService", STACK_STOPPED)

    def ensure_serving(self, name: str) -> None:
        """After a restart hosting is empty: load what a live endpoint served before."""
        if self.hosting.is_serving(name):
            return
        doc = self.context.table.get("endpoint", name)
        if doc is not None and doc["EndpointStatus"] in ("InService", "Updating"):
            self.hosting.serve(name, self.models.model_of(doc["EndpointConfigName"]))

    def _deploy(self, name: str, config_name: str, previous: str | None) -> None:
        """Blue/green: the new model loads beside the old one; traffic moves only once it
        is up. A model that fails to load leaves the old one serving (SageMaker's rollback)."""
        try:
            self.hosting.serve(name, self.models.model_of(config_name))
        except Exception as error:
            log.exception("endpoint %s failed to deploy %s", name, config_name)
            if previous is None:
                self._set_status(name, "Failed", f"ClientError: {error}")
            else:
                self._set_status(name, "InService", f"Rolled back to {previous}: {error}")
            return
        self._set_status(name, "InService", None, config_name)

    def _set_status(
        self, name: str, status: str, reason: str | None, config_name: str | None = None
    ) -> None:
        context = self.context
        with context.lock:
            endpoint = context.existing("endpoint", name)
            endpoint["EndpointStatus"] = status
            if config_name is not None:
                endpoint["EndpointConfigName"] = config_name
            if reason:
                endpoint["FailureReason"] = reason
            context.save("endpoint", name, endpoint)
        self._emit(endpoint)

    def _description(self, endpoint: Document) -> Document:
        doc = public(endpoint)
        config = self.context.table.get("endpoint-config", endpoint["EndpointConfigName"]) or {}
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

    def _emit(self, endpoint: Document) -> None:
        detail = self._description(endpoint)
        status = endpoint["EndpointStatus"]
        detail["EndpointStatus"] = _EVENT_STATUS.get(status, status)
        self.context.emit_change(
            events.ENDPOINT, endpoint["EndpointArn"], detail, endpoint.get("_Tags", {})
        )
