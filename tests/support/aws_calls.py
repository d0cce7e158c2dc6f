"""Every AWS call each principal makes, mapped to IAM and judged by the template's own policies.

The IAM check of ``tests/unit/template/test_iam_evaluation.py`` is built from four parts:

* :class:`Recorder` wraps ``botocore.client.BaseClient._make_api_call``, the one method every
  boto3 client call goes through (whether moto, a Stubber or a ``before-call`` fake answers
  it), and stores ``(principal, service, operation, params, error, response)``; the answer
  names what the service named itself (a model package's version ARN). The principal is a
  context variable set by :meth:`Recorder.acting_as` around each handler invocation (worker
  threads, which do not inherit it, get the principal acting at that moment); a call made
  while no principal acts is *unattributed* and fails the test. Calls made as :data:`HARNESS`
  (set-up, inspection) are not judged.
* :data:`OPERATIONS` maps each (botocore service, operation) the code uses to the IAM actions,
  resource ARNs and condition keys it is authorised with, per the Service Authorization
  Reference, including what a service checks with the *caller's* permissions on its behalf
  (tag-on-create AddTags, Application Auto Scaling's checks on SageMaker and CloudWatch and its
  service-linked role, S3's 404-or-403 on a missing key). An operation missing from the table
  is reported as a problem (a test failure), so a new call cannot slip through unchecked. A
  request that carries a role ARN also needs ``iam:PassRole`` with ``iam:PassedToService``
  (:func:`pass_role_needs`).
* What a *service* does with a role is derived, not recorded: :data:`ROLE_USES` turns the
  CreateTrainingJob / CreateHyperParameterTuningJob / CreateEndpoint / UpdateEndpoint request
  bodies into what SageMaker then does with the execution role (data channels, code, outputs,
  checkpoints, TensorBoard and Debugger output, rule jobs, images, logs, metrics, rollback
  alarms; for a model created from a registered model package, the package's containers),
  and :func:`lambda_platform_needs` what the Lambda service does with a function's role (its
  log stream, its dead-letter queue). A request field these derivations do not know
  fails the test until someone says what it makes SageMaker touch. What a job's *script* does
  with the role (prepare_data.py uploading the data set) is recorded instead: the scenario runs
  that code as the role (:data:`SCRIPT_LOCATIONS`).
* :class:`Stack` resolves the *transformed* template (parameters at their defaults unless
  overridden, pseudo parameters fixed to :data:`REGION` / :data:`ACCOUNT`, physical names
  ``<stack>-<logical id>`` as CloudFormation generates them) and :class:`PolicyEvaluator`
  decides each access against the principal's identity policies (inline, AWS-managed from
  moto's copy, customer-managed) and the template's resource policies for Principal "*",
  using moto's ``IAMPolicyStatement`` for Effect, Action/NotAction and Resource, and the
  condition operators implemented here (:data:`CONDITION_OPERATORS`). moto's own Condition
  handling is not used: it evaluates only ``StringEquals``, ignores every other operator,
  passes a condition whose key the request lacks, and turns a failed condition of an Allow
  statement into an explicit deny.

:func:`analyse` runs the mapping and the evaluation; :class:`Analysis` answers "what was
denied" and "what is granted but never used" per principal.

Extending it
------------
* A new operation in the code: one line in :data:`OPERATIONS`, e.g.
  ``("sagemaker", "StopTrainingJob"): sagemaker_on("training-job", "TrainingJobName"),``
  (check the action and resource types in the Service Authorization Reference first).
* A request that makes SageMaker (or another service) act with a role: an entry in
  :data:`ROLE_USES`; a new field of the requests already there: a branch in the function that
  derives them (the error message names the field).
* A new principal: nothing here. :meth:`Stack.principals` lists every Lambda function and every
  other role of the template; the test module lists them too (``PRINCIPALS``) and drives them.
* A new scenario: see the test module's docstring.
* Account state a service's behaviour depends on (today: whether the auto-scaling
  service-linked role exists): :data:`ACCOUNT_CHANGES`, noted by the harness with
  :meth:`Recorder.account_change`.
"""

from __future__ import annotations

import contextlib
import contextvars
import copy
import functools
import hashlib
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import botocore.client
from botocore.exceptions import ClientError
from moto.iam.access_control import IAMPolicyStatement, PermissionResult
from moto.iam.aws_managed_policies import aws_managed_policies_data

REGION = "us-east-1"
ACCOUNT = "123456789012"
PARTITION = "aws"
STACK_NAME = "cifar100-iam"
#: The principal of the test's own set-up and inspection calls: recorded, never judged.
HARNESS = "test harness"

Params = dict[str, Any]
#: (IAM action, resource ARN or "*", condition keys of the request)
Need = tuple[str, str, dict[str, str]]


class UnmappedRequest(Exception):
    """A call or request field this module cannot yet turn into IAM needs."""


class UnsupportedPolicy(Exception):
    """A policy element the evaluator does not implement (it refuses rather than guesses)."""


# ================================================================================ recording


@dataclass
class Call:
    principal: str | None
    service: str  # botocore's service name: "s3", "sagemaker", "application-autoscaling"
    operation: str  # the API operation: "PutObject"
    params: Params
    region: str
    scenario: str | None
    error: str | None = None  # the error code when the call was refused
    response: Params | None = None  # the parsed answer of a call that succeeded

    def __str__(self) -> str:
        outcome = f" -> {self.error}" if self.error else ""
        return f"{self.principal}: {self.service}.{self.operation}{outcome} [{self.scenario}]"


_principal: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "aws_principal", default=None
)
_scenario: contextvars.ContextVar[str | None] = contextvars.ContextVar("aws_scenario", default=None)


def _copied(params: Params) -> Params:
    try:
        return copy.deepcopy(params)
    except Exception:  # a streaming body that cannot be copied: the keys are what matter
        return dict(params)


def _answer(result: Any) -> Params | None:
    """What a mapper may read of an answer: its fields, without the streaming bodies (never
    read here, and not to be consumed by a copy) and the response metadata."""
    if not isinstance(result, dict):
        return None
    kept = {k: v for k, v in result.items() if k != "ResponseMetadata" and not hasattr(v, "read")}
    return _copied(kept)


class Recorder:
    """Records every botocore API call made while :meth:`installed` is active.

    Attribution: :meth:`acting_as` sets a context variable for the invocation it wraps.
    Worker threads do not inherit it (s3transfer uploads from a thread pool), so a call
    without one is attributed to the principal acting process-wide at that moment (the
    scenarios run one invocation at a time); a call made while none acts is unattributed.
    """

    def __init__(self) -> None:
        self.calls: list[Call] = []
        self.invocations: list[tuple[str, str | None]] = []  # (principal, scenario)
        self._acting: list[tuple[str, str | None]] = []  # (principal, scenario), innermost last

    @contextlib.contextmanager
    def installed(self) -> Iterator[Recorder]:
        original = botocore.client.BaseClient._make_api_call
        calls, acting = self.calls, self._acting

        def recording(client: Any, operation_name: str, api_params: Params) -> Any:
            principal, scenario = _principal.get(), _scenario.get()
            if principal is None and acting:
                principal, scenario = acting[-1]
            call = Call(
                principal=principal,
                service=client.meta.service_model.service_name,
                operation=operation_name,
                params=_copied(api_params),
                region=client.meta.region_name,
                scenario=scenario,
            )
            calls.append(call)
            try:
                result = original(client, operation_name, api_params)
            except ClientError as error:
                call.error = str(error.response.get("Error", {}).get("Code") or "ClientError")
                raise
            call.response = _answer(result)
            return result

        botocore.client.BaseClient._make_api_call = recording
        try:
            yield self
        finally:
            botocore.client.BaseClient._make_api_call = original

    @contextlib.contextmanager
    def acting_as(self, principal: str) -> Iterator[None]:
        """Attribute the calls made inside to ``principal`` (one handler invocation)."""
        if principal != HARNESS:
            self.invocations.append((principal, _scenario.get()))
        token = _principal.set(principal)
        self._acting.append((principal, _scenario.get()))
        try:
            yield
        finally:
            self._acting.pop()
            _principal.reset(token)

    def account_change(self, service: str, operation: str, **params: Any) -> None:
        """Note a change someone makes to the account that services' behaviour depends on
        (see ACCOUNT_CHANGES), without sending it anywhere."""
        self.calls.append(Call(HARNESS, service, operation, params, REGION, _scenario.get()))

    @staticmethod
    @contextlib.contextmanager
    def scenario(name: str) -> Iterator[None]:
        token = _scenario.set(name)
        try:
            yield
        finally:
            _scenario.reset(token)


# ================================================================================ ARNs


