"""Write the template's default container images per region, from the pinned SageMaker SDK.

template.yaml holds two generated blocks between marker comments: at the end of `Rules`, the
region checks (`RegionHasDefaultImages`, `DebuggerNeedsRuleImage`), and the `Mappings`
section `DefaultImages` (region -> TrainingImage, InferenceImage, DebuggerRuleImage). Every
URI is what the SDK's `image_uris.retrieve` gives for that region, so the registry account and
host (e.g. amazonaws.com.cn in China) are the SDK's, not rebuilt here. The regions are those
the SDK lists for both PyTorch images; the output is sorted, so a rerun with the same SDK
changes nothing.

Run it with the SDK pinned in deploy/requirements-images.txt (`make image-mappings`):
    .sam-venv/sagemaker/bin/python scripts/generate_image_mappings.py [--check]
--check writes nothing and exits 1 (printing the diff) when the template is out of date.
"""

from __future__ import annotations

import argparse
import difflib
import re
import sys
import textwrap
from importlib import metadata
from pathlib import Path

import resolve_images as images  # the sibling script: the same SDK calls and versions

REPO = Path(__file__).resolve().parents[1]
TEMPLATE = REPO / "template.yaml"
PIN_FILE = REPO / "deploy" / "requirements-images.txt"
MAPPING = "DefaultImages"
SCRIPT = "scripts/generate_image_mappings.py"
BEGIN = "# BEGIN generated {block}: " + SCRIPT + " (make image-mappings) - do not edit"
END = "# END generated {block}"
WIDTH = 100


class TemplateMarkersError(RuntimeError):
    """A generated block's BEGIN/END marker is missing or doubled."""


def pinned_sdk_version() -> str:
    for line in PIN_FILE.read_text().splitlines():
        match = re.fullmatch(r"\s*sagemaker==(\S+)\s*", line)
        if match:
            return match.group(1)
    raise SystemExit(f"{PIN_FILE} pins no sagemaker==<version>")


def sdk_regions() -> list[str]:
    """Regions the SDK lists for the training and the inference image of the pinned versions."""
    config = images.sdk_image_uris().config_for_framework("pytorch")
    regions: set[str] | None = None
    for scope, version in (
        ("training", images.TRAINING_VERSION),
        ("inference", images.INFERENCE_VERSION),
    ):
        table = config[scope]
        version = table.get("version_aliases", {}).get(version, version)
        listed = set(table["versions"][version]["registries"])
        regions = listed if regions is None else regions & listed
    return sorted(regions or ())


def image_table() -> dict[str, dict[str, str]]:
    table = {}
    for region in sdk_regions():
        table[region] = {
            "TrainingImage": images.training_image(region),
            "InferenceImage": images.inference_image(region),
            "DebuggerRuleImage": images.debugger_rule_image(region) or "",
        }
    return table


def _flow_list(items: list[str], indent: int) -> list[str]:
    """`- [a, b, ...]` at `indent`, wrapped at WIDTH, continuation lines aligned in the bracket."""
    lines, line = [], " " * indent + "- ["
    for i, item in enumerate(items):
        token = item + ("," if i < len(items) - 1 else "")
        if i and len(line) + 1 + len(token) > WIDTH - 1:
            lines.append(line)
            line = " " * (indent + 3) + token
        else:
            line += ("" if i == 0 else " ") + token
    lines.append(line + "]")
    return lines


def _prose(text: str, prefix: str) -> list[str]:
    return textwrap.wrap(text, WIDTH, initial_indent=prefix, subsequent_indent=prefix)


