"""AWS behaviours the template relies on (docs/aws-behaviour.md), checked offline on the
template as written and after the SAM transform: schedule expressions, event-pattern
filters, Lambda's asynchronous-invocation settings, SageMaker tagging permissions, and the
size of the custom resource's answer to CloudFormation."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml
from moto import mock_aws

from deploy.source_bundle import handler as source_bundle
from local.rules import _TemplateLoader
from retraining.overrides import TuneOverrides
from retraining.sagemaker import request_bodies
from retraining.settings import Settings

REPO = Path(__file__).resolve().parents[3]


def _written() -> dict[str, Any]:
    return yaml.load((REPO / "template.yaml").read_text(), Loader=_TemplateLoader)


def resources_of(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in template["Resources"].items() if v["Type"] == kind}


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


# -- schedule expressions ---------------------------------------------------------------------

_RATE = re.compile(r"rate\((?P<value>[1-9][0-9]*) (?P<unit>minute|hour|day)(?P<plural>s?)\)")
_CRON = re.compile(r"cron\((?P<fields>[^()]+)\)")


def schedule_problem(expression: str) -> str | None:
    """Why EventBridge would refuse ``expression`` ("Creating a rule that runs on a
    schedule"): a rate's unit is singular for 1 and plural above, a cron has six fields and
    exactly one of day-of-month and day-of-week is ``?``. None when it is valid."""
    if rate := _RATE.fullmatch(expression):
        if (rate["value"] == "1") == bool(rate["plural"]):
            return f"{expression}: the unit is singular for 1 and plural above"
        return None
    if cron := _CRON.fullmatch(expression):
        fields = cron["fields"].split(" ")
        if len(fields) != 6 or "" in fields:
            return f"{expression}: a cron has six fields separated by single spaces"
        _, _, day_of_month, _, day_of_week, _ = fields
        if [day_of_month, day_of_week].count("?") != 1 or fields.count("?") != 1:
            return f"{expression}: exactly one of day-of-month and day-of-week must be ?"
        return None
    return f"{expression}: neither rate(value unit) nor cron(six fields)"


@pytest.mark.parametrize(
    "expression",
    [
        "rate(1 minutes)",
        "rate(5 minute)",
        "rate(0 minutes)",
        "rate(1 second)",
        "rate(7 Days)",
        "rate(7  days)",
        "cron(0 3 * * SUN *)",
        "cron(0 3 ? * ? *)",
        "cron(0 3 ? * SUN)",
        "cron(0 3 1 * ? * 2026)",
        "0 3 ? * SUN *",
    ],
)
def test_the_schedule_check_refuses_what_eventbridge_refuses(expression: str) -> None:
    assert schedule_problem(expression)


def _schedule_expressions(template: dict[str, Any]) -> dict[str, str]:
    """Every schedule a function event uses (a parameter's default, or a literal), and every
    example expression the parameters' descriptions offer to whoever deploys."""
    parameters = template["Parameters"]
    found: dict[str, str] = {}
    for name, resource in template["Resources"].items():
        for event_name, event in (resource.get("Properties", {}).get("Events") or {}).items():
            if event.get("Type") not in ("Schedule", "ScheduleV2"):
                continue
            schedule = event["Properties"]["Schedule"]
            if isinstance(schedule, dict) and set(schedule) == {"Ref"}:
                schedule = parameters[schedule["Ref"]]["Default"]
            found[f"{name}.{event_name}"] = str(schedule)
    for name, spec in parameters.items():
        for n, example in enumerate(
            re.findall(r"(?:rate|cron)\([^()]*\)", spec.get("Description", ""))
        ):
            found[f"{name} description example {n}"] = example
    return found


def test_every_default_and_example_schedule_is_valid() -> None:
    template = _written()
    expressions = _schedule_expressions(template)
    schedules = [k for k in expressions if "description" not in k]
    assert len(schedules) >= 2, expressions  # RetrainSchedule and ReconcileSchedule
    problems = [p for e in expressions.values() if (p := schedule_problem(e))]
    assert not problems
    # Where the parameter constrains the value, its default obeys the constraint.
    for name in ("RetrainSchedule", "ReconcileSchedule"):
        spec = template["Parameters"][name]
        if "AllowedPattern" in spec:
            assert re.fullmatch(spec["AllowedPattern"], spec["Default"]), name


# -- event patterns: one operator per filter object -------------------------------------------

#: EventBridge's content-filter operators (the operators page; aws/event-ruler).
OPERATORS = {
    "prefix",
    "suffix",
    "equals-ignore-case",
    "wildcard",
    "anything-but",
    "numeric",
    "cidr",
    "exists",
}


def _resolved(value: Any, template: dict[str, Any]) -> Any:
    """Parameters at their defaults: a ``Ref``/``Fn::Sub`` in a pattern is a string value at
    deploy time, not a filter object."""
    defaults = {k: str(v.get("Default", "")) for k, v in template["Parameters"].items()}
    defaults.update({"AWS::Region": "us-east-1", "AWS::AccountId": "123456789012"})
    if isinstance(value, list):
        return [_resolved(v, template) for v in value]
    if isinstance(value, dict):
        if set(value) == {"Ref"}:
            return defaults[value["Ref"]]
        if set(value) == {"Fn::Sub"} and isinstance(value["Fn::Sub"], str):
            return re.sub(r"\$\{([^}]+)\}", lambda m: defaults[m.group(1)], value["Fn::Sub"])
        return {k: _resolved(v, template) for k, v in value.items()}
    return value


def filter_objects(pattern: Any, where: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every object inside a pattern's value lists (the filter objects), with its path;
    ``$or`` lists hold sub-patterns, which are walked in turn."""
    if not isinstance(pattern, dict):
        return
    for key, value in pattern.items():
        path = f"{where}.{key}" if where else key
        if key == "$or":
            for n, branch in enumerate(value):
                yield from filter_objects(branch, f"{path}[{n}]")
        elif isinstance(value, dict):
            yield from filter_objects(value, path)
        elif isinstance(value, list):
            for n, item in enumerate(value):
                if isinstance(item, dict):
                    yield f"{path}[{n}]", item
                    # anything-but takes a nested filter object ({"prefix": ...}) too
                    for inner in item.values():
                        if isinstance(inner, dict):
                            yield f"{path}[{n}].{next(iter(item))}", inner


def test_the_filter_walk_finds_a_two_operator_object() -> None:
    pattern = {
        "detail": {
            "name": [{"prefix": "a", "suffix": "b"}],
            "$or": [{"x": [{"anything-but": {"prefix": "a", "suffix": "b"}}]}],
        }
    }
    assert [len(f) for _, f in filter_objects(pattern)] == [2, 1, 2]


def test_no_filter_object_holds_two_operators(transformed: dict[str, Any]) -> None:
    """``{"prefix": "a", "suffix": "b"}`` is refused at deploy time ("Only one key allowed in
    match expression"); an AND on one field must be one wildcard."""
    patterns = {
        name: _resolved(rule["Properties"]["EventPattern"], transformed)
        for name, rule in resources_of(transformed, "AWS::Events::Rule").items()
        if "EventPattern" in rule["Properties"]
    }
    assert len(patterns) >= 3
    found = [(rule, path, f) for rule, p in patterns.items() for path, f in filter_objects(p)]
    assert len(found) >= 3  # the tuning prefix and the two training-name wildcards at least
    for rule, path, operator in found:
        assert len(operator) == 1, (rule, path, operator)
        assert set(operator) <= OPERATORS, (rule, path, operator)
        # CloudFormation once turned `exists: true` and numbers in a pattern into strings
        # (serverless-application-model#1455): a pattern using them needs a deployed check.
        assert not set(operator) & {"exists", "numeric"}, (rule, path, operator)


# -- Lambda asynchronous invocation -----------------------------------------------------------

#: The function invoked by the reconcile schedule: a failed tick is simply taken again by the
#: next tick, so Lambda retries nothing and drops what waited longer than a tick or so.
RECONCILE = "ReconcileFunction"


def _rule_targets(transformed: dict[str, Any]) -> dict[str, list[Any]]:
    """Function logical id -> the Arn of every rule target that invokes it."""
    targets: dict[str, list[Any]] = {}
    for rule in resources_of(transformed, "AWS::Events::Rule").values():
        for target in rule["Properties"]["Targets"]:
            arn = target["Arn"]
            function = (
                arn["Fn::GetAtt"][0] if isinstance(arn, dict) and "Fn::GetAtt" in arn else arn
            )
            targets.setdefault(function, []).append(arn)
    return targets


def test_each_asynchronously_invoked_function_has_the_retry_and_age_it_is_built_for(
    transformed: dict[str, Any],
) -> None:
    functions = resources_of(transformed, "AWS::Lambda::Function")
    targets = _rule_targets(transformed)
    assert RECONCILE in targets
    assert set(targets) <= set(functions)
    configs = {
        c["Properties"]["FunctionName"]["Ref"]: c["Properties"]
        for c in resources_of(transformed, "AWS::Lambda::EventInvokeConfig").values()
    }
    # Every function EventBridge invokes (asynchronously) has an EventInvokeConfig.
    assert set(targets) <= set(configs)
    for function, config in configs.items():
        expected = (0, 300) if function == RECONCILE else (2, 3600)
        got = (config["MaximumRetryAttempts"], config["MaximumEventAgeInSeconds"])
        assert got == expected, function
        assert 0 <= got[0] <= 2  # Lambda's ranges
        assert 60 <= got[1] <= 21600


def test_event_invoke_config_is_on_the_version_the_rules_invoke(
    transformed: dict[str, Any],
) -> None:
    """An EventInvokeConfig applies to one qualifier. The rules target the unqualified
    function ARN, which runs $LATEST: the configuration must be on $LATEST, not on an alias
    (AutoPublishAlias would move SAM's EventInvokeConfig there)."""
    configs = {
        c["Properties"]["FunctionName"]["Ref"]: c["Properties"]
        for c in resources_of(transformed, "AWS::Lambda::EventInvokeConfig").values()
    }
    targets = _rule_targets(transformed)
    aliases = {
        a["Properties"]["FunctionName"]["Ref"]
        for a in resources_of(transformed, "AWS::Lambda::Alias").values()
    }
    for function, arns in targets.items():
        for arn in arns:
            assert arn == {"Fn::GetAtt": [function, "Arn"]}, (function, arn)  # unqualified
        assert configs[function]["Qualifier"] == "$LATEST", function
        assert function not in aliases, function
    # And the permission EventBridge invokes with names the same unqualified function.
    for permission in resources_of(transformed, "AWS::Lambda::Permission").values():
        props = permission["Properties"]
        if props["Principal"] == "events.amazonaws.com":
            assert props["FunctionName"]["Ref"] in targets


# -- IAM: tagging on create is authorised as sagemaker:AddTags --------------------------------

_CREATE_ACTIONS = {
    "CreateHyperParameterTuningJob": "tuning_job_request",
    "CreateTrainingJob": "final_training_request",
    "CreateModel": "model_request",
    "CreateEndpointConfig": "endpoint_config_request",
    "CreateEndpoint": "create_endpoint_request",
}


def _tagged_create_actions() -> set[str]:
    """The Create* actions whose requests, as the code builds them, carry Tags."""
    settings = Settings(_env_file=None, artifact_bucket="b", sagemaker_role_arn="arn:role")
    run_id, overrides = "r20260101000000abcd", TuneOverrides()
    requests = {
        "CreateHyperParameterTuningJob": request_bodies.tuning_job_request(
            settings, run_id, overrides
        ),
        "CreateTrainingJob": request_bodies.final_training_request(settings, run_id, overrides, {}),
        "CreateTrainingJob (data)": request_bodies.data_job_request(settings, run_id, "s3://b"),
        "CreateModel": request_bodies.model_request(settings, run_id, "s3://b/m.tar.gz"),
        "CreateEndpointConfig": request_bodies.endpoint_config_request(settings, run_id),
        "CreateEndpoint": request_bodies.create_endpoint_request(settings, run_id),
    }
    return {name.split(" ")[0] for name, request in requests.items() if request.get("Tags")}


def _allows(actions: list[str], action: str) -> bool:
    return any(
        re.fullmatch(re.escape(a).replace(r"\*", ".*"), action, re.IGNORECASE) for a in actions
    )


def test_every_statement_creating_a_tagged_resource_also_allows_add_tags(
    transformed: dict[str, Any],
) -> None:
    tagged = _tagged_create_actions()
    assert tagged == set(_CREATE_ACTIONS)
    seen: set[str] = set()
    for role_name, role in resources_of(transformed, "AWS::IAM::Role").items():
        for policy in role["Properties"].get("Policies", []):
            for statement in _as_list(policy["PolicyDocument"]["Statement"]):
                if statement.get("Effect") != "Allow":
                    continue
                actions = _as_list(statement.get("Action", []))
                creates = {a for a in tagged if _allows(actions, f"sagemaker:{a}")}
                if not creates:
                    continue
                seen |= creates
                assert _allows(actions, "sagemaker:AddTags"), (role_name, actions)
    assert seen == tagged  # every tagged Create* is granted somewhere, so all were checked


# -- the custom resource's answer: at most 4096 bytes -----------------------------------------

#: CloudFormation User Guide, "Custom resource response objects": the whole response body
#: may not exceed 4096 bytes.
RESPONSE_LIMIT = 4096


class _Recorder(BaseHTTPRequestHandler):
    bodies: list[bytes]

    def do_PUT(self) -> None:
        self.bodies.append(self.rfile.read(int(self.headers["Content-Length"])))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def response_url() -> Iterator[tuple[str, list[bytes]]]:
    bodies: list[bytes] = []
    server = HTTPServer(("127.0.0.1", 0), type("Handler", (_Recorder,), {"bodies": bodies}))
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/cfn-response?X-Amz-Signature=abc", bodies
    server.shutdown()
    server.server_close()


#: The longest names CloudFormation can put in the event: a 128-character stack name, a
#: 255-character logical id, a 63-character bucket.
BUCKET = "b" * 63


def _longest_event(request_type: str, url: str) -> dict[str, Any]:
    stack = "s" * 128
    return {
        "RequestType": request_type,
        "ResponseURL": url,
        "StackId": f"arn:aws-us-gov:cloudformation:us-gov-west-1:123456789012:stack/{stack}/"
        "3c2f9a70-1b2c-11f0-8a4b-0affe1d2c3b4",
        "RequestId": "6f3e8c1a-9b2d-4e5f-8a7b-1c2d3e4f5a6b",
        "ResourceType": "Custom::SourceBundle",
        "LogicalResourceId": "L" * 255,
        "ResourceProperties": {"ServiceToken": "arn", "Bucket": BUCKET, "Prefix": "code/"},
    }


@pytest.fixture
def payload(tmp_path: Path) -> Path:
    root = tmp_path / "payload"
    (root / "training").mkdir(parents=True)
    (root / "training" / "train_model.py").write_text("print('train')\n")
    (root / "model_handler").mkdir()
    (root / "model_handler" / "inference.py").write_text("def model_fn(d): ...\n")
    return root


def test_a_successful_answer_fits_in_4096_bytes(
    payload: Path, response_url: tuple[str, list[bytes]]
) -> None:
    url, bodies = response_url
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket=BUCKET)
        source_bundle.handle(_longest_event("Create", url), s3, payload)
    (body,) = bodies
    assert json.loads(body)["Status"] == "SUCCESS"
    assert len(body) <= RESPONSE_LIMIT


# Characters an error message may hold, by how much JSON escaping grows them: quotes and
# backslashes (2 bytes), newlines, control characters and non-ASCII text (6 bytes each).
_REASONS = {
    "ascii": "x" * 100_000,
    "escaped": '"\\\n' * 30_000,
    "control": "\x00\x1b" * 30_000,
    "non-ascii": "\u00e9\u4e2d" * 30_000,
}


@pytest.mark.parametrize("reason", list(_REASONS))
def test_a_failed_answer_with_a_long_reason_fits_in_4096_bytes(
    response_url: tuple[str, list[bytes]],
    monkeypatch: pytest.MonkeyPatch,
    reason: str,
) -> None:
    url, bodies = response_url

    def fail(*_: Any) -> Any:
        raise RuntimeError(_REASONS[reason])

    monkeypatch.setattr(source_bundle, "publish", fail)
    source_bundle.handle(_longest_event("Update", url) | {"PhysicalResourceId": "p" * 77}, None)
    (body,) = bodies
    answer = json.loads(body)
    assert answer["Status"] == "FAILED"
    assert answer["Reason"].startswith("RuntimeError: ")
    assert len(body) <= RESPONSE_LIMIT, len(body)


def test_a_failed_answer_with_astral_characters_fits_in_4096_bytes(
    response_url: tuple[str, list[bytes]], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, bodies = response_url

    def fail(*_: Any) -> Any:
        raise RuntimeError("\U0001f600" * 10_000)

    monkeypatch.setattr(source_bundle, "publish", fail)
    source_bundle.handle(_longest_event("Update", url), None)
    (body,) = bodies
    assert len(body) <= RESPONSE_LIMIT, len(body)
