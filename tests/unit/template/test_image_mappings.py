"""The default container images per region (scripts/generate_image_mappings.py): the generated
blocks are what the pinned SageMaker SDK gives, the functions' variables take them when the
image parameters are empty, and the region rules list exactly the mapping's regions."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from local.rules import _TemplateLoader

REPO = Path(__file__).resolve().parents[3]
SAGEMAKER_PYTHON = REPO / ".sam-venv" / "sagemaker" / "bin" / "python"
GENERATOR = REPO / "scripts" / "generate_image_mappings.py"
MAPPING = "DefaultImages"
# Regions where the old `763104351884.dkr.ecr.<region>` default named the wrong registry.
WRONG_BEFORE = [
    "af-south-1",
    "ap-east-1",
    "ap-northeast-3",
    "ap-south-2",
    "ap-southeast-3",
    "ap-southeast-4",
    "ap-southeast-5",
    "ap-southeast-6",
    "ap-southeast-7",
    "ca-west-1",
    "cn-north-1",
    "cn-northwest-1",
    "eu-central-2",
    "eu-south-1",
    "eu-south-2",
    "il-central-1",
    "me-central-1",
    "me-south-1",
    "mx-central-1",
    "us-gov-east-1",
    "us-gov-west-1",
]
CHECKED_REGIONS = [*WRONG_BEFORE, "us-east-1", "eu-west-1"]
# Function variable -> (its parameter, the mapping's attribute).
IMAGES = {
    "TRAINING_IMAGE_URI": ("TrainingImageUri", "TrainingImage"),
    "INFERENCE_IMAGE_URI": ("InferenceImageUri", "InferenceImage"),
    "DEBUGGER_RULE_IMAGE_URI": ("DebuggerRuleImageUri", "DebuggerRuleImage"),
}
# The SDK asked directly, with the template's versions and instance-type defaults: the GPU
# training image (ml.g5.xlarge) and the CPU serving image (ml.m5.large).
SDK_QUERY = """
import json, logging, os, sys
os.environ["SAGEMAKER_SUPPRESS_V2_WARNING"] = "1"
logging.getLogger("sagemaker.config").setLevel(logging.WARNING)
from sagemaker import image_uris

def pytorch(region, scope, instance_type):
    return image_uris.retrieve("pytorch", region, version="2.6.0", py_version="py312",
                               instance_type=instance_type, image_scope=scope)

def rule_image(region):
    try:
        return image_uris.retrieve("debugger", region)
    except ValueError:
        return ""

print(json.dumps({r: {"TRAINING_IMAGE_URI": pytorch(r, "training", "ml.g5.xlarge"),
                      "INFERENCE_IMAGE_URI": pytorch(r, "inference", "ml.m5.large"),
                      "DEBUGGER_RULE_IMAGE_URI": rule_image(r)} for r in sys.argv[1:]}))
