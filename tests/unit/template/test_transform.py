"""The template after the SAM transform (offline): IAM scopes, rule filters, storage settings,
API authorization and the environment each function gets."""

from __future__ import annotations

import json
import re
from typing import Any

import boto3
import pytest
from moto import mock_aws

from retraining.settings import Settings
from retraining.stores.dynamo import table_definition

ACCOUNT = "123456789012"
REGION = "us-east-1"
SAGEMAKER_ROLE = {"Fn::GetAtt": ["SageMakerExecutionRole", "Arn"]}
JOB_FUNCTIONS = {
    "ApiFunction",
    "StartScheduledRunFunction",
    "TuningJobStateChangeFunction",
    "TrainingJobStateChangeFunction",
    "ReconcileFunction",
}
ORCHESTRATION_FUNCTIONS = JOB_FUNCTIONS | {"EndpointStateChangeFunction"}
READ_VERBS = ("Describe", "List", "Get", "BatchGet", "BatchCheck")


# ------------------------------------------------------------------ helpers
def resources_of(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in template["Resources"].items() if v["Type"] == kind}


def resolve(value: Any, template: dict[str, Any]) -> Any:
    """Parameters at their defaults, pseudo parameters fixed: enough to read ARNs and patterns."""
    params = {k: str(v.get("Default", "")) for k, v in template["Parameters"].items()}
    params.update({"AWS::Region": REGION, "AWS::AccountId": ACCOUNT, "AWS::Partition": "aws"})
    if isinstance(value, dict) and set(value) == {"Ref"}:
        return params.get(value["Ref"], f"<{value['Ref']}>")
    if isinstance(value, dict) and set(value) == {"Fn::Sub"} and isinstance(value["Fn::Sub"], str):
        return re.sub(
            r"\$\{([^}]+)\}", lambda m: params.get(m.group(1), f"<{m.group(1)}>"), value["Fn::Sub"]
        )
    if isinstance(value, dict):
        return {k: resolve(v, template) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve(v, template) for v in value]
    return value


def statements(template: dict[str, Any], role: str) -> list[dict[str, Any]]:
    found = []
    for policy in template["Resources"][role]["Properties"].get("Policies", []):
        for statement in policy["PolicyDocument"]["Statement"]:
            found.append(
                {
                    **statement,
                    "Action": _as_list(statement["Action"]),
                    "Resource": _as_list(statement["Resource"]),
                }
            )
    return found


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def actions_of(template: dict[str, Any], role: str) -> set[str]:
    return {action for s in statements(template, role) for action in s["Action"]}


def all_roles(template: dict[str, Any]) -> list[str]:
    return list(resources_of(template, "AWS::IAM::Role"))


# ------------------------------------------------------------------ IAM
def test_sagemaker_actions_are_scoped_to_this_stacks_names(transformed: dict[str, Any]) -> None:
    prefix = "arn:aws:sagemaker:us-east-1:123456789012:"
    allowed = re.compile(
        rf"^{re.escape(prefix)}("
        r"(hyper-parameter-tuning-job|training-job|model|endpoint-config)/cifar100-\*(-data)?"
        r"|endpoint/cifar100-classifier"
        r"|model-package/cifar100-models/\*)$"
    )
    checked = 0
    for role in all_roles(transformed):
        for statement in statements(transformed, role):
            if not any(a.startswith("sagemaker:") for a in statement["Action"]):
                continue
            if statement["Action"] == ["sagemaker:ListModelPackages"]:
                # The SAR lists model-package as optional, but no source says which ARN a
                # list request is checked against: "*" only.
                assert resolve(statement["Resource"], transformed) == ["*"], role
                continue
            for resource in resolve(statement["Resource"], transformed):
                assert isinstance(resource, str), (role, resource)
                assert allowed.match(resource), (role, resource)
                checked += 1
    assert checked >= 10


