"""`sam build` succeeds and every Handler imports from its built artifact alone.

One build per session (fixture ``sam_build_dir``). Each import runs in a fresh interpreter
with the artifact directory first on sys.path and the working directory there, so a module
that the build forgot (e.g. metric_definitions, whose source is training/) fails here.
"""

from __future__ import annotations

import json
import subprocess
import tarfile
from pathlib import Path
from typing import Any

import yaml

IMPORT_CHECK = """
import importlib, json, sys
artifact = sys.argv[1]
sys.path.insert(0, artifact)
module_name, attr = sys.argv[2].rsplit(".", 1)
module = importlib.import_module(module_name)
handler = getattr(module, attr)
assert callable(handler), sys.argv[2]
names = [module_name, *sys.argv[3:]]
print(json.dumps({n: importlib.import_module(n).__file__ for n in names}))
"""


class _CfnLoader(yaml.SafeLoader):
    """Reads CloudFormation short-form tags (!Ref, !Sub ...) as nothing: only names matter here."""


_CfnLoader.add_multi_constructor("!", lambda loader, suffix, node: None)


def _load(path: Path) -> dict[str, Any]:
    return yaml.load(path.read_text(), Loader=_CfnLoader)


def _functions(build_dir: Path) -> dict[str, dict[str, Any]]:
    built = _load(build_dir / "template.yaml")
    return {
        name: resource["Properties"]
        for name, resource in built["Resources"].items()
        if resource["Type"] == "AWS::Serverless::Function"
    }


def _import_handler(tools: Any, artifact: Path, handler: str, *also: str) -> dict[str, str | None]:
    env = {
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "POWERTOOLS_SERVICE_NAME": "import-check",
        "RUNS_TABLE": "runs",
        "ENDPOINT_NAME": "cifar100-classifier",
    }
    result = subprocess.run(
        [tools.dev_python, "-I", "-c", IMPORT_CHECK, str(artifact), handler, *also],
        cwd=artifact,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, f"{handler} from {artifact}:\n{result.stderr[-3000:]}"
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_every_handler_imports_from_its_built_artifact(tools: Any, sam_build_dir: Path) -> None:
    functions = _functions(sam_build_dir)
    source = _load(tools.template)["Resources"]
    assert set(functions) == {
        n for n, r in source.items() if r["Type"] == "AWS::Serverless::Function"
    }
    for name, props in functions.items():
        artifact = sam_build_dir / name
        assert props["CodeUri"] == name  # the built template points at the artifact
        lambda_code = name != "SourceBundleFunction"
        also = ("metric_definitions", "pydantic") if lambda_code else ()
        files = _import_handler(tools, artifact, props["Handler"], *also)
        module_file = files[props["Handler"].rsplit(".", 1)[0]]
        assert module_file is not None
        assert Path(module_file).is_relative_to(artifact), (name, module_file)
        if lambda_code:
            # The Lambda code's own copy of the metric contract and its pinned dependencies.
            assert Path(files["metric_definitions"]).is_relative_to(artifact)
            assert Path(files["pydantic"]).is_relative_to(artifact)
            assert (artifact / "metric_definitions.py").read_bytes() == (
                tools.repo / "training" / "metric_definitions.py"
            ).read_bytes()


def test_lambda_package_has_no_torch_and_no_tests(sam_build_dir: Path) -> None:
    artifact = sam_build_dir / "ApiFunction"
    assert not (artifact / "torch").exists()
    assert not list(artifact.glob("**/conftest.py"))
    assert not (artifact / "requirements.txt").exists()


def test_source_bundle_artifact_carries_training_and_model_handler(
    tools: Any, sam_build_dir: Path, tmp_path: Path
) -> None:
    payload = sam_build_dir / "SourceBundleFunction" / "payload"
    for folder in ("training", "model_handler"):
        expected = {
            p.relative_to(tools.repo / folder).as_posix()
            for p in (tools.repo / folder).rglob("*")
            if p.is_file()
            and "__pycache__" not in p.parts
            and "tests" not in p.parts
            and p.suffix != ".pyc"
            and ".pytest_cache" not in p.parts
        }
        shipped = {
            p.relative_to(payload / folder).as_posix()
            for p in (payload / folder).rglob("*")
            if p.is_file()
        }
        assert shipped == expected, folder
    assert {"hpo.py", "train_model.py", "requirements.txt", "metric_definitions.py"} <= {
        p.name for p in (payload / "training").iterdir()
    }
    assert (payload / "model_handler" / "inference.py").is_file()

    # The bundle the custom resource builds from that payload is a SageMaker source dir.
    import importlib

    bundle = importlib.import_module("deploy.source_bundle.bundle")
    archive = tmp_path / "sourcedir.tar.gz"
    archive.write_bytes(bundle.sourcedir_tarball(payload / "training"))
    with tarfile.open(archive) as tar:
        names = tar.getnames()
    assert "train_model.py" in names
    assert "requirements.txt" in names