@dataclass(frozen=True)
class Arns:
    region: str = REGION
    account: str = ACCOUNT
    partition: str = PARTITION

    def _arn(self, service: str, resource: str, *, region: bool = True) -> str:
        where = self.region if region else ""
        return f"arn:{self.partition}:{service}:{where}:{self.account}:{resource}"

    def sagemaker(self, kind: str, name: str) -> str:
        # SageMaker lower-cases resource names inside its ARNs.
        return self._arn("sagemaker", f"{kind}/{name.lower()}")

    def model_package(self, group: str, version: int) -> str:
        # A versioned package: model-package/<group>/<version>. Unlike other SageMaker ARNs
        # the group's name keeps its case (aws-samples/ml-edge-getting-started#18: a policy
        # scoped to the lower-cased name denied DescribeModelPackage on the package).
        return self._arn("sagemaker", f"model-package/{group}/{version}")

    def s3_bucket(self, bucket: str) -> str:
        return f"arn:{self.partition}:s3:::{bucket}"

    def s3_object(self, bucket: str, key: str) -> str:
        return f"arn:{self.partition}:s3:::{bucket}/{key}"

    def table(self, name: str, index: str | None = None) -> str:
        return self._arn("dynamodb", f"table/{name}" + (f"/index/{index}" if index else ""))

    def alarm(self, name: str) -> str:
        return self._arn("cloudwatch", f"alarm:{name}")

    def log_group(self, group: str) -> str:
        return self._arn("logs", f"log-group:{group}")

    def log_stream(self, group: str, stream: str) -> str:
        return self._arn("logs", f"log-group:{group}:log-stream:{stream}")

    def role(self, name: str, path: str = "/") -> str:
        return f"arn:{self.partition}:iam::{self.account}:role{path}{name}"

    def scalable_target(self, namespace: str, resource_id: str, dimension: str) -> str:
        # Scalable-target ARNs carry an id Application Auto Scaling generates; any stable
        # one stands for it (policies can only scope these with scalable-target/*).
        digest = hashlib.md5(f"{namespace}|{resource_id}|{dimension}".encode()).hexdigest()
        return self._arn("application-autoscaling", f"scalable-target/{digest}")


def s3_parts(uri: str) -> tuple[str, str]:
    if not uri.startswith("s3://"):
        raise UnmappedRequest(f"{uri!r} is not an s3:// URI")
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return bucket, key


def under(prefix: str, leaf: str) -> str:
    """A key below ``prefix`` (an S3 key prefix or "folder")."""
    if not prefix:
        return leaf
    return prefix + leaf if prefix.endswith("/") else f"{prefix}/{leaf}"


def tag_context(tags: list[dict[str, str]] | None) -> dict[str, str]:
    return {f"aws:RequestTag/{t['Key']}": t["Value"] for t in tags or []}


# ================================================================================ operations


@dataclass
class MappingContext:
    """What a mapper may consult: the stack's ARNs, every recorded call (to look up what an
    earlier request created) and per-account state the services keep (e.g. whether the
    auto-scaling service-linked role exists yet)."""

    arns: Arns
    calls: list[Call]
    state: dict[str, Any] = field(default_factory=dict)

    def created(self, operation: str, key: str, name: str) -> Params:
        """The params of the last successful ``operation`` whose ``key`` was ``name``."""
        for call in reversed(self.calls):
            if call.operation == operation and call.error is None and call.params.get(key) == name:
                return call.params
        raise UnmappedRequest(f"no successful {operation} with {key}={name!r} was recorded")

    def answered(self, operation: str, key: str, value: str) -> Params:
        """The params of the first successful ``operation`` whose *answer* had ``key`` =
        ``value`` (a resource named by the service, e.g. a model package version's ARN)."""
        for call in self.calls:
            if (
                call.operation == operation
                and call.error is None
                and (call.response or {}).get(key) == value
            ):
                return call.params
        raise UnmappedRequest(f"no successful {operation} answered {key}={value!r}")


Mapper = Callable[[Call, MappingContext], list[Need]]


def sagemaker_on(kind: str, name_param: str, *also: tuple[str, str]) -> Mapper:
    """``sagemaker:<Operation>`` on the ``kind`` named by ``name_param`` (and on each further
    (kind, param) resource the action is also authorised on). Tags on a Create call are
    authorised as ``sagemaker:AddTags`` on the new resource ("tag on create")."""

    def needs(call: Call, ctx: MappingContext) -> list[Need]:
        named = [(kind, name_param), *also]
        resources = [ctx.arns.sagemaker(k, call.params[p]) for k, p in named]
        tags = tag_context(call.params.get("Tags"))
        found: list[Need] = [(f"sagemaker:{call.operation}", r, dict(tags)) for r in resources]
        if call.params.get("Tags"):
            found.append(("sagemaker:AddTags", resources[0], dict(tags)))
        return found

    return needs


def _invoke_endpoint(call: Call, ctx: MappingContext) -> list[Need]:
    return [
        (
            "sagemaker:InvokeEndpoint",
            ctx.arns.sagemaker("endpoint", call.params["EndpointName"]),
            {},
        )
    ]


def dynamodb_item(action: str) -> Mapper:
    """A single-item or query action on the table, or on the index it names (DynamoDB
    authorises a Query/Scan on an index against the index's ARN)."""

    def needs(call: Call, ctx: MappingContext) -> list[Need]:
        p = call.params
        return [(action, ctx.arns.table(p["TableName"], p.get("IndexName")), {})]

    return needs


#: TransactWriteItems is not an IAM action: each item is authorised as its own action
#: (Amazon DynamoDB Developer Guide, "Using IAM with DynamoDB transactions").
_TRANSACT_ACTIONS = {
    "Put": "dynamodb:PutItem",
    "Update": "dynamodb:UpdateItem",
    "Delete": "dynamodb:DeleteItem",
    "ConditionCheck": "dynamodb:ConditionCheckItem",
}


def _transact_write(call: Call, ctx: MappingContext) -> list[Need]:
    found: list[Need] = []
    for item in call.params["TransactItems"]:
        ((kind, body),) = item.items()
        found.append((_TRANSACT_ACTIONS[kind], ctx.arns.table(body["TableName"]), {}))
    return found


#: Error codes of a GetObject/HeadObject on a key that does not exist.
_MISSING_KEY = frozenset({"404", "NoSuchKey", "NotFound"})


def s3_object(action: str) -> Mapper:
    """An object action. S3 answers a read of a missing key with 404 only when the caller also
    holds s3:ListBucket on the bucket, otherwise 403 (Amazon S3 User Guide, GetObject/HeadObject
    permissions); that check carries no s3:prefix, so a prefix-conditioned ListBucket does not
    satisfy it."""

    def needs(call: Call, ctx: MappingContext) -> list[Need]:
        bucket, key = call.params["Bucket"], call.params["Key"]
        found: list[Need] = [(action, ctx.arns.s3_object(bucket, key), {})]
        if action == "s3:GetObject" and call.error in _MISSING_KEY:
            found.append(("s3:ListBucket", ctx.arns.s3_bucket(bucket), {}))
        return found

    return needs


def s3_list(action: str) -> Mapper:
    """ListObjects(V2) is s3:ListBucket (ListObjectVersions s3:ListBucketVersions) on the
    bucket, with the request's prefix, delimiter and max-keys as condition keys."""

    def needs(call: Call, ctx: MappingContext) -> list[Need]:
        p = call.params
        keys = {
            "s3:prefix": p.get("Prefix"),
            "s3:delimiter": p.get("Delimiter"),
            "s3:max-keys": None if p.get("MaxKeys") is None else str(p["MaxKeys"]),
        }
        context = {k: v for k, v in keys.items() if v is not None}
        return [(action, ctx.arns.s3_bucket(p["Bucket"]), context)]

    return needs


#: Service-linked role Application Auto Scaling creates on the first registration in an
#: account, with the caller's iam:CreateServiceLinkedRole ("Service-linked roles for
#: Application Auto Scaling").
_AUTOSCALING_SERVICE_LINKED_ROLES = {
    "sagemaker": (
        "sagemaker.application-autoscaling.amazonaws.com",
        "AWSServiceRoleForApplicationAutoScaling_SageMakerEndpoint",
    ),
}


def _target(call: Call, ctx: MappingContext) -> tuple[str, dict[str, str]]:
    p = call.params
    arn = ctx.arns.scalable_target(p["ServiceNamespace"], p["ResourceId"], p["ScalableDimension"])
    keys = {
        "application-autoscaling:service-namespace": p["ServiceNamespace"],
        "application-autoscaling:scalable-dimension": p["ScalableDimension"],
    }
    return arn, keys


def _variant_endpoint(call: Call, ctx: MappingContext) -> str:
    namespace, resource_id = call.params["ServiceNamespace"], call.params["ResourceId"]
    match = re.fullmatch(r"endpoint/([^/]+)/variant/[^/]+", resource_id)
    if namespace != "sagemaker" or not match:
        raise UnmappedRequest(f"scalable target {namespace} {resource_id}: not a SageMaker variant")
    return ctx.arns.sagemaker("endpoint", match.group(1))


def _target_tracking_alarms(call: Call, ctx: MappingContext) -> list[str]:
    # Application Auto Scaling names them TargetTracking-<resource id>-AlarmHigh/-AlarmLow-<uuid>.
    resource_id = call.params["ResourceId"]
    uuid = "00000000-0000-4000-8000-000000000000"
    return [
        ctx.arns.alarm(f"TargetTracking-{resource_id}-Alarm{side}-{uuid}")
        for side in ("High", "Low")
    ]


# What Application Auto Scaling checks and does with the *caller's* permissions
# (Application Auto Scaling User Guide, "Identity-based policy examples": permissions required
# for API actions on target services and CloudWatch; "Permissions validation").


