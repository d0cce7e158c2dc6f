"""The ``cifar100`` console script: declared in pyproject, installed by ``make install``, and
an entry point that finds the runtimes' import roots from any current directory."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from local import console

REPO = Path(__file__).resolve().parents[3]
SCRIPT = Path(sys.executable).parent / "cifar100"


def test_pyproject_declares_the_script_and_ships_its_package() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert project["project"]["scripts"] == {"cifar100": "local.console:main"}
    assert "local" in project["tool"]["setuptools"]["packages"]["find"]["include"]


def test_make_install_installs_the_project_editable() -> None:
    """The script runs this checkout's code (local/ beside functions/ and training/)."""
    makefile = (REPO / "Makefile").read_text()
    recipe = makefile.split("$(STAMP):", 1)[1].split("\n\n", 1)[0]
    assert "pip install --quiet --no-deps -e ." in recipe
    assert "pyproject.toml" in recipe.splitlines()[0]  # a changed script list reinstalls


def test_the_entry_point_is_the_cli_under_its_name(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        console.main(["--help"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.startswith("usage: cifar100 [-h] <command> ...")
    assert console.main(["runs", "--url", "http://127.0.0.1:9"]) == 1
    assert "`cifar100 serve`" in capsys.readouterr().err


def test_a_copy_outside_the_checkout_says_how_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(console, "REPO", tmp_path / "site-packages")
    assert console.main(["runs"]) == 1
    assert "install it with make install" in capsys.readouterr().err


def test_the_import_roots_are_found_from_any_folder(tmp_path: Path) -> None:
    """As the installed script starts: only ``local`` importable, another current folder."""
    code = (
        f"import sys; sys.path.insert(0, {str(REPO)!r}); from local import console; "
        f"sys.path.remove({str(REPO)!r}); console.add_import_roots(); "
        "import api.app, retraining.workflow, trainlib, deploy.source_bundle.bundle; "
        "print('ok')"
    )
    done = subprocess.run(
        [sys.executable, "-I", "-c", code],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "ok\n"


@pytest.mark.skipif(not SCRIPT.is_file(), reason="cifar100 not installed here: run make install")
def test_the_installed_script_runs_from_another_folder(tmp_path: Path) -> None:
    for argv in (["--help"], ["tune", "--help"], ["serve", "--help"]):
        done = subprocess.run(
            [str(SCRIPT), *argv], cwd=tmp_path, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout.startswith("usage: cifar100"), done.stdout
    done = subprocess.run(
        [str(SCRIPT), "tune", "--batch-sizes", "16,abc"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert done.stderr.startswith("cifar100 tune: error: argument --batch-sizes:")


def test_a_ctrl_c_before_the_command_takes_over_ends_as_that_command_would() -> None:
    from local.console import interrupted_exit_code

    assert interrupted_exit_code([]) == 0  # serve, the default: a quiet stop
    assert interrupted_exit_code(["--sample-data"]) == 0
    assert interrupted_exit_code(["serve", "--port", "9000"]) == 0
    assert interrupted_exit_code(["watch", "r20261201120000ab12"]) == 130
