"""docs/aws-behaviour.md names, for each AWS behaviour, the test that pins it (the last
column of its tables): every test it cites must exist, so a renamed or deleted test cannot
leave a behaviour silently unpinned."""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
DOC = REPO / "docs" / "aws-behaviour.md"
CITATION = re.compile(r"(?<![\w/])(tests/[\w/]+\.(?:py|json))((?:::\w+)*)")


def _defines(path: Path, name: str) -> bool:
    """The module at ``path`` has the test ``name`` (``test_x`` or ``Class::test_x``, a method
    the class may inherit from a shared contract)."""
    top, _, method = name.partition("::")
    tree = ast.parse(path.read_text())
    if not method:
        return any(getattr(node, "name", None) == top for node in tree.body)
    module = importlib.import_module(".".join(path.relative_to(REPO).with_suffix("").parts))
    return callable(getattr(getattr(module, top, None), method, None))


def _pinned_by_cells() -> list[str]:
    rows = [line for line in DOC.read_text().splitlines() if line.startswith("| ")]
    return [row.rstrip().rstrip("|").rsplit("|", 1)[-1] for row in rows]


def test_every_cited_test_exists() -> None:
    cited = [match for cell in _pinned_by_cells() for match in CITATION.findall(cell)]
    assert len(cited) > 50  # the doc still cites its tests this way
    missing = []
    for file, names in cited:
        path = REPO / file
        name = names.removeprefix("::")
        if not path.is_file():
            missing.append(file)
        elif name and not _defines(path, name):
            missing.append(f"{file}::{name}")
    assert not missing, f"docs/aws-behaviour.md cites what does not exist: {missing}"
