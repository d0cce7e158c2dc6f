"""Both entry points end to end on tiny synthetic data in both channel layouts."""

from __future__ import annotations

import json

import pytest
import torch
from PIL import Image

from metric_definitions import TUNING_METRIC_DEFINITIONS, parse_metrics
from tests.integration.training.fast import fast_args
from trainlib.preprocess import build_eval_transform
from trainlib.synthetic import make_images, write_dataset

FAST = fast_args()


def metric_lines(stdout: str) -> list[dict[str, float]]:
    return [m for m in (parse_metrics(line) for line in stdout.splitlines()) if m]


def predict_with_artifact(model_dir, images):
    """What the endpoint does: TorchScript + the preprocess dict from metadata.json."""
    metadata = json.loads((model_dir / "metadata.json").read_text())
    model = torch.jit.load(str(model_dir / metadata["weights_file"]))
    transform = build_eval_transform(metadata["preprocess"])
    batch = torch.stack([transform(Image.fromarray(im)) for im in images])
    with torch.no_grad():
        return model(batch).argmax(1)


def assert_onnx_answers_like_model_pt(model_dir, images):
    """Both ONNX graphs take the endpoint's preprocessed batch and answer as model.pt does."""
    import onnxruntime

    metadata = json.loads((model_dir / "metadata.json").read_text())
    transform = build_eval_transform(metadata["preprocess"])
    batch = torch.stack([transform(Image.fromarray(im)) for im in images])
    with torch.no_grad():
        expected = torch.jit.load(str(model_dir / "model.pt"))(batch)
    for name in metadata["serving_graphs"].values():
        session = onnxruntime.InferenceSession(str(model_dir / name))
        logits = torch.from_numpy(session.run(None, {"input": batch.numpy()})[0])
        assert torch.equal(logits.argmax(1), expected.argmax(1)), name
        if name == "model.onnx":
            assert torch.allclose(logits, expected, atol=1e-4)


