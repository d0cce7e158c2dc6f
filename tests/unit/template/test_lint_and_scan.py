"""The template passes the SAM CLI's validation with lint, cfn-lint and checkov, and every
checkov suppression carries a reason in place."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml


class _CfnLoader(yaml.SafeLoader):
    """Reads CloudFormation short-form tags (!Ref, !Sub ...) as plain values."""


_CfnLoader.add_multi_constructor("!", lambda loader, suffix, node: None)


def test_sam_validate_lint(tools: Any) -> None:
    result = tools.run(tools.sam, "validate", "--lint", "--template-file", tools.template)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "is a valid SAM Template" in result.stdout + result.stderr


def test_cfn_lint_has_no_findings(tools: Any) -> None:
    result = tools.run(tools.cfn_lint, "--format", "json", tools.template)
    findings = json.loads(result.stdout or "[]")
    assert findings == [], json.dumps(findings, indent=1)
    assert result.returncode == 0


def _checkov(tools: Any, path: Path, cwd: Path) -> dict[str, Any]:
    result = tools.run(
        tools.checkov,
        "--file",
        path,
        "--framework",
        "cloudformation",
        "--output",
        "json",
        "--skip-download",
        "--quiet",
        cwd=cwd,
    )
    report = json.loads(result.stdout)
    return report[0] if isinstance(report, list) else report


def test_checkov_passes_on_the_template(tools: Any) -> None:
    report = _checkov(tools, tools.template, tools.repo)
    failed = report["results"]["failed_checks"]
    assert failed == [], [(f["check_id"], f["resource"]) for f in failed]
    assert report["summary"]["passed"] > 30  # it really scanned the resources


def test_checkov_passes_on_the_transformed_template(
    tools: Any, transformed: dict[str, Any], tmp_path: Path
) -> None:
    # The transform adds the function roles, routes and rules that SAM generates: scan those too.
    path = tmp_path / "transformed.json"
    path.write_text(json.dumps(transformed))
    report = _checkov(tools, path, tmp_path)
    failed = report["results"]["failed_checks"]
    assert failed == [], [(f["check_id"], f["resource"]) for f in failed]
    assert report["summary"]["passed"] > 60


def test_every_checkov_suppression_is_justified_in_place(tools: Any) -> None:
    template = yaml.load(tools.template.read_text(), Loader=_CfnLoader)
    skips = [
        (name, skip)
        for name, resource in template["Resources"].items()
        for skip in (resource.get("Metadata") or {}).get("checkov", {}).get("skip", [])
    ]
    assert skips, "expected the documented suppressions"
    for name, skip in skips:
        assert skip["id"].startswith("CKV_"), (name, skip)
        assert len(skip.get("comment", "").split()) >= 6, f"{name}: {skip['id']} needs a reason"