def _register_scalable_target(call: Call, ctx: MappingContext) -> list[Need]:
    arn, keys = _target(call, ctx)
    endpoint = _variant_endpoint(call, ctx)
    found: list[Need] = [
        ("application-autoscaling:RegisterScalableTarget", arn, keys),
        ("sagemaker:DescribeEndpoint", endpoint, {}),
        ("sagemaker:UpdateEndpointWeightsAndCapacities", endpoint, {}),
    ]
    existing = ctx.state.setdefault("service-linked roles", set())
    service, role = _AUTOSCALING_SERVICE_LINKED_ROLES[call.params["ServiceNamespace"]]
    if role not in existing and call.error is None:
        existing.add(role)
        slr = ctx.arns.role(role, path=f"/aws-service-role/{service}/")
        found.append(("iam:CreateServiceLinkedRole", slr, {"iam:AWSServiceName": service}))
    return found


def _service_linked_role_deleted(call: Call, ctx: MappingContext) -> None:
    # "If you delete this service-linked role, Application Auto Scaling creates it again
    # when you register a target" (Service-linked roles for Application Auto Scaling).
    ctx.state.setdefault("service-linked roles", set()).discard(call.params["RoleName"])


#: Harness-noted account changes (Recorder.account_change) -> their effect on MappingContext.state.
ACCOUNT_CHANGES: dict[tuple[str, str], Callable[[Call, MappingContext], None]] = {
    ("iam", "DeleteServiceLinkedRole"): _service_linked_role_deleted,
}


def _put_scaling_policy(call: Call, ctx: MappingContext) -> list[Need]:
    arn, keys = _target(call, ctx)
    found: list[Need] = [("application-autoscaling:PutScalingPolicy", arn, keys)]
    if call.params.get("PolicyType") == "TargetTrackingScaling":
        for alarm in _target_tracking_alarms(call, ctx):
            found += [
                ("cloudwatch:DescribeAlarms", alarm, {}),
                ("cloudwatch:PutMetricAlarm", alarm, {}),
            ]
    return found


def _deregister_scalable_target(call: Call, ctx: MappingContext) -> list[Need]:
    arn, keys = _target(call, ctx)
    found: list[Need] = [("application-autoscaling:DeregisterScalableTarget", arn, keys)]
    # Deregistering deletes the target's scaling policies and so their alarms.
    for alarm in _target_tracking_alarms(call, ctx):
        found += [("cloudwatch:DescribeAlarms", alarm, {}), ("cloudwatch:DeleteAlarms", alarm, {})]
    return found


def _autoscaling_read(action: str) -> Mapper:
    return lambda call, ctx: [(action, "*", {})]  # Describe* have no resource type


def _describe_alarms(call: Call, ctx: MappingContext) -> list[Need]:
    names = call.params.get("AlarmNames") or []
    if not names:
        return [("cloudwatch:DescribeAlarms", "*", {})]
    return [("cloudwatch:DescribeAlarms", ctx.arns.alarm(name), {}) for name in names]


# The model registry (Service Authorization Reference, "Actions, resources, and condition keys
# for Amazon SageMaker": CreateModelPackage on model-package, with aws:RequestTag/*,
# sagemaker:ModelApprovalStatus and sagemaker:CustomerMetadataProperties/<key>, dependent
# action sagemaker:AddTags; DescribeModelPackage and UpdateModelPackage on model-package*;
# UpdateModelPackage with sagemaker:ModelApprovalStatus and CustomerMetadataProperties/<key>).
# No model-package-group resource type is listed for any of them.

#: CreateModelPackage fields that make SageMaker use no role, key or other resource of ours.
_INERT_PACKAGE_FIELDS = frozenset(
    {
        "ModelPackageGroupName",
        "ModelPackageDescription",
        "InferenceSpecification",  # read when a model is created from it (_endpoint_uses)
        "ModelMetrics",  # where the reports are; SageMaker stores the URIs, reads nothing
        "ModelApprovalStatus",
        "CustomerMetadataProperties",
        "MetadataProperties",
        "ClientToken",
        "Tags",
        "Domain",
        "Task",
    }
)
_UPDATE_PACKAGE_FIELDS = frozenset(
    {"ModelPackageArn", "ModelApprovalStatus", "ApprovalDescription", "CustomerMetadataProperties"}
)


def _package_request_keys(params: Params) -> dict[str, str]:
    keys = {
        f"sagemaker:CustomerMetadataProperties/{k}": v
        for k, v in (params.get("CustomerMetadataProperties") or {}).items()
    }
    if params.get("ModelApprovalStatus"):
        keys["sagemaker:ModelApprovalStatus"] = params["ModelApprovalStatus"]
    return keys


def _group_name(group: str) -> str:
    return group.rsplit("/", 1)[-1] if group.startswith("arn:") else group


def _package_arn(ctx: MappingContext, name: str) -> str:
    """A ModelPackageName / ModelPackageArn parameter: an ARN, ``<group>/<version>`` or the
    name of an unversioned package."""
    if name.startswith("arn:"):
        return name
    group, _, version = name.partition("/")
    if version:
        return ctx.arns.model_package(group, int(version))
    return ctx.arns._arn("sagemaker", f"model-package/{name}")


def _create_model_package(call: Call, ctx: MappingContext) -> list[Need]:
    """A new version of the group, authorised on the version's ARN (the answer names it; a
    refused request stands for the next version). Tags: sagemaker:AddTags on the same ARN."""
    p = call.params
    unknown = set(p) - _INERT_PACKAGE_FIELDS
    if unknown:
        raise UnmappedRequest(
            f"CreateModelPackage {sorted(unknown)}: derive what they need (SecurityConfig: a "
            "KMS key, ValidationSpecification: a role and jobs, SourceAlgorithmSpecification: "
            "an algorithm)"
        )
    if not p.get("ModelPackageGroupName"):
        raise UnmappedRequest("an unversioned model package (no ModelPackageGroupName)")
    group = _group_name(p["ModelPackageGroupName"])
    arn = (call.response or {}).get("ModelPackageArn")
    if arn is None:
        versions = {
            (c.response or {}).get("ModelPackageArn")
            for c in ctx.calls
            if c.operation == "CreateModelPackage"
            and c.error is None
            and _group_name(c.params.get("ModelPackageGroupName", "")) == group
        }
        arn = ctx.arns.model_package(group, len(versions) + 1)
    tags = tag_context(p.get("Tags"))
    found: list[Need] = [
        ("sagemaker:CreateModelPackage", arn, {**tags, **_package_request_keys(p)})
    ]
    if p.get("Tags"):
        found.append(("sagemaker:AddTags", arn, dict(tags)))
    return found


def _describe_model_package(call: Call, ctx: MappingContext) -> list[Need]:
    arn = _package_arn(ctx, call.params["ModelPackageName"])
    return [("sagemaker:DescribeModelPackage", arn, {})]


def _update_model_package(call: Call, ctx: MappingContext) -> list[Need]:
    p = call.params
    unknown = set(p) - _UPDATE_PACKAGE_FIELDS
    if unknown:
        raise UnmappedRequest(f"UpdateModelPackage {sorted(unknown)}: derive what they need")
    arn = _package_arn(ctx, p["ModelPackageArn"])
    return [("sagemaker:UpdateModelPackage", arn, _package_request_keys(p))]


def _list_model_packages(call: Call, ctx: MappingContext) -> list[Need]:
    # The Service Authorization Reference lists model-package as an optional resource type of
    # ListModelPackages but no source says which ARN a list request is checked against (the
    # SageMaker Developer Guide's API permissions table, archived in awsdocs/amazon-sagemaker-
    # developer-guide, names model-package/<name>): "*" is what is certain to be evaluated.
    return [("sagemaker:ListModelPackages", "*", {})]