def train_four_classes(job, *args: str, **env: str):
    """train_model.py for 3 epochs on 4 learnable CIFAR-layout classes (24 + 8 per class)."""
    write_dataset(job.root / "data", "cifar", num_classes=4, train_per_class=24, test_per_class=8)
    result = job.run(
        "train_model.py", *FAST, "--epochs", "3", "--learning_rate", "0.05", *args, **env
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def test_train_model_learns_and_writes_the_full_artifact(job):
    code = job.root / "handler"
    code.mkdir()
    (code / "inference.py").write_text("def model_fn(model_dir): ...\n")
    (code / "requirements.txt").write_text("pillow\n")
    hook_config = job.root / "hook.json"
    hook_config.write_text(json.dumps({"LocalPath": str(job.root / "smdebug")}))
    result = train_four_classes(
        job,
        "--log_interval",
        "1",
        SM_CHANNEL_INFERENCE_CODE=str(code),
        SMDEBUG_CONFIG_FILE_PATH=str(hook_config),
    )

    # Metric lines: every kind present, read by the shared regexes, values parse.
    parsed = metric_lines(result.stdout)
    batches = [m for m in parsed if "batch_loss" in m]
    epochs = [m for m in parsed if "val_acc" in m]
    finals = [m for m in parsed if "test_acc" in m]
    steps_per_epoch = 6  # 88 train images (2 of each class's 24 held out) in batches of 16
    assert len(batches) == 3 * steps_per_epoch
    assert len(epochs) == 3
    assert len(finals) == 1
    assert set(epochs[-1]) == {"train_loss", "train_acc", "val_loss", "val_acc"}
    for line in result.stdout.splitlines():
        if "val_acc=" in line:
            assert set(parse_metrics(line, TUNING_METRIC_DEFINITIONS)) >= {"val_acc"}
    assert all(0.0 <= m[k] <= 1.0 for m in parsed for k in m if k.endswith("_acc"))

    # Learning: 4 classes (chance 0.25); the signal is there to be learnt.
    assert finals[0]["test_acc"] >= 0.8, result.stdout[-2000:]
    assert epochs[-1]["val_acc"] >= 0.75

    # Artifact: TorchScript that predicts with the metadata's preprocessing.
    model_dir = job.model_dir
    assert sorted(p.name for p in model_dir.iterdir()) == [
        "classes.json",
        "code",
        "evaluation.json",
        "metadata.json",
        "model.int8.onnx",
        "model.onnx",
        "model.pt",
    ]
    assert sorted(p.name for p in (model_dir / "code").iterdir()) == [
        "inference.py",
        "requirements.txt",
    ]
    classes = json.loads((model_dir / "classes.json").read_text())
    assert classes == ["class_00", "class_01", "class_02", "class_03"]
    metadata = json.loads((model_dir / "metadata.json").read_text())
    assert metadata["num_classes"] == 4
    assert metadata["image_size"] == 32
    assert metadata["preprocess"]["source_size"] == [32, 32]
    assert metadata["training_job_name"] == "cifar100-r20261128030512ab12-final"
    assert metadata["hyperparameters"] == {
        "learning_rate": 0.05,
        "batch_size": 16,
        "epochs": 3,
        "image_size": 32,
        "pretrained": False,
    }
    assert abs(metadata["metrics"]["test_acc"] - finals[0]["test_acc"]) < 1e-4
    images, labels = make_images(4, 5, seed=99)
    predictions = predict_with_artifact(model_dir, images)
    assert (predictions == torch.as_tensor(labels)).float().mean() >= 0.8

    # Serving graphs: both shipped, checked on the 8 validation images, their figures in
    # metadata.json and in one metric line of the final job's definitions, after the test line.
    assert metadata["serving_graphs"] == {"fp32": "model.onnx", "int8": "model.int8.onnx"}
    int8 = metadata["int8"]
    assert int8["shipped"] is True
    assert int8["images"] == 8
    assert int8["calibration_images"] == 8
    figures = [m for m in parsed if "int8_agreement" in m]
    assert figures == [
        pytest.approx(
            {"int8_agreement": int8["agreement"], "int8_accuracy_drop": int8["accuracy_drop"]},
            abs=1e-4,
        )
    ]
    assert metadata["metrics"].keys() == {"test_acc", "test_loss", "val_acc"}
    assert_onnx_answers_like_model_pt(model_dir, images)

    # evaluation.json, with no champion to compare with (a first run): in both places.
    evaluation = json.loads((model_dir / "evaluation.json").read_text())
    assert evaluation == json.loads((job.output_dir / "evaluation.json").read_text())
    assert evaluation["test_images"] == 32
    assert abs(evaluation["candidate"]["test_acc"] - finals[0]["test_acc"]) < 1e-4
    assert evaluation["champion"] is None
    assert evaluation["comparison"] is None
    assert not [line for line in result.stdout.splitlines() if "champion" in line]

    # Instrumentation: metrics.json, curves, TensorBoard events.
    record = json.loads((job.output_dir / "metrics.json").read_text())
    assert len(record["batches"]) == len(batches)
    assert abs(record["final"]["test_acc"] - finals[0]["test_acc"]) < 1e-4
    for name in ("batch_curves.png", "epoch_curves.png"):
        assert (job.output_dir / name).read_bytes().startswith(b"\x89PNG")
    assert list((job.output_dir / "tensorboard").glob("events.out.tfevents.*"))

    # smdebug read back: a batch tensor per step and an epoch tensor per epoch, the last included.
    from smdebug import modes
    from smdebug.trials import create_trial

    trial = create_trial(str(job.root / "smdebug"))
    n_steps = 3 * steps_per_epoch
    assert trial.tensor("batch_loss").steps(mode=modes.TRAIN) == list(range(n_steps))
    assert trial.tensor("batch_accuracy").steps(mode=modes.TRAIN) == list(range(n_steps))
    last_loss = float(trial.tensor("batch_loss").value(n_steps - 1, mode=modes.TRAIN))
    assert abs(last_loss - batches[-1]["batch_loss"]) < 1e-3
    val_acc = trial.tensor("epoch_val_accuracy")
    assert val_acc.steps(mode=modes.EVAL) == [0, 1, 2]
    assert abs(float(val_acc.value(2, mode=modes.EVAL)) - epochs[-1]["val_acc"]) < 1e-3


# train_model.py on the CIFAR layout is the full test above; these cover the other three
# (entry point, layout) pairs at the cheapest settings: 3 classes, 1 epoch, 32 px.
@pytest.mark.parametrize(
    ("script", "layout"),
    [("hpo.py", "imagefolder"), ("hpo.py", "cifar"), ("train_model.py", "imagefolder")],
)
def test_entry_point_on_each_layout(job, script, layout):
    size = 32 if layout == "cifar" else 24  # the pickles are 32x32; a folder may be any size
    write_dataset(
        job.root / "data", layout, num_classes=3, train_per_class=10, test_per_class=4, size=size
    )
    env = {}
    if script == "train_model.py":
        # A Debugger hook config, but an smdebug that cannot be imported (PyTorch 2.x
        # containers may not ship it): one warning, and the job trains the same.
        stub = job.root / "no-smdebug" / "smdebug"
        stub.mkdir(parents=True)
        (stub / "__init__.py").write_text("raise ImportError('smdebug is not installed')\n")
        hook_config = job.root / "hook.json"
        hook_config.write_text(json.dumps({"LocalPath": str(job.root / "smdebug")}))
        env = {
            "PYTHONPATH": str(job.root / "no-smdebug"),
            "SMDEBUG_CONFIG_FILE_PATH": str(hook_config),
        }
    # A trial keeps its model only when asked (test_a_trial_keeps_its_metrics_but_no_weights).
    keep = ["--save_model", "true"] if script == "hpo.py" else []
    result = job.run(
        script,
        *FAST,
        *keep,
        "--epochs",
        "1",
        "--learning_rate",
        "0.01",
        "--_tuning_objective_metric",
        "val_acc",
        **env,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    epoch_lines = [m for m in metric_lines(result.stdout) if "val_acc" in m]
    assert len(epoch_lines) == 1
    assert json.loads((job.model_dir / "classes.json").read_text()) == [
        "class_00",
        "class_01",
        "class_02",
    ]
    assert torch.jit.load(str(job.model_dir / "model.pt"))(torch.zeros(1, 3, 32, 32)).shape == (
        1,
        3,
    )
    assert (job.output_dir / "metrics.json").is_file()
    metadata = json.loads((job.model_dir / "metadata.json").read_text())
    assert metadata["preprocess"]["source_size"] == [size, size]
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning: ")]
    if script == "hpo.py":  # lean: no TensorBoard, no curves, no inference code
        assert not (job.output_dir / "tensorboard").exists()
        assert not list(job.output_dir.glob("*.png"))
        assert not (job.model_dir / "code").exists()
        assert warnings == []
    else:
        assert list((job.output_dir / "tensorboard").glob("events.out.tfevents.*"))
        assert sorted(p.name for p in job.output_dir.glob("*.png")) == [
            "batch_curves.png",
            "epoch_curves.png",
        ]
        assert len(warnings) == 1, result.stderr[-2000:]
        assert "smdebug cannot be imported" in warnings[0]
        assert not (job.root / "smdebug").exists()


def test_help_documents_every_option(job):
    for script in ("hpo.py", "train_model.py"):
        result = job.run(script, "--help")
        assert result.returncode == 0
        for option in (
            "--learning_rate",
            "--batch_size",
            "--epochs",
            "--image_size",
            "--pretrained",
            "--train",
            "--test",
            "--model-dir",
            "--output-data-dir",
            "--inference-code",
        ):
            assert option in result.stdout


def test_a_trial_keeps_its_metrics_but_no_weights(job):
    """Nothing reads a trial's weights (the final job retrains with the best trial's
    hyperparameters), so by default a trial leaves its model dir empty."""
    write_dataset(job.root / "data", "cifar", num_classes=3, train_per_class=10, test_per_class=4)
    result = job.run("hpo.py", *FAST, "--epochs", "2", "--_tuning_objective_metric", "val_acc")
    assert result.returncode == 0, result.stderr[-3000:]
    assert list(job.model_dir.iterdir()) == []
    assert [p.name for p in job.root.iterdir() if "staging" in p.name] == []
    assert "model not saved" in result.stdout
    epochs = [m for m in metric_lines(result.stdout) if "val_acc" in m]
    finals = [m for m in metric_lines(result.stdout) if "test_acc" in m]
    assert len(epochs) == 2
    assert len(finals) == 1
    assert sorted(p.name for p in job.output_dir.iterdir()) == ["metrics.json"]
    record = json.loads((job.output_dir / "metrics.json").read_text())
    assert [e["epoch"] for e in record["epochs"]] == [1, 2]
    assert abs(record["epochs"][-1]["val_acc"] - epochs[-1]["val_acc"]) < 1e-4
    assert abs(record["final"]["test_acc"] - finals[0]["test_acc"]) < 1e-4
    assert record["hyperparameters"]["image_size"] == 32
    assert record["job_name"] == job.env["TRAINING_JOB_NAME"]


def test_only_a_trial_may_skip_its_model(job):
    help_text = job.run("hpo.py", "--help").stdout
    assert "--save_model" in help_text
    assert "nothing uses a trial's weights" in " ".join(help_text.split())
    assert "--save_model" not in job.run("train_model.py", "--help").stdout
    # The final job's artifact is what gets deployed: it cannot be turned off.
    refused = job.run("train_model.py", *FAST, "--save_model", "false")
    assert refused.returncode == 2
    assert "unrecognized arguments: --save_model" in refused.stderr


def test_the_final_jobs_int8_graph_serves_through_the_serving_toolkit(job):
    """The int8 path end to end: train_model.py writes model.int8.onnx (and copies the real
    handler into code/, as the final job's inference_code channel does); the SageMaker
    container's serving stack loads that artifact and answers from the int8 graph."""
    from tests.support.serving_toolkit import served
    from tests.unit.handler.artifacts import HANDLER_DIR, encode

    train_four_classes(job, SM_CHANNEL_INFERENCE_CODE=str(HANDLER_DIR))
    metadata = json.loads((job.model_dir / "metadata.json").read_text())
    assert metadata["serving_graphs"].get("int8") == "model.int8.onnx", metadata.get("int8")

    images, labels = make_images(4, 5, seed=99)
    expected = predict_with_artifact(job.model_dir, images)  # model.pt, as training scores it
    with served(job.model_dir, INFERENCE_PRECISION="int8") as endpoint:
        answers = [endpoint.invoke(encode(image, "PNG"), "image/png") for image in images]
        model = endpoint.service._service._model  # what model_fn returned in the worker
        assert (model.backend, model.precision, model.source) == (
            "onnxruntime",
            "int8",
            "model.int8.onnx",
        )
    top1 = []
    for status, content_type, text in answers:
        assert (status, content_type) == (200, "application/json"), text
        prediction = json.loads(text)["predictions"][0]
        top1.append(prediction["index"])
        assert prediction["label"] == f"class_{prediction['index']:02d}"
    assert (torch.tensor(top1) == torch.as_tensor(labels)).float().mean() >= 0.8
    assert (torch.tensor(top1) == expected).float().mean() >= 0.9  # int8 answers as model.pt