def test_pass_role_only_for_the_sagemaker_role_and_service(transformed: dict[str, Any]) -> None:
    passers = set()
    for role in all_roles(transformed):
        for statement in statements(transformed, role):
            if not any(a in ("iam:PassRole", "iam:*", "*") for a in statement["Action"]):
                continue
            assert statement["Action"] == ["iam:PassRole"], (role, statement)
            assert statement["Resource"] == [SAGEMAKER_ROLE], (role, statement)
            assert statement["Condition"] == {
                "StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}
            }
            passers.add(role)
    # Which functions need it is test_iam_evaluation's finding (every grant used by a call).
    assert passers


def test_no_wildcard_resource_on_a_write_action(transformed: dict[str, Any]) -> None:
    for role in all_roles(transformed):
        for statement in statements(transformed, role):
            if statement["Effect"] != "Allow" or "*" not in statement["Resource"]:
                continue
            writes = [a for a in statement["Action"] if not a.split(":")[1].startswith(READ_VERBS)]
            # The one write with no resource type is kept inside a condition.
            if writes == ["cloudwatch:PutMetricData"]:
                assert "cloudwatch:namespace" in json.dumps(statement["Condition"])
                continue
            assert writes == [], (role, statement)


def test_sagemaker_role_trusts_only_sagemaker_from_this_account(
    transformed: dict[str, Any],
) -> None:
    trust = transformed["Resources"]["SageMakerExecutionRole"]["Properties"][
        "AssumeRolePolicyDocument"
    ]["Statement"]
    assert [s["Principal"] for s in trust] == [{"Service": "sagemaker.amazonaws.com"}]
    assert trust[0]["Condition"] == {
        "StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}
    }


# ------------------------------------------------------------------ rules
def _pattern(transformed: dict[str, Any], rule: str) -> dict[str, Any]:
    props = transformed["Resources"][rule]["Properties"]
    return resolve(props["EventPattern"], transformed)


def _sagemaker_event(detail_type: str, detail: dict[str, Any]) -> dict[str, Any]:
    return {
        "version": "0",
        "id": "5f4e0b4c-0000-4000-8000-000000000000",
        "detail-type": detail_type,
        "source": "aws.sagemaker",
        "account": ACCOUNT,
        "time": "2026-11-28T03:05:12Z",
        "region": REGION,
        "resources": [],
        "detail": detail,
    }


def _training_event(name: str, status: str, tags: Any) -> dict[str, Any]:
    return _sagemaker_event(
        "SageMaker Training Job State Change",
        {
            "TrainingJobName": name,
            "TrainingJobArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:training-job/{name}",
            "TrainingJobStatus": status,
            "SecondaryStatus": status,
            "Tags": tags,
        },
    )


@pytest.fixture
def matches(transformed: dict[str, Any]) -> Any:
    """Routes an event through moto's EventBridge with the rule's pattern: True if the rule's
    target (an SQS queue here) receives it. (moto has no TestEventPattern.)"""
    with mock_aws():
        events = boto3.client("events", region_name=REGION)
        sqs = boto3.client("sqs", region_name=REGION)

        def check(rule: str, event: dict[str, Any]) -> bool:
            queue = sqs.create_queue(QueueName=f"q{check.calls}")["QueueUrl"]
            arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])
            name = f"{rule[:40]}-{check.calls}"
            check.calls += 1
            pattern = json.dumps(_pattern(transformed, rule))
            events.put_rule(Name=name, EventPattern=pattern, State="ENABLED")
            events.put_targets(
                Rule=name, Targets=[{"Id": "q", "Arn": arn["Attributes"]["QueueArn"]}]
            )
            events.put_events(
                Entries=[
                    {
                        "Source": event["source"],
                        "DetailType": event["detail-type"],
                        "Detail": json.dumps(event["detail"]),
                    }
                ]
            )
            received = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10)
            return bool(received.get("Messages"))

        check.calls = 0  # type: ignore[attr-defined]
        yield check


RUN = "r20261128030512ab12"