#: (botocore service name, operation) -> the IAM needs of one call. Sources: the Service
#: Authorization Reference pages "Actions, resources, and condition keys for Amazon
#: SageMaker", "... for Amazon S3", "... for Amazon DynamoDB", "... for Application Auto
#: Scaling", "... for Amazon CloudWatch". CreateEndpoint and UpdateEndpoint are authorised on
#: the endpoint *and* on the endpoint config they name (the template's DeployEndpoint
#: statement relies on it; AWS Step Functions' generated SageMaker policies scope them so).
OPERATIONS: dict[tuple[str, str], Mapper] = {
    # SageMaker
    ("sagemaker", "CreateHyperParameterTuningJob"): sagemaker_on(
        "hyper-parameter-tuning-job", "HyperParameterTuningJobName"
    ),
    ("sagemaker", "DescribeHyperParameterTuningJob"): sagemaker_on(
        "hyper-parameter-tuning-job", "HyperParameterTuningJobName"
    ),
    ("sagemaker", "ListTrainingJobsForHyperParameterTuningJob"): sagemaker_on(
        "hyper-parameter-tuning-job", "HyperParameterTuningJobName"
    ),
    ("sagemaker", "CreateTrainingJob"): sagemaker_on("training-job", "TrainingJobName"),
    ("sagemaker", "DescribeTrainingJob"): sagemaker_on("training-job", "TrainingJobName"),
    # CreateModel from a registered version (PrimaryContainer.ModelPackageName) is authorised
    # on the model alone: the action lists model* as its only resource type and iam:PassRole
    # and sagemaker:AddTags as its dependent actions, nothing on the package.
    ("sagemaker", "CreateModel"): sagemaker_on("model", "ModelName"),
    ("sagemaker", "DescribeModel"): sagemaker_on("model", "ModelName"),
    ("sagemaker", "CreateEndpointConfig"): sagemaker_on("endpoint-config", "EndpointConfigName"),
    ("sagemaker", "DescribeEndpointConfig"): sagemaker_on("endpoint-config", "EndpointConfigName"),
    ("sagemaker", "CreateEndpoint"): sagemaker_on(
        "endpoint", "EndpointName", ("endpoint-config", "EndpointConfigName")
    ),
    ("sagemaker", "UpdateEndpoint"): sagemaker_on(
        "endpoint", "EndpointName", ("endpoint-config", "EndpointConfigName")
    ),
    ("sagemaker", "DescribeEndpoint"): sagemaker_on("endpoint", "EndpointName"),
    ("sagemaker", "DeleteEndpoint"): sagemaker_on("endpoint", "EndpointName"),
    ("sagemaker", "CreateModelPackage"): _create_model_package,
    ("sagemaker", "DescribeModelPackage"): _describe_model_package,
    ("sagemaker", "UpdateModelPackage"): _update_model_package,
    ("sagemaker", "ListModelPackages"): _list_model_packages,
    ("sagemaker-runtime", "InvokeEndpoint"): _invoke_endpoint,
    # DynamoDB
    ("dynamodb", "GetItem"): dynamodb_item("dynamodb:GetItem"),
    ("dynamodb", "PutItem"): dynamodb_item("dynamodb:PutItem"),
    ("dynamodb", "UpdateItem"): dynamodb_item("dynamodb:UpdateItem"),
    ("dynamodb", "DeleteItem"): dynamodb_item("dynamodb:DeleteItem"),
    ("dynamodb", "Query"): dynamodb_item("dynamodb:Query"),
    ("dynamodb", "TransactWriteItems"): _transact_write,
    # S3 (HeadObject is authorised as s3:GetObject)
    ("s3", "HeadObject"): s3_object("s3:GetObject"),
    ("s3", "GetObject"): s3_object("s3:GetObject"),
    ("s3", "PutObject"): s3_object("s3:PutObject"),
    ("s3", "ListObjectsV2"): s3_list("s3:ListBucket"),
    ("s3", "ListObjects"): s3_list("s3:ListBucket"),
    ("s3", "ListObjectVersions"): s3_list("s3:ListBucketVersions"),
    # Application Auto Scaling
    ("application-autoscaling", "RegisterScalableTarget"): _register_scalable_target,
    ("application-autoscaling", "PutScalingPolicy"): _put_scaling_policy,
    ("application-autoscaling", "DeregisterScalableTarget"): _deregister_scalable_target,
    ("application-autoscaling", "DescribeScalableTargets"): _autoscaling_read(
        "application-autoscaling:DescribeScalableTargets"
    ),
    ("application-autoscaling", "DescribeScalingPolicies"): _autoscaling_read(
        "application-autoscaling:DescribeScalingPolicies"
    ),
    # CloudWatch
    ("cloudwatch", "DescribeAlarms"): _describe_alarms,
}

#: The service principal a role passed in a request to this service is passed to.
PASSED_TO_SERVICE = {"sagemaker": "sagemaker.amazonaws.com"}


def role_arns(value: Any) -> list[str]:
    """Every role ARN a request carries (RoleArn, ExecutionRoleArn, ... at any depth)."""
    if isinstance(value, dict):
        found = [v for k, v in value.items() if k.endswith("RoleArn") and isinstance(v, str)]
        for v in value.values():
            found += role_arns(v) if isinstance(v, dict | list) else []
        return found
    if isinstance(value, list):
        return [arn for item in value for arn in role_arns(item)]
    return []


def pass_role_needs(call: Call, needs: list[Need]) -> list[Need]:
    """A request that carries a role needs iam:PassRole on it, with iam:PassedToService the
    service principal and iam:AssociatedResourceArn the resource the role goes to."""
    roles = sorted(set(role_arns(call.params)))
    if not roles:
        return []
    if call.service not in PASSED_TO_SERVICE:
        raise UnmappedRequest(f"passes {roles} to {call.service}: add it to PASSED_TO_SERVICE")
    context = {"iam:PassedToService": PASSED_TO_SERVICE[call.service]}
    if needs:
        context["iam:AssociatedResourceArn"] = needs[0][1]
    return [("iam:PassRole", role, dict(context)) for role in roles]


# ================================================================================ role uses


#: (role ARN, IAM action, resource, condition keys, what for)
RoleUse = tuple[str, str, str, dict[str, str], str]
Deriver = Callable[[Call, MappingContext], list[RoleUse]]

_ECR_IMAGE = re.compile(
    r"(?P<registry>\d{12})\.dkr\.ecr\.(?P<region>[a-z0-9-]+)\.amazonaws\.com(?:\.cn)?"
    r"/(?P<repository>[^:@]+)(?::[^@]*)?(?:@.+)?"
)
#: Representative names for what SageMaker creates: policies can scope these only with
#: wildcards, so any name of the right shape stands for all.
_INSTANCE_STREAM = "algo-1-1764300000"
_ENDPOINT_INSTANCE = "i-0123456789abcdef0"


def _image_pull(image: str, why: str) -> list[tuple[str, str, dict[str, str], str]]:
    """Pulling an ECR image: a registry token, then the layers and manifest of the repository
    (the registry's account may be AWS's, e.g. the Deep Learning Containers)."""
    match = _ECR_IMAGE.fullmatch(image)
    if not match:
        raise UnmappedRequest(f"{image!r} is not an ECR image URI: derive how it is pulled")
    repository = (
        f"arn:{PARTITION}:ecr:{match['region']}:{match['registry']}:repository/"
        f"{match['repository']}"
    )
    pull = f"pull {image} ({why})"
    return [
        ("ecr:GetAuthorizationToken", "*", {}, pull),
        ("ecr:BatchCheckLayerAvailability", repository, {}, pull),
        ("ecr:GetDownloadUrlForLayer", repository, {}, pull),
        ("ecr:BatchGetImage", repository, {}, pull),
    ]


def _logs(
    arns: Arns, group: str, stream: str, why: str
) -> list[tuple[str, str, dict[str, str], str]]:
    """CloudWatch Logs as SageMaker writes them with the execution role (SageMaker AI
    Developer Guide, "How to use SageMaker AI execution roles")."""
    return [
        ("logs:CreateLogGroup", arns.log_group(group), {}, why),
        ("logs:DescribeLogStreams", arns.log_group(group), {}, why),
        ("logs:CreateLogStream", arns.log_group(group), {}, why),
        ("logs:PutLogEvents", arns.log_stream(group, stream), {}, why),
    ]


def _metrics(namespace: str, why: str) -> list[tuple[str, str, dict[str, str], str]]:
    return [("cloudwatch:PutMetricData", "*", {"cloudwatch:namespace": namespace}, why)]


def _read_prefix(
    arns: Arns, uri: str, why: str, leaf: str = "part-00000"
) -> list[tuple[str, str, dict[str, str], str]]:
    """Downloading everything under an S3 prefix: list it (s3:prefix = the key prefix), then
    get each object (one representative object stands for all)."""
    bucket, key = s3_parts(uri)
    return [
        ("s3:ListBucket", arns.s3_bucket(bucket), {"s3:prefix": key}, why),
        ("s3:GetObject", arns.s3_object(bucket, under(key, leaf)), {}, why),
    ]


def _write_under(
    arns: Arns, uri: str, leaves: tuple[str, ...], why: str
) -> list[tuple[str, str, dict[str, str], str]]:
    bucket, key = s3_parts(uri)
    return [("s3:PutObject", arns.s3_object(bucket, under(key, leaf)), {}, why) for leaf in leaves]


#: Hyperparameters whose s3:// value the *script* uses with the role's credentials (not
#: SageMaker): the scenarios run that script code as the role, so its calls are recorded,
#: not derived. ``output``: prepare_data.py --output uploads <output>/train and /test.
SCRIPT_LOCATIONS = frozenset({"output"})

#: Request fields that make SageMaker do nothing with the role, per request kind.
_INERT_JOB_FIELDS = frozenset(
    {
        "TrainingJobName",
        "HyperParameters",
        "StaticHyperParameters",
        "ResourceConfig",
        "StoppingCondition",
        "Tags",
        "EnableManagedSpotTraining",
        "Environment",
        "RoleArn",
        "RetryStrategy",
    }
)
_INERT_ALGORITHM_FIELDS = frozenset(
    {"TrainingImage", "TrainingInputMode", "MetricDefinitions", "EnableSageMakerMetricsTimeSeries"}
)


