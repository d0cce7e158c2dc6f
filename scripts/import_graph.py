"""Print the import graph of the project's own modules and fail on a cycle.

    python scripts/import_graph.py              # functions/ (the Lambda code)
    python scripts/import_graph.py --all        # and local/, training/, model_handler/

Every import counts, also one inside a function: a lazy import that closes a cycle hides
the cycle from Python, not from a reader. Modules are named as their runtime imports them
(functions/ and training/ are import roots, as in Lambda and the SageMaker source dir).
"""

from __future__ import annotations

import argparse
import ast
import sys
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
#: (import root, top-level packages or modules under it that belong to the project)
ROOTS = {
    "functions": REPO / "functions",
    "training": REPO / "training",
    "repo": REPO,
}


def modules(root: Path, packages: list[str]) -> dict[str, Path]:
    """Dotted module name -> file, for the given top-level packages under ``root``."""
    found: dict[str, Path] = {}
    for package in packages:
        base = root / package
        files = [base.with_suffix(".py")] if base.with_suffix(".py").is_file() else []
        files += sorted(base.rglob("*.py")) if base.is_dir() else []
        for path in files:
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def imported(path: Path, name: str, is_package: bool) -> Iterator[str]:
    """Every module ``path`` imports (absolute names; relative imports resolved)."""
    tree = ast.parse(path.read_text(), str(path))
    package = name if is_package else name.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            yield base
            yield from (f"{base}.{alias.name}" for alias in node.names)


def graph(known: dict[str, Path]) -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {}
    for name, path in known.items():
        targets = set()
        for target in imported(path, name, path.name == "__init__.py"):
            # "from a.b import c": c may be a module or a name in a.b; keep what exists.
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name and not name.startswith(f"{target}."):
                targets.add(target)
        edges[name] = targets
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """One cycle per strongly connected component with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(edges.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    sys.setrecursionlimit(10_000)
    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def project(all_parts: bool) -> dict[str, Path]:
    known = modules(ROOTS["functions"], ["api", "orchestration", "retraining"])
    if all_parts:
        known |= modules(ROOTS["training"], ["trainlib", "metric_definitions"])
        known |= modules(ROOTS["repo"], ["local", "model_handler", "deploy"])
    return known


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--all", action="store_true", help="also local/, training/, model_handler/")
    args = parser.parse_args(argv)
    edges = graph(project(args.all))
    for name in sorted(edges):
        print(f"{name} -> {', '.join(sorted(edges[name])) or '-'}")
    found = cycles(edges)
    for cycle in found:
        print(f"cycle: {' <-> '.join(cycle)}", file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