@pytest.mark.parametrize("shape", ["map", "list", "absent"])
def test_training_rule_matches_this_stacks_final_and_data_jobs_by_name(
    matches: Any, shape: str
) -> None:
    """The Tags field's shape is disputed (a map in the developer guide's samples, a list of
    Key/Value in the schema registry), so the rule matches names only, whatever the tags."""
    rule = "TrainingJobStateChangeFunctionFinalTrainingJobFinished"

    def event(name: str, status: str, stage: str) -> dict[str, Any]:
        tags = {"project": "cifar100", "run-id": RUN, "stage": stage}
        shaped: Any = {
            "map": tags,
            "list": [{"Key": k, "Value": v} for k, v in tags.items()],
            "absent": {},
        }[shape]
        return _training_event(name, status, shaped)

    for status in ("Completed", "Failed", "Stopped"):
        assert matches(rule, event(f"cifar100-{RUN}-final", status, "final"))
        assert matches(rule, event(f"cifar100-{RUN}-data", status, "data"))
    assert not matches(rule, event(f"cifar100-{RUN}-final", "InProgress", "final"))
    # HPO trials emit the same event type (<tuning job>-<nnn>-<hash>): never a deploy.
    assert not matches(rule, event(f"cifar100-{RUN}-001-abcd1234", "Completed", "hpo"))
    # Another stack's jobs.
    assert not matches(rule, event(f"other-{RUN}-final", "Completed", "final"))
    assert not matches(rule, event(f"xcifar100-{RUN}-final", "Completed", "final"))


def test_tuning_rule_matches_finished_jobs_of_this_stack(matches: Any) -> None:
    rule = "TuningJobStateChangeFunctionTuningJobFinished"

    def event(name: str, status: str) -> dict[str, Any]:
        return _sagemaker_event(
            "SageMaker HyperParameter Tuning Job State Change",
            {
                "HyperParameterTuningJobName": name,
                "HyperParameterTuningJobStatus": status,
                "TrainingJobStatusCounters": {"Completed": 8},
                "Tags": {"project": "cifar100", "run-id": RUN, "stage": "hpo"},
            },
        )

    for status in ("Completed", "Failed", "Stopped"):
        assert matches(rule, event(f"cifar100-{RUN}", status))
    assert not matches(rule, event(f"cifar100-{RUN}", "InProgress"))
    assert not matches(rule, event(f"someoneelse-{RUN}", "Completed"))


def test_endpoint_rule_matches_only_this_endpoint(matches: Any) -> None:
    rule = "EndpointStateChangeFunctionEndpointStateChanged"

    def event(name: str, status: str) -> dict[str, Any]:
        return _sagemaker_event(
            "SageMaker Endpoint State Change", {"EndpointName": name, "EndpointStatus": status}
        )

    assert matches(rule, event("cifar100-classifier", "InService"))
    assert matches(rule, event("cifar100-classifier", "Failed"))
    assert not matches(rule, event("another-endpoint", "InService"))


def test_every_rule_target_has_retries_and_the_dead_letter_queue(
    transformed: dict[str, Any],
) -> None:
    rules = resources_of(transformed, "AWS::Events::Rule")
    assert len(rules) == 7
    for name, rule in rules.items():
        (target,) = rule["Properties"]["Targets"]
        assert target["RetryPolicy"]["MaximumRetryAttempts"] >= 1, name
        assert target["DeadLetterConfig"]["Arn"] == {"Fn::GetAtt": ["DeadLetterQueue", "Arn"]}
    # The queue policy lets exactly these rules write to the queue.
    policy = transformed["Resources"]["DeadLetterQueuePolicy"]["Properties"]["PolicyDocument"]
    sources = policy["Statement"][0]["Condition"]["ArnEquals"]["aws:SourceArn"]
    # The drift and approval rules exist only when their parameters turn them on.
    named = [s["Fn::If"][1] if "Fn::If" in s else s for s in sources]
    assert sorted(s["Fn::GetAtt"][0] for s in named) == sorted(rules)
    # Handler failures (async invocations) end in the same queue after Lambda's own retries.
    for name in ORCHESTRATION_FUNCTIONS - {"ApiFunction"}:
        props = transformed["Resources"][name]["Properties"]
        assert props["DeadLetterConfig"]["TargetArn"] == {"Fn::GetAtt": ["DeadLetterQueue", "Arn"]}