def _job_uses(
    arns: Arns, job: str, spec: Params, what: str
) -> list[tuple[str, str, dict[str, str], str]]:
    """What one training job (a final job, or one trial of a tuning job) does with its role,
    from the request: every field that names an S3 location, an image or a rule."""
    handled = {
        "AlgorithmSpecification",
        "InputDataConfig",
        "OutputDataConfig",
        "CheckpointConfig",
        "TensorBoardOutputConfig",
        "DebugHookConfig",
        "DebugRuleConfigurations",
        "ProfilerConfig",
        "ProfilerRuleConfigurations",
    }
    unknown = set(spec) - handled - _INERT_JOB_FIELDS
    if unknown:
        raise UnmappedRequest(f"{what}: derive what SageMaker does for {sorted(unknown)}")
    found: list[tuple[str, str, dict[str, str], str]] = []
    algorithm = spec["AlgorithmSpecification"]
    if set(algorithm) - _INERT_ALGORITHM_FIELDS:
        raise UnmappedRequest(f"{what}: AlgorithmSpecification {sorted(set(algorithm))}")
    found += _image_pull(algorithm["TrainingImage"], f"{what}: training image")
    # Input channels in File mode: SageMaker lists the prefix and downloads every object.
    for channel in spec.get("InputDataConfig", []):
        source = channel["DataSource"].get("S3DataSource")
        if not source or source.get("S3DataType") != "S3Prefix":
            raise UnmappedRequest(f"{what}: channel {channel['ChannelName']} is not an S3 prefix")
        found += _read_prefix(arns, source["S3Uri"], f"{what}: channel {channel['ChannelName']}")
    # Script mode: the container downloads sagemaker_submit_directory with the role.
    hyper = spec.get("HyperParameters") or spec.get("StaticHyperParameters") or {}
    for name, value in hyper.items():
        if not str(value).startswith("s3://"):
            continue
        if name == "sagemaker_submit_directory":
            bucket, key = s3_parts(value)
            found.append(
                ("s3:GetObject", arns.s3_object(bucket, key), {}, f"{what}: source bundle")
            )
        elif name not in SCRIPT_LOCATIONS:
            raise UnmappedRequest(
                f"{what}: hyperparameter {name}={value}: say what the script does there "
                "(SCRIPT_LOCATIONS) or derive it here"
            )
    output = spec["OutputDataConfig"]
    if set(output) - {"S3OutputPath", "CompressionType"}:
        raise UnmappedRequest(f"{what}: OutputDataConfig {sorted(set(output))} (e.g. KMS)")
    # <S3OutputPath>/<job>/output/model.tar.gz and output.tar.gz.
    found += _write_under(
        arns,
        output["S3OutputPath"],
        (f"{job}/output/model.tar.gz", f"{job}/output/output.tar.gz"),
        f"{what}: model and output",
    )
    checkpoints = spec.get("CheckpointConfig")
    if checkpoints:
        # Spot: uploads checkpoints while running, lists and downloads them on a restart.
        why = f"{what}: checkpoints"
        found += _write_under(arns, checkpoints["S3Uri"], ("checkpoint.pt",), why)
        found += _read_prefix(arns, checkpoints["S3Uri"], why, leaf="checkpoint.pt")
    tensorboard = spec.get("TensorBoardOutputConfig")
    if tensorboard:
        found += _write_under(
            arns,
            tensorboard["S3OutputPath"],
            (f"{job}/tensorboard-output/events.out.tfevents",),
            f"{what}: TensorBoard",
        )
    hook = spec.get("DebugHookConfig")
    if hook:
        found += _write_under(
            arns,
            hook["S3OutputPath"],
            (f"{job}/debug-output/index/000000000.json",),
            f"{what}: Debugger tensors",
        )
    profiler = spec.get("ProfilerConfig") or {}
    if profiler.get("S3OutputPath") and not profiler.get("DisableProfiler"):
        found += _write_under(
            arns,
            profiler["S3OutputPath"],
            (f"{job}/profiler-output/system/incremental/events.json",),
            f"{what}: profiler",
        )
    # Each built-in rule runs as a processing job with the same role: it pulls the rule image,
    # reads the hook's (or the profiler's) output and writes its report beside it.
    for kind, rules, source_config, folder in (
        ("Debugger rule", spec.get("DebugRuleConfigurations") or [], hook, "debug-output"),
        (
            "profiler rule",
            spec.get("ProfilerRuleConfigurations") or [],
            profiler,
            "profiler-output",
        ),
    ):
        for rule in rules:
            name = rule["RuleConfigurationName"]
            why = f"{what}: {kind} {name}"
            if set(rule) - {"RuleConfigurationName", "RuleEvaluatorImage", "RuleParameters"}:
                raise UnmappedRequest(f"{why}: {sorted(set(rule))}")
            if not source_config or not source_config.get("S3OutputPath"):
                raise UnmappedRequest(f"{why}: a rule without the output it reads")
            base = source_config["S3OutputPath"]
            found += _image_pull(rule["RuleEvaluatorImage"], why)
            found += _read_prefix(arns, f"{under(base, job)}/{folder}", why)
            found += _write_under(arns, base, (f"{job}/rule-output/{name}/report.json",), why)
            found += _logs(
                arns, "/aws/sagemaker/ProcessingJobs", f"{job}-{name}/{_INSTANCE_STREAM}", why
            )
            found += _metrics("/aws/sagemaker/ProcessingJobs", why)
    found += _logs(
        arns, "/aws/sagemaker/TrainingJobs", f"{job}/{_INSTANCE_STREAM}", f"{what}: logs"
    )
    found += _metrics("/aws/sagemaker/TrainingJobs", f"{what}: instance metrics")
    return found


def _training_job_uses(call: Call, ctx: MappingContext) -> list[RoleUse]:
    spec, job = call.params, call.params["TrainingJobName"]
    uses = _job_uses(ctx.arns, job, spec, f"training job {job}")
    return [(spec["RoleArn"], *use) for use in uses]


def _tuning_job_uses(call: Call, ctx: MappingContext) -> list[RoleUse]:
    p, name = call.params, call.params["HyperParameterTuningJobName"]
    inert = {
        "HyperParameterTuningJobName",
        "HyperParameterTuningJobConfig",
        "Tags",
        "WarmStartConfig",
    }
    unknown = set(p) - inert - {"TrainingJobDefinition"}
    if unknown:
        raise UnmappedRequest(
            f"tuning job {name}: derive what SageMaker does for {sorted(unknown)}"
        )
    definition = p["TrainingJobDefinition"]
    # Every trial is a training job named <tuning job>-<nnn>-<8 hex>, run with the definition.
    trial = f"{name}-001-0a1b2c3d".lower()
    uses = _job_uses(ctx.arns, trial, definition, f"tuning job {name} trial")
    return [(definition["RoleArn"], *use) for use in uses]


def _model_uses(call: Call, ctx: MappingContext) -> list[RoleUse]:
    # A model is a definition only: its role acts when an endpoint runs it (_endpoint_uses),
    # also for a model created from a registered version: the package is copied into the
    # model, no source says SageMaker reads the package (or its ModelMetrics) with the role.
    container = call.params.get("PrimaryContainer") or {}
    if "Containers" in call.params or not container:
        raise UnmappedRequest("a model without one PrimaryContainer: derive its containers")
    return []


_INERT_CONTAINER_FIELDS = frozenset({"Image", "ModelDataUrl", "Environment"})


def _hosted_containers(ctx: MappingContext, model: Params) -> list[Params]:
    """What an endpoint runs for a model: its own container (Image, ModelDataUrl), or, for
    a model created from a registered version (ModelPackageName), the containers of that
    version's InferenceSpecification as the request that registered it gave them; the
    execution role pulls their images and downloads their model data like any model's."""
    name, container = model["ModelName"], model["PrimaryContainer"]
    if "ModelPackageName" in container:
        if set(container) != {"ModelPackageName"}:
            raise UnmappedRequest(f"model {name}: container {sorted(set(container))}")
        arn = _package_arn(ctx, container["ModelPackageName"])
        package = ctx.answered("CreateModelPackage", "ModelPackageArn", arn)
        specification = package["InferenceSpecification"]
        containers = specification["Containers"]
        where = f"model {name} (package {arn})"
    else:
        containers, where = [container], f"model {name}"
    for spec in containers:
        if set(spec) - _INERT_CONTAINER_FIELDS:
            raise UnmappedRequest(f"{where}: container {sorted(set(spec))}")
    return containers


