"""The ``cifar100`` command (``make install`` installs it into the project's environment): the
same CLI as ``python -m local``, from any current directory.

The Lambda code (functions/) and the training package (training/) are import roots in their
runtimes (the Lambda task root, the SageMaker source dir), so they go on ``sys.path`` here
as they do for ``python -m local``; the repository root too, for ``deploy/`` beside ``local/``.
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
IMPORT_ROOTS = ("training", "functions")  # inserted in this order: functions/ ends up first


def add_import_roots() -> None:
    for root in IMPORT_ROOTS:
        path = str(REPO / root)
        if path not in sys.path:
            sys.path.insert(0, path)
    if str(REPO) not in sys.path:
        sys.path.append(str(REPO))


def interrupted_exit_code(argv: list[str]) -> int:
    """A Ctrl-C that came before the command installed its handlers (a slow start): ``serve``
    stops quietly with 0 as it does later; any other command ends with 130, as stopped."""
    command = next((arg for arg in argv if not arg.startswith("-")), "serve")
    return 0 if command == "serve" else 130


def main(argv: list[str] | None = None) -> int:
    """The console script's entry point (pyproject ``[project.scripts]``)."""
    if not all((REPO / root).is_dir() for root in IMPORT_ROOTS):
        # A copy of local/ outside the checkout (a non-editable install) has no runtimes.
        print(
            f"error: cifar100 runs from the repository, not from {REPO}; "
            "install it with make install (pip install -e .)",
            file=sys.stderr,
        )
        return 1
    add_import_roots()
    try:
        from local.cli import main as cli_main

        return cli_main(argv, prog="cifar100")
    except KeyboardInterrupt:
        return interrupted_exit_code(sys.argv[1:] if argv is None else argv)
