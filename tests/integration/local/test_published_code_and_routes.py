"""The code the local stack publishes is the cloud bundler's, and the local-only route that
tells the CLI where a run's curves lie."""

from __future__ import annotations

import tarfile
from pathlib import Path

from fastapi import FastAPI
from fastapi.testclient import TestClient

from api.errors import install_error_handlers
from deploy.source_bundle.bundle import source_files, sourcedir_tarball
from local.routes import local_router
from local.run_store import SqliteRunStore
from local.s3 import LocalS3
from local.stack import INFERENCE_SOURCE, REPO_ROOT, TRAINING_SOURCE, LocalStack
from tests.support.run_store_contract import make_run


def test_published_sources_are_the_cloud_bundles_under_the_local_keys(tmp_path: Path) -> None:
    stack = LocalStack(tmp_path)
    stack.s3 = LocalS3(tmp_path / "s3")
    stale = stack.s3.path(f"{INFERENCE_SOURCE}/removed_module.py")
    stale.parent.mkdir(parents=True)
    stale.write_text("from an older checkout")

    stack._publish_code()

    tarball = stack.s3.path(TRAINING_SOURCE)
    assert tarball.read_bytes() == sourcedir_tarball(REPO_ROOT / "training")
    with tarfile.open(tarball) as tar:
        names = tar.getnames()
    assert "train_model.py" in names
    assert not any("__pycache__" in n for n in names)

    handler_root = REPO_ROOT / "model_handler"
    published = stack.s3.path(INFERENCE_SOURCE)
    expected = {p.relative_to(handler_root).as_posix() for p in source_files(handler_root)}
    assert {p.relative_to(published).as_posix() for p in published.rglob("*") if p.is_file()} == (
        expected
    )
    assert (published / "inference.py").read_bytes() == (handler_root / "inference.py").read_bytes()


def client_for(root: Path, store: SqliteRunStore) -> TestClient:
    app = FastAPI()
    install_error_handlers(app)
    app.include_router(local_router(root, store))
    return TestClient(app)


def test_curves_route_names_the_final_jobs_pngs_under_the_servers_root(tmp_path: Path) -> None:
    store = SqliteRunStore(tmp_path / "runs.db")
    run = store.create(make_run())
    job = "cifar100-r1-final"
    store.update(run.run_id, training_job_name=job)
    output = tmp_path / "sagemaker" / "jobs" / job / "output" / "data"
    (output / "curves").mkdir(parents=True)
    for name in ("curves/loss.png", "accuracy.png", "metrics.json"):
        (output / name).write_bytes(b"x")

    client = client_for(tmp_path, store)
    body = client.get(f"/local/runs/{run.run_id}/curves").json()
    assert body["training_job_name"] == job
    assert body["curves"] == [str(output / "accuracy.png"), str(output / "curves/loss.png")]

    missing = client.get("/local/runs/nope/curves")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "run_not_found"


def test_a_run_without_a_final_job_has_no_curves(tmp_path: Path) -> None:
    store = SqliteRunStore(tmp_path / "runs.db")
    run = store.create(make_run())
    body = client_for(tmp_path, store).get(f"/local/runs/{run.run_id}/curves").json()
    assert body == {"run_id": run.run_id, "training_job_name": None, "curves": []}
