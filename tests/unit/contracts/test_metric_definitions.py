import math
import re

import pytest

from metric_definitions import (
    ALL_METRICS,
    METRIC_DEFINITIONS,
    OBJECTIVE_METRIC,
    TUNING_METRIC_DEFINITIONS,
    format_metrics,
    parse_metrics,
)


def test_every_metric_has_one_definition_and_valid_regex():
    names = [d["Name"] for d in METRIC_DEFINITIONS]
    assert names == list(ALL_METRICS)
    for definition in METRIC_DEFINITIONS:
        assert re.compile(definition["Regex"]).groups == 1
        assert len(definition["Regex"]) <= 500  # SageMaker's limit


def test_tuning_definitions_hold_the_objective_and_fit_sagemaker_limit():
    assert OBJECTIVE_METRIC in {d["Name"] for d in TUNING_METRIC_DEFINITIONS}
    assert len(TUNING_METRIC_DEFINITIONS) <= 20


def test_formatted_epoch_line_round_trips():
    line = format_metrics(epoch=3, train_loss=1.234, train_acc=0.541, val_loss=1.456, val_acc=0.612)
    assert line == "epoch=3 train_loss=1.2340 train_acc=0.5410 val_loss=1.4560 val_acc=0.6120"
    assert parse_metrics(line) == pytest.approx(
        {"train_loss": 1.234, "train_acc": 0.541, "val_loss": 1.456, "val_acc": 0.612}
    )


def test_names_do_not_match_inside_longer_names():
    # "val_acc" must not be read out of "batch_val_acc", nor "acc" out of "train_acc".
    assert parse_metrics("batch_val_acc=0.9 xtest_acc=0.8") == {}


def test_scientific_notation_and_non_finite_values():
    assert parse_metrics("batch_loss=2.5e-03")["batch_loss"] == pytest.approx(0.0025)
    line = format_metrics(val_acc=math.nan)
    assert parse_metrics(line) == {}  # a diverged trial never reports an objective


def test_format_rejects_non_numbers():
    with pytest.raises(TypeError):
        format_metrics(val_acc="0.5")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        format_metrics(val_acc=True)
