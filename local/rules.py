"""The EventBridge rules of the cloud stack, for the local bus.

Read from ``template.yaml`` itself (each function's ``EventBridgeRule`` events: pattern and
handler), so the local bus filters exactly as the deployed rules do, e.g. only the final
training job, never the HPO trials. No built-in copy: it could only drift from the template.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from local.bus import Rule
from local.sagemaker.wire import ACCOUNT, REGION


class TemplateError(RuntimeError):
    """template.yaml is missing, unreadable or declares no event rules."""


class _TemplateLoader(yaml.SafeLoader):
    """CloudFormation YAML: short-form intrinsics become ``{"Fn::X": value}`` nodes."""


def _intrinsic(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    return {"Ref" if suffix == "Ref" else f"Fn::{suffix}": value}


_TemplateLoader.add_multi_constructor("!", _intrinsic)


def _resolve(value: Any, parameters: dict[str, str]) -> Any:
    """Resolve the ``Ref``/``Fn::Sub`` of parameters that event patterns use."""
    if isinstance(value, list):
        return [_resolve(v, parameters) for v in value]
    if isinstance(value, dict):
        if set(value) == {"Ref"}:
            return parameters[value["Ref"]]
        if set(value) == {"Fn::Sub"} and isinstance(value["Fn::Sub"], str):
            return re.sub(r"\$\{([^}!]+)\}", lambda m: parameters[m.group(1)], value["Fn::Sub"])
        return {k: _resolve(v, parameters) for k, v in value.items()}
    return value


def rules_from_template(template: Path, parameters: dict[str, str]) -> list[Rule]:
    document = yaml.load(template.read_text(), Loader=_TemplateLoader)
    if not isinstance(document, dict):
        raise TemplateError(f"{template} is not a CloudFormation template (a YAML mapping)")
    defaults = {
        name: str(spec.get("Default", ""))
        for name, spec in (document.get("Parameters") or {}).items()
    }
    values = {**defaults, **parameters}
    rules = []
    for resource in (document.get("Resources") or {}).values():
        if resource.get("Type") != "AWS::Serverless::Function":
            continue
        properties = resource.get("Properties", {})
        module, _, function = properties.get("Handler", "").rpartition(".")
        for name, event in (properties.get("Events") or {}).items():
            if event.get("Type") in ("EventBridgeRule", "CloudWatchEvent"):
                pattern = _resolve(event["Properties"]["Pattern"], values)
                rules.append(Rule(name, pattern, f"{module}:{function}"))
            elif event.get("Type") in ("Schedule", "ScheduleV2"):
                rule_input = event.get("Properties", {}).get("Input")
                rules.append(Rule(name, schedule_pattern(name), f"{module}:{function}", rule_input))
    return rules


def schedule_rule_arn(name: str) -> str:
    return f"arn:aws:events:{REGION}:{ACCOUNT}:rule/{name}"


def schedule_pattern(name: str) -> dict[str, Any]:
    return {
        "source": ["aws.events"],
        "detail-type": ["Scheduled Event"],
        "resources": [schedule_rule_arn(name)],
    }


def stack_rules(repo_root: Path, prefix: str, endpoint_name: str) -> list[Rule]:
    template = repo_root / "template.yaml"
    parameters = {"ResourcePrefix": prefix, "EndpointName": endpoint_name}
    try:
        rules = rules_from_template(template, parameters)
    except (OSError, yaml.YAMLError, KeyError) as error:  # missing, bad YAML, unknown ${X}
        raise TemplateError(
            f"cannot read the event rules from {template} ({type(error).__name__}: {error})"
        ) from error
    if not rules:
        raise TemplateError(f"{template} declares no EventBridge or schedule rules")
    return rules


_RATE = re.compile(r"^rate\((\d+) (minute|minutes|hour|hours|day|days)\)$")
_UNIT_S = {"minute": 60, "hour": 3600, "day": 86400}


def reconcile_interval_s(repo_root: Path) -> float:
    """The template's ReconcileSchedule default (``rate(5 minutes)``) in seconds."""
    document = yaml.load((repo_root / "template.yaml").read_text(), Loader=_TemplateLoader)
    expression = str(document["Parameters"]["ReconcileSchedule"]["Default"])
    match = _RATE.match(expression)
    if match is None:
        raise TemplateError(
            f"ReconcileSchedule {expression!r} is not a rate() the local stack runs"
        )
    return int(match.group(1)) * _UNIT_S[match.group(2).rstrip("s")]
