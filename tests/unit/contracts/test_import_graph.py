"""The project's modules import each other one way: no cycle, lazy imports included."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[3] / "scripts" / "import_graph.py"


@pytest.fixture(scope="module")
def import_graph():
    spec = importlib.util.spec_from_file_location("import_graph", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["import_graph"] = module
    spec.loader.exec_module(module)
    yield module
    del sys.modules["import_graph"]


@pytest.mark.parametrize("argv", [[], ["--all"]])
def test_the_project_has_no_import_cycle(import_graph, argv, capsys) -> None:
    assert import_graph.main(argv) == 0, capsys.readouterr().err
    printed = capsys.readouterr().out
    # The wiring points one way: the AWS module knows the collaborators, not the reverse.
    assert "retraining.aws -> retraining.deps" in printed
    deps_line = next(line for line in printed.splitlines() if line.startswith("retraining.deps "))
    assert "retraining.aws" not in deps_line


def test_a_lazy_import_that_closes_a_cycle_is_found(import_graph, tmp_path: Path) -> None:
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("")
    (tmp_path / "pkg" / "a.py").write_text("from pkg import b\n")
    (tmp_path / "pkg" / "b.py").write_text("def f():\n    from pkg.a import x\n")
    edges = import_graph.graph(import_graph.modules(tmp_path, ["pkg"]))
    assert import_graph.cycles(edges) == [["pkg.a", "pkg.b"]]
