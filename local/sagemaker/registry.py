"""The Model Registry: model package groups and the versioned model packages inside them.

A version is ``CreateModelPackage`` with ``ModelPackageGroupName``: the group's next number
(1, 2, 3...), ARN ``model-package/<group, lowercased>/<version>``. ``ClientToken`` makes a
create idempotent: the same token with the same request answers the package it made, the
same token with another request is a ``ConflictException``. Creating a version and changing
its approval status (or life-cycle stage) emit ``SageMaker Model Package State Change`` in the
developer guide's shape: the package description, times as ISO-8601 strings. Versioned
packages carry no tags (their group's apply); unversioned (Marketplace) packages are not
served locally. ``CreateModel`` resolves a package through :meth:`ModelRegistry.package`.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import time
from typing import Any

from local import events
from local.sagemaker.context import Document, ServiceContext, arn, public, tag_map
from local.sagemaker.errors import ServiceError, validation

#: The EventBridge detail type (``local.events`` holds the other SageMaker ones).
MODEL_PACKAGE = "SageMaker Model Package State Change"

GROUP = "model-package-group"
PACKAGE = "model-package"

_DEFAULT_MAX_RESULTS = 10
#: Request members that are not part of the stored package description.
_NOT_STORED = {
    "ModelPackageGroupName",
    "ModelPackageName",
    "ModelApprovalStatus",
    "CertifyForMarketplace",  # "does not apply to versioned models"
    "ClientToken",
    "Tags",
}
#: UpdateModelPackage members that replace the stored value.
_REPLACED = (
    "ModelApprovalStatus",
    "ApprovalDescription",
    "InferenceSpecification",
    "SourceUri",
    "ModelCard",
    "ModelLifeCycle",
    "ModelPackageRegistrationType",
)
_SUMMARY_KEYS = (
    "ModelPackageGroupName",
    "ModelPackageVersion",
    "ModelPackageArn",
    "ModelPackageDescription",
    "CreationTime",
    "ModelPackageStatus",
    "ModelApprovalStatus",
    "ModelLifeCycle",
    "ModelPackageRegistrationType",
)
_ARN = re.compile(
    r"arn:aws[a-z\-]*:sagemaker:[a-z0-9\-]*:[0-9]{12}:(model-package|model-package-group)/(.+)",
    re.IGNORECASE,
)


def group_arn(name: str) -> str:
    return arn(GROUP, name)


def package_arn(group: str, version: int) -> str:
    return arn(PACKAGE, f"{group}/{version}")


def _iso(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


def _package_key(package: Document) -> str:
    return f"{package['ModelPackageGroupName'].lower()}/{package['ModelPackageVersion']}"


def _missing_group(reference: str) -> ServiceError:
    shown = reference.lower() if reference.startswith("arn:") else group_arn(reference)
    return validation(f"ModelPackageGroup {shown} does not exist.")


def _missing_package(reference: str) -> ServiceError:
    return validation(f"ModelPackage {reference} does not exist.")


def _key(reference: str, kind: str) -> str | None:
    """The table key a name or ARN of ``kind`` names (names are unique case-insensitively,
    as their lowercased ARNs are); None for an ARN of another kind."""
    if not reference.startswith("arn:"):
        return reference.lower()
    match = _ARN.fullmatch(reference)
    if match is None or match.group(1).lower() != kind:
        return None
    return match.group(2).lower()


class ModelRegistry:
    def __init__(self, context: ServiceContext) -> None:
        self.context = context

    # --- groups -----------------------------------------------------------------------
    def create_group(self, params: Document) -> Document:
        context = self.context
        name = params["ModelPackageGroupName"]
        with context.lock:
            if context.table.get(GROUP, name.lower()) is not None:
                raise validation(f"Model Package Group already exists: {group_arn(name)}")
            group = {
                "ModelPackageGroupName": name,
                "ModelPackageGroupArn": group_arn(name),
                "CreationTime": time.time(),
                "CreatedBy": {},
                "ModelPackageGroupStatus": "Completed",
                "_Tags": tag_map(params),
                "_LatestVersion": 0,
            }
            if "ModelPackageGroupDescription" in params:
                group["ModelPackageGroupDescription"] = params["ModelPackageGroupDescription"]
            context.table.put(GROUP, name.lower(), group)
        return {"ModelPackageGroupArn": group["ModelPackageGroupArn"]}

    def describe_group(self, params: Document) -> Document:
        return public(self._group(params["ModelPackageGroupName"]))

    def ensure_group(self, name: str, description: str | None = None) -> str:
        """The group's ARN, creating it first if needed (what the stack does at start, where
        the cloud template declares an ``AWS::SageMaker::ModelPackageGroup``)."""
        with self.context.lock:
            existing = self.context.table.get(GROUP, name.lower())
            if existing is not None:
                return str(existing["ModelPackageGroupArn"])
            request: Document = {"ModelPackageGroupName": name}
            if description:
                request["ModelPackageGroupDescription"] = description
            return str(self.create_group(request)["ModelPackageGroupArn"])

    def _group(self, reference: str) -> Document:
        key = _key(reference, GROUP)
        group = self.context.table.get(GROUP, key) if key else None
        if group is None or (
            reference.startswith("arn:") and group["ModelPackageGroupArn"] != reference.lower()
        ):
            raise _missing_group(reference)
        return group

    # --- packages ---------------------------------------------------------------------
    def create_package(self, params: Document) -> Document:
        group_reference = params.get("ModelPackageGroupName")
        if group_reference and params.get("ModelPackageName"):
            raise validation(
                "Both ModelPackageName and ModelPackageGroupName are provided in the input. "
                "Cannot determine which one to use."
            )
        if not group_reference:
            if not params.get("ModelPackageName"):
                raise validation("Missing ARN.")
            raise validation(
                "Unversioned model packages (ModelPackageName without ModelPackageGroupName) "
                "are not implemented by the local SageMaker"
            )
        if "Tags" in params:
            raise validation(
                "Tags cannot be supplied for a versioned model package (ModelPackageGroupName): "
                "it uses the tags of its model package group."
            )
        token = params.get("ClientToken")  # botocore fills in a fresh one when callers don't
        request = json.dumps(
            {k: v for k, v in params.items() if k != "ClientToken"}, sort_keys=True
        )
        context = self.context
        with context.lock:
            earlier = self._by_token(token) if token else None
            if earlier is not None:
                if earlier["_Request"] != request:
                    raise ServiceError(
                        "ConflictException",
                        f"ClientToken {token} was already used by a different "
                        f"CreateModelPackage request (it created {earlier['ModelPackageArn']}).",
                    )
                return {"ModelPackageArn": earlier["ModelPackageArn"]}
            group = self._group(group_reference)
            version = int(group["_LatestVersion"]) + 1
            group["_LatestVersion"] = version
            name = group["ModelPackageGroupName"]
            package: Document = {
                "ModelPackageName": name,
                "ModelPackageGroupName": name,
                "ModelPackageVersion": version,
                "ModelPackageArn": package_arn(name, version),
                **{k: v for k, v in params.items() if k not in _NOT_STORED},
                "CreationTime": time.time(),
                "ModelPackageStatus": "Completed",
                "ModelPackageStatusDetails": {"ValidationStatuses": [], "ImageScanStatuses": []},
                "CertifyForMarketplace": False,
                "ModelApprovalStatus": params.get("ModelApprovalStatus", "PendingManualApproval"),
                "_ClientToken": token,
                "_Request": request,
            }
            context.table.put(GROUP, name.lower(), group)
            context.save(PACKAGE, _package_key(package), package)
        self._emit(package)
        return {"ModelPackageArn": package["ModelPackageArn"]}

    def describe_package(self, params: Document) -> Document:
        return public(self.package(params["ModelPackageName"]))

    def package(self, reference: str) -> Document:
        """The stored package a name (``<group>/<version>``) or ARN names, or the error a
        request naming it gets."""
        key = _key(reference, PACKAGE)
        package = self.context.table.get(PACKAGE, key) if key else None
        if package is None or (
            reference.startswith("arn:") and package["ModelPackageArn"] != reference.lower()
        ):
            raise _missing_package(reference)
        return package

    def update_package(self, params: Document) -> Document:
        context = self.context
        with context.lock:
            package = self.package(params["ModelPackageArn"])
            before = (package.get("ModelApprovalStatus"), package.get("ModelLifeCycle"))
            for key in _REPLACED:
                if key in params:
                    package[key] = params[key]
            metadata = dict(package.get("CustomerMetadataProperties", {}))
            metadata.update(params.get("CustomerMetadataProperties", {}))
            for key in params.get("CustomerMetadataPropertiesToRemove", []):
                metadata.pop(key, None)
            if metadata:
                package["CustomerMetadataProperties"] = metadata
            else:
                package.pop("CustomerMetadataProperties", None)
            if "AdditionalInferenceSpecificationsToAdd" in params:
                package["AdditionalInferenceSpecifications"] = [
                    *package.get("AdditionalInferenceSpecifications", []),
                    *params["AdditionalInferenceSpecificationsToAdd"],
                ]
            context.save(PACKAGE, _package_key(package), package)
            changed = before != (package.get("ModelApprovalStatus"), package.get("ModelLifeCycle"))
        if changed:
            self._emit(package)
        return {"ModelPackageArn": package["ModelPackageArn"]}

    def list_packages(self, params: Document) -> Document:
        group_reference = params.get("ModelPackageGroupName")
        # ModelPackageType defaults to Unversioned, but a group's listing is its versions.
        kind = params.get("ModelPackageType", "Versioned" if group_reference else "Unversioned")
        packages = [] if kind == "Unversioned" else self.context.table.all(PACKAGE)
        if group_reference:
            key = _key(group_reference, GROUP)
            packages = [p for p in packages if p["ModelPackageGroupName"].lower() == key]
        if "ModelApprovalStatus" in params:
            wanted = params["ModelApprovalStatus"]
            packages = [p for p in packages if p.get("ModelApprovalStatus") == wanted]
        if "NameContains" in params:
            packages = [p for p in packages if params["NameContains"] in p["ModelPackageName"]]
        if "CreationTimeAfter" in params:
            after = float(params["CreationTimeAfter"])
            packages = [p for p in packages if p["CreationTime"] > after]
        if "CreationTimeBefore" in params:
            before = float(params["CreationTimeBefore"])
            packages = [p for p in packages if p["CreationTime"] < before]

        sort_by = params.get("SortBy", "CreationTime")
        descending = params.get("SortOrder", "Ascending") == "Descending"

        def order(package: Document) -> list[Any]:
            first = (
                package["CreationTime"]
                if sort_by == "CreationTime"
                else package["ModelPackageName"]
            )
            return [first, package["ModelPackageGroupName"].lower(), package["ModelPackageVersion"]]

        packages.sort(key=order, reverse=descending)
        if "NextToken" in params:
            last = _read_token(params["NextToken"], sort_by)
            packages = [p for p in packages if (order(p) < last if descending else order(p) > last)]
        limit = params.get("MaxResults", _DEFAULT_MAX_RESULTS)
        page = packages[:limit]
        answer: Document = {
            # Versioned summaries name the group and version, not a ModelPackageName.
            "ModelPackageSummaryList": [{k: p[k] for k in _SUMMARY_KEYS if k in p} for p in page]
        }
        if len(packages) > limit:
            answer["NextToken"] = _token(order(page[-1]), sort_by)
        return answer

    def _by_token(self, token: str) -> Document | None:
        return next(
            (p for p in self.context.table.all(PACKAGE) if p.get("_ClientToken") == token), None
        )

    def _emit(self, package: Document) -> None:
        """The event carries the description, without ModelPackageName, times in ISO-8601."""
        detail = {k: v for k, v in public(package).items() if k != "ModelPackageName"}
        for key in ("CreationTime", "LastModifiedTime"):
            if isinstance(detail.get(key), float):
                detail[key] = _iso(detail[key])
        self.context.emit(events.envelope(MODEL_PACKAGE, package["ModelPackageArn"], detail))


def _token(position: list[Any], sort_by: str) -> str:
    raw = json.dumps({"SortBy": sort_by, "After": position}).encode()
    return base64.urlsafe_b64encode(raw).decode()


def _read_token(token: str, sort_by: str) -> list[Any]:
    try:
        decoded = json.loads(base64.urlsafe_b64decode(token.encode()))
        if decoded["SortBy"] == sort_by and isinstance(decoded["After"], list):
            return list(decoded["After"])
    except (binascii.Error, ValueError, KeyError, TypeError):
        pass
    raise validation(f"Invalid pagination token: {token}")
