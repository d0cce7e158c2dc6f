"""Print template.yaml as plain CloudFormation JSON (the SAM transform, offline).

Runs in the SAM CLI's virtual environment (aws-sam-translator pins a pydantic that the Lambda
code cannot share): `.sam-venv/sam/bin/python scripts/sam_transform.py template.yaml`.
Local CodeUri paths become s3:// placeholders, as `sam package` would make them.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse

PLACEHOLDER_BUCKET = "sam-package-placeholder"


class OfflinePolicyLoader:
    """The transform asks IAM for managed-policy ARNs only for policy names; ours are inline."""

    def load(self) -> dict[str, str]:
        return {}


def with_packaged_code(template: dict[str, Any]) -> dict[str, Any]:
    for name, resource in template.get("Resources", {}).items():
        props = resource.get("Properties", {})
        if resource.get("Type") == "AWS::Serverless::Function" and isinstance(
            props.get("CodeUri"), str
        ):
            props["CodeUri"] = f"s3://{PLACEHOLDER_BUCKET}/{name}.zip"
    return template


def main(path: str) -> None:
    template = with_packaged_code(yaml_parse(Path(path).read_text()))
    print(json.dumps(transform(template, {}, OfflinePolicyLoader()), indent=1, default=str))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "template.yaml")