"""


# ------------------------------------------------------------------ helpers
@pytest.fixture(scope="module")
def template(tools: Any) -> dict[str, Any]:
    return yaml.load(tools.template.read_text(), Loader=_TemplateLoader)


@pytest.fixture(scope="module")
def sdk_images(tools: Any) -> dict[str, dict[str, str]]:
    result = tools.run(SAGEMAKER_PYTHON, "-c", SDK_QUERY, *CHECKED_REGIONS)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.splitlines()[-1])


def _pseudo(region: str) -> dict[str, str]:
    china = region.startswith("cn-")
    return {
        "AWS::Region": region,
        "AWS::URLSuffix": "amazonaws.com.cn" if china else "amazonaws.com",
        "AWS::Partition": "aws-cn" if china else "aws-us-gov" if "-gov-" in region else "aws",
    }


def evaluate(value: Any, template: dict[str, Any], params: dict[str, str], region: str) -> Any:
    """The intrinsics the image variables and rules use, as CloudFormation resolves them."""
    values = {
        **{k: str(v.get("Default", "")) for k, v in template["Parameters"].items()},
        **params,
        **_pseudo(region),
    }

    def ev(node: Any) -> Any:
        if not isinstance(node, dict) or len(node) != 1:
            return [ev(n) for n in node] if isinstance(node, list) else node
        ((name, arg),) = node.items()
        if name == "Ref":
            return values[arg]
        if name == "Fn::Sub":
            return re.sub(r"\$\{([^}!]+)\}", lambda m: values[m.group(1)], arg)
        if name == "Fn::Join":
            return arg[0].join(ev(arg[1]))
        if name == "Fn::FindInMap":
            mapping, key, attribute = ev(arg)
            return template["Mappings"][mapping][key][attribute]  # KeyError = deploy error
        if name == "Fn::If":
            return ev(arg[1] if ev(template["Conditions"][arg[0]]) else arg[2])
        if name == "Fn::Equals":
            left, right = ev(arg)
            return str(left) == str(right)
        if name == "Fn::Not":
            return not ev(arg[0])
        if name == "Fn::Or":
            return any(ev(a) for a in arg)
        if name == "Fn::And":
            return all(ev(a) for a in arg)
        if name == "Fn::Contains":
            return ev(arg[1]) in ev(arg[0])
        raise AssertionError(f"unexpected intrinsic {name}")

    return ev(value)


def image_variables(
    template: dict[str, Any], region: str, params: dict[str, str] | None = None
) -> dict[str, str]:
    variables = template["Globals"]["Function"]["Environment"]["Variables"]
    return {name: evaluate(variables[name], template, params or {}, region) for name in IMAGES}


def failed_rules(template: dict[str, Any], region: str, params: dict[str, str]) -> list[str]:
    failed = []
    for name, rule in template["Rules"].items():
        if "RuleCondition" in rule and not evaluate(
            rule["RuleCondition"], template, params, region
        ):
            continue
        if not all(evaluate(a["Assert"], template, params, region) for a in rule["Assertions"]):
            failed.append(name)
    return failed


def contains_list(assertion: Any) -> list[str]:
    """The literal region list of the one Fn::Contains in an assertion."""

    def found(node: Any) -> list[list[str]]:
        if isinstance(node, list):
            return [regions for item in node for regions in found(item)]
        if not isinstance(node, dict):
            return []
        if "Fn::Contains" in node:
            regions, region = node["Fn::Contains"]
            assert region == {"Ref": "AWS::Region"}
            return [regions]
        return [regions for value in node.values() for regions in found(value)]

    (regions,) = found(assertion)
    return regions


# ------------------------------------------------------------------ generated from the SDK
def test_regenerating_with_the_pinned_sdk_changes_nothing(tools: Any, tmp_path: Path) -> None:
    check = tools.run(SAGEMAKER_PYTHON, GENERATOR, "--check")
    assert check.returncode == 0, check.stdout + check.stderr
    # The write mode, on a copy whose blocks were emptied: it writes them back byte for byte.
    original = tools.template.read_text()
    stale = original
    for block in ("rules", "mappings"):
        stale = re.sub(
            rf"(# BEGIN generated {block}:[^\n]*\n).*?(\s*# END generated {block}\n)",
            r"\1\2",
            stale,
            flags=re.DOTALL,
        )
    assert "DefaultImages:" not in stale
    copy = tmp_path / "template.yaml"
    copy.write_text(stale)
    written = tools.run(SAGEMAKER_PYTHON, GENERATOR, "--template", copy)
    assert written.returncode == 0, written.stdout + written.stderr
    assert copy.read_text() == original


def test_the_block_names_the_pinned_sdk(tools: Any) -> None:
    pin = (tools.repo / "deploy" / "requirements-images.txt").read_text()
    version = re.search(r"^sagemaker==(\S+)$", pin, re.MULTILINE)
    assert version, "deploy/requirements-images.txt pins the SDK"
    text = tools.template.read_text()
    assert f"# What sagemaker=={version.group(1)} image_uris.retrieve() gives" in text
    for block in ("rules", "mappings"):
        assert text.count(f"# BEGIN generated {block}: scripts/generate_image_mappings.py") == 1
        assert text.count(f"# END generated {block}\n") == 1


def test_the_mapping_is_sorted_and_complete(template: dict[str, Any]) -> None:
    rows = template["Mappings"][MAPPING]
    assert list(rows) == sorted(rows)
    assert set(WRONG_BEFORE) <= set(rows), sorted(set(WRONG_BEFORE) - set(rows))
    for region, row in rows.items():
        assert set(row) == {attribute for _, attribute in IMAGES.values()}, region
        for attribute in ("TrainingImage", "InferenceImage"):
            assert f".dkr.ecr.{region}.amazonaws.com" in row[attribute], (region, attribute)
        assert row["TrainingImage"].endswith("/pytorch-training:2.6.0-gpu-py312"), region
        assert row["InferenceImage"].endswith("/pytorch-inference:2.6.0-cpu-py312"), region


# ------------------------------------------------------------------ what the functions get
@pytest.mark.parametrize("region", CHECKED_REGIONS)
def test_default_images_are_the_sdks(
    region: str, template: dict[str, Any], sdk_images: dict[str, dict[str, str]]
) -> None:
    assert image_variables(template, region) == sdk_images[region]


def test_china_images_use_the_china_host(template: dict[str, Any]) -> None:
    for region in ("cn-north-1", "cn-northwest-1"):
        for uri in image_variables(template, region).values():
            assert f".dkr.ecr.{region}.amazonaws.com.cn/" in uri, uri


def test_parameters_override_the_mapping(template: dict[str, Any]) -> None:
    params = {parameter: f"override/{parameter}:1" for parameter, _ in IMAGES.values()}
    assert image_variables(template, "il-central-1", params) == {
        name: f"override/{parameter}:1" for name, (parameter, _) in IMAGES.items()
    }


# ------------------------------------------------------------------ deploy-time rules
def test_region_rules_list_exactly_the_mappings_regions(template: dict[str, Any]) -> None:
    rows = template["Mappings"][MAPPING]
    rules = template["Rules"]
    (region_assert,) = rules["RegionHasDefaultImages"]["Assertions"]
    assert contains_list(region_assert["Assert"]) == list(rows)
    (debugger_assert,) = rules["DebuggerNeedsRuleImage"]["Assertions"]
    with_rule_image = [region for region, row in rows.items() if row["DebuggerRuleImage"]]
    assert contains_list(debugger_assert["Assert"]) == with_rule_image
    assert set(with_rule_image) < set(rows)  # some regions have no Debugger rule image


def test_defaults_deploy_in_every_mapped_region(template: dict[str, Any]) -> None:
    for region in template["Mappings"][MAPPING]:
        assert failed_rules(template, region, {}) == [], region


def test_an_unmapped_region_with_default_images_is_refused(template: dict[str, Any]) -> None:
    assert failed_rules(template, "xx-nowhere-1", {}) == ["RegionHasDefaultImages"]
    for parameter, _ in IMAGES.values():
        others = {p: "override:1" for p, _ in IMAGES.values() if p != parameter}
        assert failed_rules(template, "xx-nowhere-1", others) == ["RegionHasDefaultImages"]
    every_image = {p: "override:1" for p, _ in IMAGES.values()}
    assert failed_rules(template, "xx-nowhere-1", every_image) == []
    description = template["Rules"]["RegionHasDefaultImages"]["Assertions"][0]
    assert "make image-mappings" in description["AssertDescription"]


def test_debugger_needs_a_rule_image_only_where_the_mapping_has_none(
    template: dict[str, Any],
) -> None:
    rows = template["Mappings"][MAPPING]
    # An image with smdebug: the default PyTorch 2.6 image has none (DebuggerNeedsImageWithSmdebug).
    enabled = {"DebuggerEnabled": "true", "TrainingImageUri": "with-smdebug:1"}
    missing = [region for region, row in rows.items() if not row["DebuggerRuleImage"]]
    assert "il-central-1" in missing
    for region in missing:
        assert failed_rules(template, region, enabled) == ["DebuggerNeedsRuleImage"], region
        with_image = {**enabled, "DebuggerRuleImageUri": "override:1"}
        assert failed_rules(template, region, with_image) == [], region
    for region in ("us-east-1", "cn-north-1", "us-gov-west-1"):
        assert failed_rules(template, region, enabled) == [], region
        assert image_variables(template, region, enabled)["DEBUGGER_RULE_IMAGE_URI"]


def test_debugger_on_the_default_training_image_is_refused(template: dict[str, Any]) -> None:
    refused = failed_rules(template, "us-east-1", {"DebuggerEnabled": "true"})
    assert refused == ["DebuggerNeedsImageWithSmdebug"]
    description = template["Rules"]["DebuggerNeedsImageWithSmdebug"]["Assertions"][0]
    assert "ships no smdebug" in description["AssertDescription"]
