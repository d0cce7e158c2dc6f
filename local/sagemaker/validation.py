"""Server-side checks botocore leaves to AWS: maximum lengths and values, patterns, enums.

botocore validates required members, types and minimums before it sends; AWS refuses the
rest. Checking them here makes a too-long job name or a misspelt enum fail locally the way
it would in the cloud.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

from botocore.model import Shape


@lru_cache(maxsize=512)
def _compiled(pattern: str) -> re.Pattern[str] | None:
    try:
        return re.compile(pattern)
    except re.error:  # Java-only classes such as \p{Alnum}: AWS checks them, we skip them
        return None


def _camel(name: str) -> str:
    return name[:1].lower() + name[1:]


def constraint_errors(shape: Shape, value: Any, path: str = "") -> list[str]:
    """Messages in AWS's words for every constraint ``value`` breaks."""
    errors: list[str] = []
    meta = shape.metadata
    kind = shape.type_name
    if kind == "structure" and isinstance(value, dict):
        for name, member in shape.members.items():
            if name in value:
                inner = f"{path}.{_camel(name)}" if path else _camel(name)
                errors += constraint_errors(member, value[name], inner)
    elif kind == "list" and isinstance(value, list):
        if "max" in meta and len(value) > meta["max"]:
            errors.append(_message(value, path, f"length less than or equal to {meta['max']}"))
        for i, item in enumerate(value):
            errors += constraint_errors(shape.member, item, f"{path}.{i + 1}")
    elif kind == "map" and isinstance(value, dict):
        if "max" in meta and len(value) > meta["max"]:
            errors.append(_message(value, path, f"length less than or equal to {meta['max']}"))
        for key, item in value.items():
            errors += constraint_errors(shape.key, key, f"{path}.key")
            errors += constraint_errors(shape.value, item, f"{path}.{key}")
    elif kind == "string" and isinstance(value, str):
        if "max" in meta and len(value) > meta["max"]:
            errors.append(_message(value, path, f"length less than or equal to {meta['max']}"))
        pattern = _compiled(meta["pattern"]) if "pattern" in meta else None
        if pattern is not None and not pattern.fullmatch(value):
            errors.append(_message(value, path, f"pattern: {meta['pattern']}"))
        if shape.enum and value not in shape.enum:
            errors.append(_message(value, path, f"enum value set: {shape.enum}"))
    elif (
        kind in ("integer", "long", "float", "double")
        and isinstance(value, int | float)
        and "max" in meta
        and value > meta["max"]
    ):
        errors.append(_message(value, path, f"value less than or equal to {meta['max']}"))
    return errors


def _message(value: Any, path: str, rule: str) -> str:
    return f"Value '{value}' at '{path}' failed to satisfy constraint: Member must have {rule}"


def validation_message(errors: list[str]) -> str:
    count = len(errors)
    return f"{count} validation error{'s' if count > 1 else ''} detected: " + "; ".join(errors)