def test_schedule_is_parameterised_and_can_be_off(transformed: dict[str, Any]) -> None:
    rule = transformed["Resources"]["StartScheduledRunFunctionRetrainSchedule"]["Properties"]
    assert rule["ScheduleExpression"] == {"Ref": "RetrainSchedule"}
    assert rule["State"] == {"Fn::If": ["ScheduleIsEnabled", "ENABLED", "DISABLED"]}
    assert transformed["Conditions"]["ScheduleIsEnabled"] == {
        "Fn::Equals": [{"Ref": "RetrainScheduleEnabled"}, "true"]
    }


# ------------------------------------------------------------------ API
def test_jobs_routes_need_iam_and_predict_defaults_to_iam(transformed: dict[str, Any]) -> None:
    body = transformed["Resources"]["HttpApi"]["Properties"]["Body"]
    paths = body["paths"]
    for path, method in [
        ("/jobs/tune", "post"),
        ("/jobs", "get"),
        ("/jobs/{run_id}", "get"),
        ("/models", "get"),
        ("/models/current", "get"),
        ("/models/{version}", "get"),
        ("/models/{version}/deploy", "post"),
        ("/models/{version}/approve", "post"),
    ]:
        assert paths[path][method]["security"] == [{"AWS_IAM": []}], path
    assert paths["/predict"]["post"]["security"] == {
        "Fn::If": ["PredictIsPublic", [], [{"AWS_IAM": []}]]
    }
    assert transformed["Parameters"]["PredictAuth"]["Default"] == "AWS_IAM"
    assert transformed["Conditions"]["PredictIsPublic"] == {
        "Fn::Equals": [{"Ref": "PredictAuth"}, "NONE"]
    }
    assert paths["/health"]["get"]["security"] == [{"NONE": []}]  # SAM's marker for no auth
    assert set(paths) == {
        "/predict",
        "/jobs/tune",
        "/jobs",
        "/jobs/{run_id}",
        "/models",
        "/models/current",
        "/models/{version}",
        "/models/{version}/deploy",
        "/models/{version}/approve",
        "/health",
    }


def test_api_stage_is_throttled_and_logged(transformed: dict[str, Any]) -> None:
    (stage,) = resources_of(transformed, "AWS::ApiGatewayV2::Stage").values()
    props = stage["Properties"]
    assert props["DefaultRouteSettings"]["ThrottlingRateLimit"] == {"Ref": "ApiThrottleRateLimit"}
    assert props["DefaultRouteSettings"]["ThrottlingBurstLimit"] == {"Ref": "ApiThrottleBurstLimit"}
    assert props["RouteSettings"]["POST /jobs/tune"]["ThrottlingRateLimit"] == {
        "Ref": "TuneThrottleRateLimit"
    }
    assert props["AccessLogSettings"]["DestinationArn"] == {"Fn::GetAtt": ["ApiAccessLogs", "Arn"]}