def _endpoint_uses(call: Call, ctx: MappingContext) -> list[RoleUse]:
    """An endpoint (created, or updated to a new config) runs each variant's model with the
    model's execution role: it pulls the image, downloads the model data, writes logs and
    instance metrics. During a blue/green update SageMaker reads the auto-rollback alarms with
    the execution role (SageMaker AI Developer Guide, "Auto-Rollback Configuration and
    Monitoring")."""
    endpoint, config_name = call.params["EndpointName"], call.params["EndpointConfigName"]
    config = ctx.created("CreateEndpointConfig", "EndpointConfigName", config_name)
    if set(config) - {"EndpointConfigName", "ProductionVariants", "Tags"}:
        raise UnmappedRequest(
            f"endpoint config {config_name}: {sorted(set(config))} (e.g. data capture, KMS)"
        )
    found: list[RoleUse] = []
    roles = []
    for variant in config["ProductionVariants"]:
        model = ctx.created("CreateModel", "ModelName", variant["ModelName"])
        if set(model) - {"ModelName", "ExecutionRoleArn", "PrimaryContainer", "Tags"}:
            raise UnmappedRequest(f"model {variant['ModelName']}: {sorted(set(model))} (e.g. VPC)")
        role = model["ExecutionRoleArn"]
        roles.append(role)
        why = f"endpoint {endpoint} runs model {model['ModelName']}"
        uses = []
        for container in _hosted_containers(ctx, model):
            uses += _image_pull(container["Image"], why)
            bucket, key = s3_parts(container["ModelDataUrl"])
            if key.endswith("/"):
                uses += _read_prefix(ctx.arns, container["ModelDataUrl"], why)
            else:
                uses.append(("s3:GetObject", ctx.arns.s3_object(bucket, key), {}, why))
            submit = (container.get("Environment") or {}).get("SAGEMAKER_SUBMIT_DIRECTORY", "")
            if submit.startswith("s3://"):
                uses.append(("s3:GetObject", ctx.arns.s3_object(*s3_parts(submit)), {}, why))
        group = f"/aws/sagemaker/Endpoints/{endpoint}"
        uses += _logs(ctx.arns, group, f"{variant['VariantName']}/{_ENDPOINT_INSTANCE}", why)
        uses += _metrics("/aws/sagemaker/Endpoints", why)
        found += [(role, *use) for use in uses]
    deployment = call.params.get("DeploymentConfig") or {}
    if set(deployment) - {"BlueGreenUpdatePolicy", "AutoRollbackConfiguration"}:
        raise UnmappedRequest(f"update of {endpoint}: DeploymentConfig {sorted(set(deployment))}")
    for alarm in (deployment.get("AutoRollbackConfiguration") or {}).get("Alarms", []):
        why = f"update of {endpoint}: watch rollback alarm {alarm['AlarmName']}"
        for role in sorted(set(roles)):
            found.append(
                (role, "cloudwatch:DescribeAlarms", ctx.arns.alarm(alarm["AlarmName"]), {}, why)
            )
    return found


#: (service, operation) of a request that makes the service act with a role it carries (or
#: that an earlier request attached) -> what it then does with that role.
ROLE_USES: dict[tuple[str, str], Deriver] = {
    ("sagemaker", "CreateTrainingJob"): _training_job_uses,
    ("sagemaker", "CreateHyperParameterTuningJob"): _tuning_job_uses,
    ("sagemaker", "CreateModel"): _model_uses,
    ("sagemaker", "CreateEndpoint"): _endpoint_uses,
    ("sagemaker", "UpdateEndpoint"): _endpoint_uses,
}


def lambda_platform_needs(
    stack: Stack, function: str
) -> list[tuple[str, str, dict[str, str], str]]:
    """What the Lambda service does with a function's execution role whenever the function
    runs: it writes the function's log stream, and sends an asynchronous event that failed
    every retry to the dead-letter queue (AWS Lambda Developer Guide, "Lambda execution role",
    "Dead-letter queues")."""
    props = stack.resource(function)["Properties"]
    unknown = {"VpcConfig", "KmsKeyArn", "FileSystemConfigs", "LoggingConfig"} & set(props)
    if (props.get("TracingConfig") or {}).get("Mode") == "Active":
        unknown.add("TracingConfig")
    if unknown:
        raise UnmappedRequest(
            f"{function}: derive what Lambda does with the role for {sorted(unknown)}"
        )
    for name, resource in stack.resources.items():
        kind = resource["Type"]
        refers = json.dumps(resource.get("Properties", {})).find(f'"{function}"') >= 0
        if kind == "AWS::Lambda::EventSourceMapping" and refers:
            raise UnmappedRequest(f"{name}: derive what polling its source needs")
        if (
            kind == "AWS::Lambda::EventInvokeConfig"
            and refers
            and resource["Properties"].get("DestinationConfig")
        ):
            raise UnmappedRequest(f"{name}: derive what its destinations need")
    group = f"/aws/lambda/{stack.physical_name(function)}"
    runs = f"Lambda runs {function}"
    found = [
        ("logs:CreateLogStream", stack.arns.log_group(group), {}, runs),
        (
            "logs:PutLogEvents",
            stack.arns.log_stream(group, "2026/11/28/[$LATEST]0123456789abcdef"),
            {},
            runs,
        ),
    ]
    target = (props.get("DeadLetterConfig") or {}).get("TargetArn")
    if target:
        target = stack.resolve(target)
        action = "sqs:SendMessage" if ":sqs:" in target else "sns:Publish"
        found.append((action, target, {}, f"Lambda dead-letters a failed event of {function}"))
    return found


# ================================================================================ template


class _NoValue:
    def __repr__(self) -> str:
        return "AWS::NoValue"


NO_VALUE = _NoValue()

#: Properties that name a resource explicitly, per type (otherwise CloudFormation generates one).
_NAME_PROPERTY = {
    "AWS::S3::Bucket": "BucketName",
    "AWS::DynamoDB::Table": "TableName",
    "AWS::IAM::Role": "RoleName",
    "AWS::Lambda::Function": "FunctionName",
    "AWS::CloudWatch::Alarm": "AlarmName",
    "AWS::SQS::Queue": "QueueName",
    "AWS::SNS::Topic": "TopicName",
    "AWS::Logs::LogGroup": "LogGroupName",
    "AWS::Events::Rule": "Name",
    "AWS::IAM::ManagedPolicy": "ManagedPolicyName",
}


