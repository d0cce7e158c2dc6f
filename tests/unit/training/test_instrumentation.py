import json
import sys

import pytest

from metric_definitions import METRIC_DEFINITIONS, parse_metrics
from trainlib.instrumentation import (
    MetricLines,
    MetricsHistory,
    SmdebugScalars,
    smdebug_config_path,
)


def test_metric_lines_are_read_by_the_shared_regexes():
    lines: list[str] = []
    sink = MetricLines(log_interval=2, write=lines.append)
    sink.batch(1, 1, 2.5, 0.25)
    sink.batch(1, 2, 2.0, 0.5)
    sink.epoch(1, {"train_loss": 2.1, "train_acc": 0.3, "val_loss": 2.2, "val_acc": 0.35})
    sink.final({"test_loss": 2.3, "test_acc": 0.33})
    assert len(lines) == 3  # step 1 skipped by the interval
    assert parse_metrics(lines[0], METRIC_DEFINITIONS) == {"batch_loss": 2.0, "batch_acc": 0.5}
    assert parse_metrics(lines[1])["val_acc"] == 0.35
    assert parse_metrics(lines[2]) == {"test_loss": 2.3, "test_acc": 0.33}


def test_history_writes_metrics_json_and_curves(tmp_path):
    sink = MetricsHistory(tmp_path, {"job_name": "j"}, plots=True)
    for step in (1, 2):
        sink.batch(1, step, 1.0 / step, 0.5)
    sink.epoch(1, {"train_loss": 1, "train_acc": 0.5, "val_loss": 1.2, "val_acc": 0.4})
    sink.final({"test_loss": 1.3, "test_acc": 0.45})
    sink.close()
    record = json.loads((tmp_path / "metrics.json").read_text())
    assert record["job_name"] == "j"
    assert [b["step"] for b in record["batches"]] == [1, 2]
    assert record["final"]["test_acc"] == 0.45
    for name in ("batch_curves.png", "epoch_curves.png"):
        assert (tmp_path / name).read_bytes().startswith(b"\x89PNG")


def test_no_hook_config_means_no_smdebug(monkeypatch, tmp_path):
    monkeypatch.setenv("SMDEBUG_CONFIG_FILE_PATH", str(tmp_path / "absent.json"))
    assert smdebug_config_path() is None
    assert SmdebugScalars.create() is None


def test_smdebug_keeps_every_step_even_when_the_config_saves_rarely(monkeypatch, tmp_path):
    from smdebug import modes
    from smdebug.trials import create_trial

    out = tmp_path / "smdebug"
    config = tmp_path / "hook.json"
    # A job config that saves its own collections only every 500 steps.
    config.write_text(
        json.dumps({"LocalPath": str(out), "HookParameters": {"save_interval": "500"}})
    )
    monkeypatch.setenv("SMDEBUG_CONFIG_FILE_PATH", str(config))
    recorder = SmdebugScalars.create()
    assert recorder is not None
    for step in range(1, 4):
        recorder.batch(1, step, float(step), step / 10)
    recorder.epoch(1, {"val_acc": 0.9, "val_loss": 0.1})
    recorder.close()
    trial = create_trial(str(out))
    loss = trial.tensor("batch_loss")
    assert loss.steps(mode=modes.TRAIN) == [0, 1, 2]
    assert float(loss.value(2, mode=modes.TRAIN)) == 3.0  # the last value survives close()
    assert float(trial.tensor("epoch_val_accuracy").value(0, mode=modes.EVAL)) == pytest.approx(0.9)


def test_hook_config_without_smdebug_warns_once_and_trains_on(monkeypatch, tmp_path, capsys):
    # PyTorch 2.x deep learning containers may not ship smdebug: simulate its import failing.
    monkeypatch.setitem(sys.modules, "smdebug", None)
    monkeypatch.setitem(sys.modules, "smdebug.pytorch", None)
    config = tmp_path / "hook.json"
    config.write_text(json.dumps({"LocalPath": str(tmp_path / "smdebug")}))
    monkeypatch.setenv("SMDEBUG_CONFIG_FILE_PATH", str(config))
    assert SmdebugScalars.create() is None  # no recorder: the run goes on without the hook
    err = capsys.readouterr().err.splitlines()
    warnings = [line for line in err if line.startswith("warning: ")]
    assert len(warnings) == 1, err
    assert str(config) in warnings[0]
    assert "smdebug cannot be imported" in warnings[0]
    assert not (tmp_path / "smdebug").exists()


def test_no_hook_config_and_no_smdebug_is_silent(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "smdebug.pytorch", None)
    monkeypatch.setenv("SMDEBUG_CONFIG_FILE_PATH", str(tmp_path / "absent.json"))
    assert SmdebugScalars.create() is None
    assert capsys.readouterr().err == ""