# ------------------------------------------------------------------ storage
def test_bucket_is_private_encrypted_versioned_and_tls_only(transformed: dict[str, Any]) -> None:
    bucket = transformed["Resources"]["ArtifactBucket"]["Properties"]
    assert set(bucket["PublicAccessBlockConfiguration"].values()) == {True}
    assert len(bucket["PublicAccessBlockConfiguration"]) == 4
    assert bucket["VersioningConfiguration"] == {"Status": "Enabled"}
    sse = bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]
    assert sse["ServerSideEncryptionByDefault"]["SSEAlgorithm"] in ("AES256", "aws:kms")
    (deny,) = transformed["Resources"]["ArtifactBucketPolicy"]["Properties"]["PolicyDocument"][
        "Statement"
    ]
    assert deny["Effect"] == "Deny"
    assert deny["Action"] == "s3:*"
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def test_table_matches_the_run_store_schema(transformed: dict[str, Any]) -> None:
    table = transformed["Resources"]["RunsTable"]["Properties"]
    expected = table_definition("ignored")
    for key in ("BillingMode", "AttributeDefinitions", "KeySchema", "GlobalSecondaryIndexes"):
        assert table[key] == expected[key], key
    assert table["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert table["SSESpecification"] == {"SSEEnabled": True}


# ------------------------------------------------------------------ configuration
# Values only the stack knows; the other Settings fields have defaults that suit the cloud.
STACK_SETTINGS = {
    "resource_prefix",
    "runs_table",
    "artifact_bucket",
    "endpoint_name",
    "endpoint_variant_name",
    "sagemaker_role_arn",
    "training_image_uri",
    "inference_image_uri",
    "debugger_rule_image_uri",
    "train_data_s3_uri",
    "test_data_s3_uri",
    "training_instance_type",
    "tuning_instance_type",
    "endpoint_instance_type",
    "endpoint_instance_count",
    "inference_precision",  # the model packages' container environment
    "allowed_instance_types",
    "max_jobs",
    "max_parallel_jobs",
    "spot_training",
    "debugger_enabled",
    "deployment_strategy",
    "gate_min_accuracy",
    "gate_margin",
    "rollback_alarm_names",
}
SOURCE_URIS = {"training_source_s3_uri", "inference_source_s3_uri"}
# Read by libraries or reserved for the deploy step, not by Settings.
OTHER_VARIABLES = {
    "POWERTOOLS_SERVICE_NAME",
    "POWERTOOLS_METRICS_NAMESPACE",
    "ENDPOINT_MIN_CAPACITY",
    "ENDPOINT_MAX_CAPACITY",
    "ENDPOINT_TARGET_INVOCATIONS",
}


def _placeholder(value: Any, template: dict[str, Any]) -> str:
    """A deploy-time value as a string: parameter defaults, names for resource references."""
    value = resolve(value, template)
    if isinstance(value, dict) and "Fn::If" in value:
        return _placeholder(value["Fn::If"][1], template)
    if isinstance(value, dict):
        return "placeholder-" + re.sub(r"[^a-zA-Z0-9]+", "-", json.dumps(value)).strip("-")
    return str(value)


def test_every_setting_reaches_the_functions_that_read_it(transformed: dict[str, Any]) -> None:
    assert set(Settings.model_fields) >= STACK_SETTINGS | SOURCE_URIS
    for name in ORCHESTRATION_FUNCTIONS:
        env = transformed["Resources"][name]["Properties"]["Environment"]["Variables"]
        needed = STACK_SETTINGS | (SOURCE_URIS if name in JOB_FUNCTIONS else set())
        missing = {f.upper() for f in needed} - set(env)
        assert not missing, f"{name} lacks {sorted(missing)}"
        unknown = set(env) - {f.upper() for f in Settings.model_fields} - OTHER_VARIABLES
        assert not unknown, f"{name} sets variables nothing reads: {sorted(unknown)}"
        # The values the template sets (parameters at their defaults) pass Settings' validation.
        values = {key: _placeholder(value, transformed) for key, value in env.items()}
        settings = Settings(
            **{key.lower(): v for key, v in values.items() if key.lower() in Settings.model_fields}
        )
        assert settings.max_jobs == 8
        assert settings.debugger_enabled is False
        assert len(settings.rollback_alarm_names) == 2
        # Lambda caps all variables of a function at 4 KB.
        assert sum(len(k) + len(v) for k, v in values.items()) < 4096
    api = transformed["Resources"]["ApiFunction"]["Properties"]["Environment"]["Variables"]
    assert api["TRAINING_SOURCE_S3_URI"] == {"Fn::GetAtt": ["SourceBundle", "TrainingSourceS3Uri"]}


def test_source_bundle_reruns_when_its_code_changes(transformed: dict[str, Any]) -> None:
    bundle = transformed["Resources"]["SourceBundle"]["Properties"]
    version = bundle["BundleVersion"]["Ref"]
    assert transformed["Resources"][version]["Type"] == "AWS::Lambda::Version"
    assert bundle["Bucket"] == {"Ref": "ArtifactBucket"}


def test_rollback_alarms_watch_the_endpoint(transformed: dict[str, Any]) -> None:
    for alarm, metric in [
        ("EndpointErrorsAlarm", "Invocation5XXErrors"),
        ("EndpointLatencyAlarm", "ModelLatency"),
    ]:
        props = transformed["Resources"][alarm]["Properties"]
        assert (props["Namespace"], props["MetricName"]) == ("AWS/SageMaker", metric)
        dims = {d["Name"]: d["Value"] for d in props["Dimensions"]}
        assert dims == {"EndpointName": {"Ref": "EndpointName"}, "VariantName": "AllTraffic"}


def test_deploy_time_rules_and_dead_letter_alerts(transformed: dict[str, Any]) -> None:
    rules = transformed["Rules"]
    assert rules["CanaryNeedsTwoInstances"]["RuleCondition"] == {
        "Fn::Equals": [{"Ref": "DeploymentStrategy"}, "canary"]
    }
    assert rules["DebuggerNeedsRuleImage"]["RuleCondition"] == {
        "Fn::Equals": [{"Ref": "DebuggerEnabled"}, "true"]
    }
    alarm = transformed["Resources"]["DeadLetterQueueAlarm"]["Properties"]
    assert alarm["AlarmActions"] == [{"Ref": "OperationsTopic"}]


def test_each_functions_timeout_is_what_its_settings_budget_against(
    transformed: dict[str, Any],
) -> None:
    """FUNCTION_TIMEOUT_S is the function's Lambda Timeout: the settings check that one AWS
    call's worst case (attempts x (connect + read)) fits is only as true as that value."""
    functions = resources_of(transformed, "AWS::Lambda::Function")
    checked = 0
    for name, function in functions.items():
        props = function["Properties"]
        env = props.get("Environment", {}).get("Variables", {})
        if name == "SourceBundleFunction":
            continue  # no Settings: it makes S3 calls only, within its 300 s
        assert int(env["FUNCTION_TIMEOUT_S"]) == props["Timeout"], name
        Settings(_env_file=None, function_timeout_s=props["Timeout"])  # the default budget fits
        checked += 1
    assert checked == 8


def test_cloudwatch_alarms_can_publish_to_the_encrypted_operations_topic(
    transformed: dict[str, Any],
) -> None:
    """SNS Developer Guide, "Enable compatibility between event sources from AWS services and
    encrypted topics": a customer managed key whose policy lets the service principal
    (cloudwatch.amazonaws.com) call kms:GenerateDataKey* and kms:Decrypt. The AWS managed
    alias/aws/sns key's policy cannot be changed to allow it."""
    topic = transformed["Resources"]["OperationsTopic"]["Properties"]
    assert topic["KmsMasterKeyId"] == {"Ref": "OperationsTopicKey"}
    key = transformed["Resources"]["OperationsTopicKey"]["Properties"]
    assert key["EnableKeyRotation"] is True
    statements = key["KeyPolicy"]["Statement"]
    (cloudwatch,) = [
        s for s in statements if s["Principal"] == {"Service": "cloudwatch.amazonaws.com"}
    ]
    assert cloudwatch["Effect"] == "Allow"
    assert sorted(cloudwatch["Action"]) == ["kms:Decrypt", "kms:GenerateDataKey*"]
    # Without the account statement nobody could ever administer (or delete) the key.
    assert any(s["Action"] == "kms:*" and "AWS" in s["Principal"] for s in statements)


def test_reconcile_runs_on_its_own_schedule_without_lambda_retries(
    transformed: dict[str, Any],
) -> None:
    rule = transformed["Resources"]["ReconcileFunctionReconcileSchedule"]["Properties"]
    assert rule["ScheduleExpression"] == {"Ref": "ReconcileSchedule"}
    assert transformed["Parameters"]["ReconcileSchedule"]["Default"] == "rate(5 minutes)"
    (target,) = rule["Targets"]
    assert target["Arn"] == {"Fn::GetAtt": ["ReconcileFunction", "Arn"]}
    # A failed tick is not retried by Lambda: the next tick takes the same step.
    config = resources_of(transformed, "AWS::Lambda::EventInvokeConfig")
    (reconcile,) = [
        c["Properties"]
        for c in config.values()
        if c["Properties"]["FunctionName"] == {"Ref": "ReconcileFunction"}
    ]
    assert reconcile["MaximumRetryAttempts"] == 0
    handler = transformed["Resources"]["ReconcileFunction"]["Properties"]["Handler"]
    assert handler == "orchestration.handlers.reconcile"