def render_rules(table: dict[str, dict[str, str]]) -> list[str]:
    regions = list(table)
    rule_regions = [r for r, row in table.items() if row["DebuggerRuleImage"]]
    version = images.TRAINING_VERSION
    return [
        "  " + BEGIN.format(block="rules"),
        f"  # The regions of the {MAPPING} mapping below (its lookups have no value elsewhere).",
        "  RegionHasDefaultImages:",
        "    RuleCondition: !Or",
        '      - !Equals [!Ref TrainingImageUri, ""]',
        '      - !Equals [!Ref InferenceImageUri, ""]',
        '      - !Equals [!Ref DebuggerRuleImageUri, ""]',
        "    Assertions:",
        "      - Assert:",
        "          Fn::Contains:",
        *_flow_list(regions, 12),
        "            - !Ref AWS::Region",
        "        AssertDescription: >-",
        *_prose(
            f"This template has no default images for this region: the pinned SageMaker SDK "
            f"lists no PyTorch {version} images here ({MAPPING} mapping). Raise the sagemaker "
            "pin in deploy/requirements-images.txt and run make image-mappings, or set "
            "TrainingImageUri, InferenceImageUri and DebuggerRuleImageUri (docs/images.md).",
            " " * 10,
        ),
        "  DebuggerNeedsRuleImage:",
        '    RuleCondition: !Equals [!Ref DebuggerEnabled, "true"]',
        "    Assertions:",
        "      - Assert: !Or",
        '          - !Not [!Equals [!Ref DebuggerRuleImageUri, ""]]',
        "          - Fn::Contains:",
        *_flow_list(rule_regions, 14),
        "              - !Ref AWS::Region",
        "        AssertDescription: >-",
        *_prose(
            "DebuggerEnabled=true needs DebuggerRuleImageUri in this region: the pinned "
            "SageMaker SDK lists no Debugger rule image for it (empty DebuggerRuleImage in "
            f"the {MAPPING} mapping).",
            " " * 10,
        ),
        "  " + END.format(block="rules"),
    ]


def render_mappings(table: dict[str, dict[str, str]], sdk_version: str) -> list[str]:
    lines = [
        BEGIN.format(block="mappings"),
        *_prose(
            f"What sagemaker=={sdk_version} image_uris.retrieve() gives for PyTorch "
            f"{images.TRAINING_VERSION} {images.PY_VERSION} in every region it lists. Training "
            "always takes the GPU image, whatever TrainingInstanceType and TuningInstanceType "
            f"say (as before; the default is {images.TRAINING_INSTANCE}); serving takes the CPU "
            f"image (EndpointInstanceType, default {images.ENDPOINT_INSTANCE}). "
            'DebuggerRuleImage is "" where the SDK lists no Debugger rule image.',
            "# ",
        ),
        "Mappings:",
        f"  {MAPPING}:",
    ]
    for region, row in table.items():
        lines.append(f"    {region}:")
        for key, uri in row.items():
            lines.append(f"      {key}: {uri}" if uri else f'      {key}: ""')
    lines.append(END.format(block="mappings"))
    return lines


def replace_block(text: str, block: str, new_lines: list[str]) -> str:
    lines = text.splitlines()
    begin = [
        i for i, line in enumerate(lines) if line.strip().startswith(f"# BEGIN generated {block}:")
    ]
    end = [i for i, line in enumerate(lines) if line.strip() == END.format(block=block)]
    if len(begin) != 1 or len(end) != 1 or end[0] < begin[0]:
        raise TemplateMarkersError(
            f"expected one '# BEGIN generated {block}: ...' line and one later "
            f"'{END.format(block=block)}' line in the template"
        )
    lines[begin[0] : end[0] + 1] = new_lines
    return "\n".join(lines) + ("\n" if text.endswith("\n") else "")


def generate(text: str, table: dict[str, dict[str, str]], sdk_version: str) -> str:
    text = replace_block(text, "rules", render_rules(table))
    return replace_block(text, "mappings", render_mappings(table, sdk_version))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--template", type=Path, default=TEMPLATE)
    parser.add_argument("--check", action="store_true", help="exit 1 if the blocks are stale")
    args = parser.parse_args()
    try:
        installed, pinned = metadata.version("sagemaker"), pinned_sdk_version()
    except metadata.PackageNotFoundError:
        print("no SageMaker SDK here: run make image-mappings", file=sys.stderr)
        return 2
    if installed != pinned:
        print(f"sagemaker {installed} is installed, {PIN_FILE.name} pins {pinned}", file=sys.stderr)
        return 2
    old = args.template.read_text()
    table = image_table()
    try:
        new = generate(old, table, installed)
    except TemplateMarkersError as error:
        print(f"{args.template}: {error}", file=sys.stderr)
        return 2
    if args.check:
        if new == old:
            print(f"{args.template.name}: the generated image blocks are up to date")
            return 0
        diff = difflib.unified_diff(
            old.splitlines(keepends=True), new.splitlines(keepends=True), "template", "generated"
        )
        sys.stderr.writelines(diff)
        print(f"{args.template.name} is stale: run make image-mappings", file=sys.stderr)
        return 1
    if new != old:
        args.template.write_text(new)
    print(f"{args.template.name}: {MAPPING} for {len(table)} regions")
    return 0


if __name__ == "__main__":
    sys.exit(main())