class Stack:
    """The transformed template with every intrinsic resolved for one deployment: parameters
    at their defaults (or ``parameters``), region/account/partition fixed, physical names
    ``<stack>-<logical id>`` (lower case for buckets), custom-resource attributes from
    ``attributes`` (filled in as the custom resources' handlers answer)."""

    def __init__(
        self,
        template: dict[str, Any],
        *,
        parameters: dict[str, str] | None = None,
        attributes: dict[str, dict[str, str]] | None = None,
        name: str = STACK_NAME,
        arns: Arns | None = None,
    ) -> None:
        self.template = template
        self.resources: dict[str, dict[str, Any]] = template["Resources"]
        self.name = name
        self.arns = arns or Arns()
        declared = template.get("Parameters", {})
        unknown = set(parameters or {}) - set(declared)
        if unknown:
            raise KeyError(f"the template has no parameters {sorted(unknown)}")
        self.overrides = dict(parameters or {})
        self.parameters = {k: _text(v.get("Default", "")) for k, v in declared.items()}
        self.parameters.update({k: _text(v) for k, v in self.overrides.items()})
        self.attributes = attributes if attributes is not None else {}

    def with_parameters(self, **values: str) -> Stack:
        """The same stack deployed with other parameter values (sharing its attributes)."""
        return Stack(
            self.template,
            parameters={**self.overrides, **values},
            attributes=self.attributes,
            name=self.name,
            arns=self.arns,
        )

    # -- intrinsics --------------------------------------------------------------------------

    def resource(self, logical: str) -> dict[str, Any]:
        try:
            return self.resources[logical]
        except KeyError:
            raise KeyError(f"the template has no resource {logical}") from None

    def resolve(self, value: Any) -> Any:
        if isinstance(value, list):
            items = [self.resolve(v) for v in value]
            return [v for v in items if v is not NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((key, arg),) = value.items()
            if key == "Ref":
                return self.ref(arg)
            if key == "Fn::GetAtt":
                logical, attribute = arg if isinstance(arg, list) else arg.split(".", 1)
                return self.get_att(logical, attribute)
            if key == "Fn::Sub":
                return self._sub(arg)
            if key == "Fn::If":
                condition, when_true, when_false = arg
                return self.resolve(when_true if self.condition(condition) else when_false)
            if key == "Fn::Join":
                delimiter, items = arg
                return delimiter.join(_text(v) for v in self.resolve(items))
            if key == "Fn::Select":
                index, items = arg
                return self.resolve(items)[int(self.resolve(index))]
            if key == "Fn::FindInMap":
                mapping, top, second = (self.resolve(v) for v in arg)
                return self.template["Mappings"][mapping][top][second]
            if key == "Fn::Split":
                delimiter, text = arg
                return self.resolve(text).split(delimiter)
            if key.startswith("Fn::") or key == "Condition":
                raise NotImplementedError(
                    f"intrinsic {key} is not resolved: add it to Stack.resolve"
                )
        resolved = {k: self.resolve(v) for k, v in value.items()}
        return {k: v for k, v in resolved.items() if v is not NO_VALUE}

    def condition(self, name: str) -> bool:
        return self._truth(self.template.get("Conditions", {})[name])

    def exists(self, logical: str) -> bool:
        """Whether this deployment creates the resource (its ``Condition`` holds, or it has
        none). :meth:`principals` lists every principal of the template, deployed or not: the
        scenarios run the conditional ones with the parameters that create them."""
        condition = self.resource(logical).get("Condition")
        return condition is None or self.condition(condition)

    def _truth(self, value: Any) -> bool:
        ((key, arg),) = value.items()
        if key == "Fn::Equals":
            left, right = (_text(self.resolve(v)) for v in arg)
            return left == right
        if key == "Fn::Not":
            return not self._truth(arg[0])
        if key == "Fn::And":
            return all(self._truth(v) for v in arg)
        if key == "Fn::Or":
            return any(self._truth(v) for v in arg)
        if key == "Condition":
            return self.condition(arg)
        raise NotImplementedError(f"condition function {key}")

    def _sub(self, arg: Any) -> str:
        text, variables = (arg, {}) if isinstance(arg, str) else arg
        local = {k: self.resolve(v) for k, v in variables.items()}

        def value(match: re.Match[str]) -> str:
            name = match.group(1)
            if name.startswith("!"):
                return "${" + name[1:] + "}"
            if name in local:
                return _text(local[name])
            if "." in name and not name.startswith("AWS::"):
                logical, attribute = name.split(".", 1)
                return _text(self.get_att(logical, attribute))
            return _text(self.ref(name))

        return re.sub(r"\$\{([^}]+)\}", value, text)

    def pseudo(self) -> dict[str, Any]:
        return {
            "AWS::Region": self.arns.region,
            "AWS::AccountId": self.arns.account,
            "AWS::Partition": self.arns.partition,
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::StackName": self.name,
            "AWS::StackId": f"arn:{self.arns.partition}:cloudformation:{self.arns.region}:"
            f"{self.arns.account}:stack/{self.name}/00000000-0000-4000-8000-000000000000",
            "AWS::NoValue": NO_VALUE,
        }

    def ref(self, name: str) -> Any:
        pseudo = self.pseudo()
        if name in pseudo:
            return pseudo[name]
        if name in self.parameters:
            return self.parameters[name]
        kind = self.resource(name)["Type"]
        if kind in (
            "AWS::S3::Bucket",
            "AWS::DynamoDB::Table",
            "AWS::IAM::Role",
            "AWS::Lambda::Function",
            "AWS::CloudWatch::Alarm",
            "AWS::Logs::LogGroup",
            "AWS::Events::Rule",
        ):
            return self.physical_name(name)
        if kind == "AWS::SQS::Queue":
            return f"https://sqs.{self.arns.region}.amazonaws.com/{self.arns.account}/{self.physical_name(name)}"
        if kind in ("AWS::SNS::Topic", "AWS::IAM::ManagedPolicy"):
            return self.get_att(name, "Arn")
        if kind == "AWS::Lambda::Version":
            function = self.resolve(self.resource(name)["Properties"]["FunctionName"])
            return f"{self.arns._arn('lambda', f'function:{function}')}:1"
        raise NotImplementedError(f"Ref of a {kind} ({name}): add it to Stack.ref")

    def physical_name(self, logical: str) -> str:
        resource = self.resource(logical)
        prop = _NAME_PROPERTY.get(resource["Type"])
        explicit = resource.get("Properties", {}).get(prop) if prop else None
        if explicit is not None:
            return _text(self.resolve(explicit))
        generated = f"{self.name}-{logical}"
        return generated.lower() if resource["Type"] == "AWS::S3::Bucket" else generated

    def get_att(self, logical: str, attribute: str) -> Any:
        kind = self.resource(logical)["Type"]
        if kind.startswith("Custom::") or kind == "AWS::CloudFormation::CustomResource":
            try:
                return self.attributes[logical][attribute]
            except KeyError:
                raise KeyError(
                    f"{logical}.{attribute} is not known yet: run the scenario that creates it first"
                ) from None
        name = self.physical_name(logical) if kind in _NAME_PROPERTY else logical
        a = self.arns
        if kind == "AWS::SQS::Queue" and attribute == "QueueName":
            return name
        if attribute == "Arn":
            arn = {
                "AWS::S3::Bucket": lambda: a.s3_bucket(name),
                "AWS::DynamoDB::Table": lambda: a.table(name),
                "AWS::IAM::Role": lambda: a.role(
                    name, self.resource(logical)["Properties"].get("Path", "/")
                ),
                "AWS::Lambda::Function": lambda: a._arn("lambda", f"function:{name}"),
                "AWS::CloudWatch::Alarm": lambda: a.alarm(name),
                "AWS::SQS::Queue": lambda: a._arn("sqs", name),
                "AWS::SNS::Topic": lambda: a._arn("sns", name),
                "AWS::Logs::LogGroup": lambda: a._arn("logs", f"log-group:{name}:*"),
                "AWS::Events::Rule": lambda: a._arn("events", f"rule/{name}"),
                "AWS::IAM::ManagedPolicy": lambda: (
                    f"arn:{a.partition}:iam::{a.account}:policy/{name}"
                ),
            }.get(kind)
            if arn:
                return arn()
        raise NotImplementedError(
            f"GetAtt {logical}.{attribute} of a {kind}: add it to Stack.get_att"
        )

    # -- principals and policies ---------------------------------------------------------------

    def of_type(self, kind: str) -> list[str]:
        return [k for k, v in self.resources.items() if v["Type"] == kind]

    def role_of(self, principal: str) -> str:
        """The role logical id a principal acts with (a function's execution role, or itself)."""
        resource = self.resource(principal)
        if resource["Type"] == "AWS::IAM::Role":
            return principal
        if resource["Type"] == "AWS::Lambda::Function":
            role = resource["Properties"]["Role"]
            if not (isinstance(role, dict) and "Fn::GetAtt" in role):
                raise NotImplementedError(f"{principal}'s Role is not a GetAtt of a template role")
            return role["Fn::GetAtt"][0]
        raise KeyError(f"{principal} is neither a function nor a role")

    def principals(self) -> list[str]:
        """Every Lambda function, and every role that is not a function's execution role."""
        functions = self.of_type("AWS::Lambda::Function")
        function_roles = {self.role_of(f) for f in functions}
        return sorted(functions) + sorted(set(self.of_type("AWS::IAM::Role")) - function_roles)

    def principal_of_role_arn(self, arn: str) -> str | None:
        for principal in self.principals():
            if self.get_att(self.role_of(principal), "Arn") == arn:
                return principal
        return None

    def policies(self, principal: str) -> list[tuple[str, list[dict[str, Any]]]]:
        """(policy name, statements) of every identity policy of the principal's role: inline
        policies, managed policies (AWS-managed ones from moto's copy of their documents) and
        AWS::IAM::Policy resources attached to the role."""
        role = self.role_of(principal)
        props = self.resource(role)["Properties"]
        if "PermissionsBoundary" in props:
            raise UnsupportedPolicy(f"{role} has a permissions boundary: evaluate it too")
        found = [
            (p["PolicyName"], _statements(self.resolve(p["PolicyDocument"])))
            for p in props.get("Policies", [])
        ]
        aws_managed = _aws_managed_policies()
        for arn in self.resolve(props.get("ManagedPolicyArns", [])):
            name = arn.rsplit("/", 1)[-1]
            if arn.startswith(f"arn:{self.arns.partition}:iam::aws:policy/"):
                found.append((name, _statements(aws_managed[name]["Document"])))
                continue
            local = [
                m for m in self.of_type("AWS::IAM::ManagedPolicy") if self.get_att(m, "Arn") == arn
            ]
            if not local:
                raise UnsupportedPolicy(
                    f"{role}: managed policy {arn} is neither AWS's nor the template's"
                )
            document = self.resolve(self.resource(local[0])["Properties"]["PolicyDocument"])
            found.append((local[0], _statements(document)))
        for policy in self.of_type("AWS::IAM::Policy"):
            policy_props = self.resource(policy)["Properties"]
            if {"Ref": role} in policy_props.get("Roles", []):
                found.append((policy, _statements(self.resolve(policy_props["PolicyDocument"]))))
        return found

    def resource_policies(self) -> list[tuple[str, list[dict[str, Any]]]]:
        kinds = ("AWS::S3::BucketPolicy", "AWS::SQS::QueuePolicy", "AWS::SNS::TopicPolicy")
        return [
            (name, _statements(self.resolve(self.resource(name)["Properties"]["PolicyDocument"])))
            for kind in kinds
            for name in self.of_type(kind)
        ]

    def environment(self, function: str) -> dict[str, str]:
        variables = (
            self.resource(function)["Properties"].get("Environment", {}).get("Variables", {})
        )
        return {k: _text(v) for k, v in self.resolve(variables).items()}


@functools.cache
def _aws_managed_policies() -> dict[str, Any]:
    return json.loads(aws_managed_policies_data)


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        raise TypeError(f"not a scalar after resolution: {value!r}")
    return str(value)


def _statements(document: dict[str, Any]) -> list[dict[str, Any]]:
    statements = document["Statement"]
    return statements if isinstance(statements, list) else [statements]


# ================================================================================ evaluation


def glob_match(pattern: str, value: str, *, case_sensitive: bool = True) -> bool:
    """IAM wildcards: ``*`` any run of characters, ``?`` one character, nothing else special."""
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    flags = re.DOTALL | (0 if case_sensitive else re.IGNORECASE)
    return re.fullmatch(regex, value, flags) is not None


def arn_like(pattern: str, value: str) -> bool:
    """ArnEquals/ArnLike: each of the six colon-separated parts matched on its own."""
    expected, actual = pattern.split(":", 5), value.split(":", 5)
    return len(expected) == len(actual) == 6 and all(map(glob_match, expected, actual))


#: The condition operators this evaluator implements (the template uses StringEquals,
#: StringLike, ArnEquals and Bool); any other operator, a set qualifier (ForAnyValue:,
#: ForAllValues:) or a policy variable is refused, not guessed.
CONDITION_OPERATORS: dict[str, Callable[[str, str], bool]] = {
    "StringEquals": lambda expected, actual: expected == actual,
    "StringLike": glob_match,
    "ArnEquals": arn_like,
    "ArnLike": arn_like,
    "Bool": lambda expected, actual: expected.lower() == actual.lower(),
}


def conditions_hold(block: dict[str, Any], context: dict[str, str]) -> bool:
    """Every operator's every key must match (AND); any one value of a key's list may
    (OR). A key the request does not carry fails its test unless the operator ends in
    ...IfExists, as in IAM."""
    present = {k.lower(): v for k, v in context.items()}
    for operator, tests in block.items():
        base = operator.removesuffix("IfExists")
        if base not in CONDITION_OPERATORS:
            raise UnsupportedPolicy(f"condition operator {operator} is not implemented")
        compare = CONDITION_OPERATORS[base]
        for key, expected in tests.items():
            values = [_text(v) for v in (expected if isinstance(expected, list) else [expected])]
            if any("${" in v for v in values):
                raise UnsupportedPolicy(f"policy variables in {operator} {key}")
            actual = present.get(key.lower())
            if actual is None:
                if operator.endswith("IfExists"):
                    continue
                return False
            if not any(compare(v, actual) for v in values):
                return False
    return True


class _Statement(IAMPolicyStatement):
    """moto's statement evaluation (Effect, Action/NotAction, Resource) with IAM's wildcard
    rules: moto compiles patterns as unescaped regular expressions (so ``.``, ``+``, ``?``
    mean something else) and compares actions case-sensitively, where IAM does not."""

    def _check_element_matches(self, statement_element: Any, value: str) -> bool:
        patterns = self._statement[statement_element]
        patterns = patterns if isinstance(patterns, list) else [patterns]
        case_sensitive = statement_element not in ("Action", "NotAction")
        return any(glob_match(str(p), value, case_sensitive=case_sensitive) for p in patterns)


@dataclass
class Access:
    principal: str
    action: str
    resource: str
    context: dict[str, str]
    source: str  # the call or the derivation it comes from

    def __str__(self) -> str:
        keys = {k: v for k, v in self.context.items() if not k.startswith("aws:")}
        return (
            f"{self.action} on {self.resource}"
            + (f" with {keys}" if keys else "")
            + f" ({self.source})"
        )


@dataclass(frozen=True)
class Grant:
    """One Action or Resource entry of an Allow statement of a principal's policies."""

    principal: str
    statement: str  # "<policy name>/<Sid or #index>"
    element: str  # "Action" or "Resource"
    pattern: str

    def __str__(self) -> str:
        return f"{self.statement}: {self.element} {self.pattern}"


@dataclass
class Decision:
    access: Access
    allowed_by: list[tuple[str, list[str], list[str]]]  # (statement, actions, resources matched)
    denied_by: list[str]

    @property
    def allowed(self) -> bool:
        return bool(self.allowed_by) and not self.denied_by

    def __str__(self) -> str:
        why = (
            f"explicitly denied by {self.denied_by}" if self.denied_by else "no statement allows it"
        )
        return f"{self.access.principal}: {self.access} -> DENIED ({why})"


class PolicyEvaluator:
    """Identity policies of the principal plus the template's resource policies (statements
    for Principal "*"): an explicit Deny wins, else an Allow allows, else implicit deny."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self._identity: dict[str, list[tuple[str, dict[str, Any]]]] = {}
        self._resource = [
            (f"{name}/{s.get('Sid', f'#{i}')}", s)
            for name, statements in stack.resource_policies()
            for i, s in enumerate(statements)
            if s.get("Principal") in ("*", {"AWS": "*"})
        ]

    def identity(self, principal: str) -> list[tuple[str, dict[str, Any]]]:
        if principal not in self._identity:
            self._identity[principal] = [
                (f"{name}/{s.get('Sid', f'#{i}')}", s)
                for name, statements in self.stack.policies(principal)
                for i, s in enumerate(statements)
            ]
            for ref, s in self._identity[principal]:
                if "Resource" not in s or {"NotResource", "NotPrincipal", "Principal"} & set(s):
                    raise UnsupportedPolicy(f"{principal} {ref}: only Action/Resource statements")
        return self._identity[principal]

    def decide(self, access: Access) -> Decision:
        allowed_by: list[tuple[str, list[str], list[str]]] = []
        denied_by: list[str] = []
        for ref, statement in self.identity(access.principal) + self._resource:
            if "NotResource" in statement:
                raise UnsupportedPolicy(f"{ref}: NotResource")
            core = {k: v for k, v in statement.items() if k not in ("Condition", "Principal")}
            result = _Statement(core).is_action_permitted(access.action, access.resource)
            if result is PermissionResult.NEUTRAL:
                continue
            if not conditions_hold(statement.get("Condition", {}), access.context):
                continue
            if result is PermissionResult.DENIED:
                denied_by.append(ref)
                continue
            actions = [
                a
                for a in _as_list(statement.get("Action", []))
                if glob_match(a, access.action, case_sensitive=False)
            ]
            resources = [
                r for r in _as_list(statement["Resource"]) if glob_match(r, access.resource)
            ]
            allowed_by.append((ref, actions, resources))
        return Decision(access, allowed_by, denied_by)

    def grants(self, principal: str) -> list[Grant]:
        found = []
        for ref, statement in self.identity(principal):
            if statement["Effect"] != "Allow":
                continue
            for element in ("Action", "Resource"):
                for pattern in _as_list(statement.get(element, [])):
                    found.append(Grant(principal, ref, element, pattern))
        return found


def _as_list(value: Any) -> list[str]:
    return value if isinstance(value, list) else [value]


# ================================================================================ analysis


@dataclass
class Analysis:
    stack: Stack
    calls: list[Call]
    invocations: list[tuple[str, str | None]]
    accesses: list[Access]
    decisions: list[Decision]
    problems: list[str]
    unattributed: list[Call]
    grants: dict[str, list[Grant]]

    def denied(self, principal: str) -> list[Decision]:
        return [d for d in self.decisions if d.access.principal == principal and not d.allowed]

    def used(self, principal: str) -> set[Grant]:
        found = set()
        for decision in self.decisions:
            if decision.access.principal != principal:
                continue
            for statement, actions, resources in decision.allowed_by:
                found.update(Grant(principal, statement, "Action", a) for a in actions)
                found.update(Grant(principal, statement, "Resource", r) for r in resources)
        return found

    def unused(self, principal: str) -> list[Grant]:
        used = self.used(principal)
        return [g for g in self.grants.get(principal, []) if g not in used]


def global_context(stack: Stack, principal: str) -> dict[str, str]:
    role = stack.get_att(stack.role_of(principal), "Arn")
    return {
        "aws:SecureTransport": "true",  # boto3 talks HTTPS
        "aws:RequestedRegion": stack.arns.region,
        "aws:PrincipalAccount": stack.arns.account,
        "aws:PrincipalArn": role,
    }


def analyse(calls: list[Call], invocations: list[tuple[str, str | None]], stack: Stack) -> Analysis:
    """Map every recorded call to IAM needs (plus what services do with the roles), then
    decide each with the stack's policies."""
    ctx = MappingContext(stack.arns, calls)
    accesses: list[Access] = []
    problems: list[str] = []
    unattributed = [c for c in calls if c.principal is None]

    def add(
        principal: str, action: str, resource: str, context: dict[str, str], source: str
    ) -> None:
        accesses.append(
            Access(
                principal, action, resource, {**global_context(stack, principal), **context}, source
            )
        )

    for call in calls:
        if call.principal == HARNESS and (call.service, call.operation) in ACCOUNT_CHANGES:
            ACCOUNT_CHANGES[(call.service, call.operation)](call, ctx)
        if call.principal is None or call.principal == HARNESS:
            continue
        where = f"{call.principal}: {call.service}.{call.operation} [{call.scenario}]"
        mapper = OPERATIONS.get((call.service, call.operation))
        if mapper is None:
            problems.append(
                f"{where}: no IAM mapping; add ({call.service!r}, {call.operation!r}) to "
                "OPERATIONS in tests/support/aws_calls.py"
            )
            continue
        try:
            needs = mapper(call, ctx)
            needs += pass_role_needs(call, needs)
            uses = []
            if call.error is None:  # a refused request makes no service act
                deriver = ROLE_USES.get((call.service, call.operation))
                if deriver is None and role_arns(call.params):
                    raise UnmappedRequest(
                        "carries a role: add what the service does with it to ROLE_USES"
                    )
                uses = deriver(call, ctx) if deriver else []
        except (UnmappedRequest, KeyError) as error:
            problems.append(f"{where}: {error}")
            continue
        source = f"{call.service}.{call.operation}"
        for action, resource, context in needs:
            add(call.principal, action, resource, context, source)
        for role_arn, action, resource, context, why in uses:
            principal = stack.principal_of_role_arn(role_arn)
            if principal is None:
                problems.append(f"{where}: passes {role_arn}, which is not a role of the template")
                continue
            add(principal, action, resource, context, f"{call.principal} {source}: {why}")

    for function in sorted({p for p, _ in invocations}):
        if stack.resource(function)["Type"] != "AWS::Lambda::Function":
            continue
        try:
            for action, resource, context, why in lambda_platform_needs(stack, function):
                add(function, action, resource, context, why)
        except UnmappedRequest as error:
            problems.append(str(error))

    evaluator = PolicyEvaluator(stack)
    decisions = [evaluator.decide(access) for access in accesses]
    grants = {principal: evaluator.grants(principal) for principal in stack.principals()}
    return Analysis(stack, calls, invocations, accesses, decisions, problems, unattributed, grants)
