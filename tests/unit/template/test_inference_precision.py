"""InferencePrecision: the template parameter, the setting it becomes and the variable every
function that builds a model package gets (the endpoint handler reads INFERENCE_PRECISION
from the registered container's environment)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, get_args

import yaml

from local.rules import _TemplateLoader
from retraining.settings import Settings

REPO = Path(__file__).resolve().parents[3]
#: The functions whose Settings register model packages (the gate's step, and reconcile,
#: which takes any step a lost event would have).
PACKAGE_FUNCTIONS = {"TrainingJobStateChangeFunction", "ReconcileFunction"}


def _written() -> dict[str, Any]:
    return yaml.load((REPO / "template.yaml").read_text(), Loader=_TemplateLoader)


def test_the_parameters_values_are_the_settings_values() -> None:
    parameter = _written()["Parameters"]["InferencePrecision"]
    field = Settings.model_fields["inference_precision"]
    assert parameter["Type"] == "String"
    assert parameter["AllowedValues"] == list(get_args(field.annotation))
    assert parameter["Default"] == field.default == "auto"
    for value in parameter["AllowedValues"]:
        assert value in parameter["Description"], value


def test_the_parameter_is_asked_next_to_the_endpoint_type() -> None:
    groups = _written()["Metadata"]["AWS::CloudFormation::Interface"]["ParameterGroups"]
    (group,) = [g for g in groups if "EndpointType" in g["Parameters"]]
    names = group["Parameters"]
    assert names.index("InferencePrecision") == names.index("EndpointType") + 1
    assert sum("InferencePrecision" in g["Parameters"] for g in groups) == 1


def test_every_function_gets_the_precision_as_the_endpoint_type() -> None:
    """Globals, as ENDPOINT_TYPE: no function's own Variables may hide it."""
    template = _written()
    variables = template["Globals"]["Function"]["Environment"]["Variables"]
    assert variables["INFERENCE_PRECISION"] == {"Ref": "InferencePrecision"}
    assert variables["ENDPOINT_TYPE"] == {"Ref": "EndpointType"}
    for name, resource in template["Resources"].items():
        if resource["Type"] != "AWS::Serverless::Function":
            continue
        own = resource["Properties"].get("Environment", {}).get("Variables", {})
        assert "INFERENCE_PRECISION" not in own, name


def test_the_functions_that_register_packages_read_it(transformed: dict[str, Any]) -> None:
    """After the transform (Globals merged into each function)."""
    functions = {
        name
        for name, resource in transformed["Resources"].items()
        if resource["Type"] == "AWS::Lambda::Function"
        and resource["Properties"]["Handler"].startswith("orchestration.")
    }
    assert functions >= PACKAGE_FUNCTIONS
    for name in functions | {"ApiFunction"}:
        env = transformed["Resources"][name]["Properties"]["Environment"]["Variables"]
        assert env["INFERENCE_PRECISION"] == {"Ref": "InferencePrecision"}, name
        assert env["ENDPOINT_TYPE"] == {"Ref": "EndpointType"}, name
    parameter = transformed["Parameters"]["InferencePrecision"]
    for value in parameter["AllowedValues"]:
        assert Settings(_env_file=None, inference_precision=value).inference_precision == value
