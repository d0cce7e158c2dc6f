"""The champion comparison's metric lines: names, limits, and a p-value that survives printing."""

import re

import pytest

from metric_definitions import (
    _NUMBER,
    CHAMPION_GATE_METRIC,
    COMPARISON_METRICS,
    GATE_METRIC,
    GATE_P_VALUE_METRIC,
    METRIC_DEFINITIONS,
    TUNING_METRIC_DEFINITIONS,
    format_metrics,
    parse_metrics,
)


def test_comparison_metrics_are_final_job_metrics_only() -> None:
    final = [d["Name"] for d in METRIC_DEFINITIONS]
    tuning = {d["Name"] for d in TUNING_METRIC_DEFINITIONS}
    assert set(COMPARISON_METRICS) <= set(final)
    assert not set(COMPARISON_METRICS) & tuning  # trials never compare
    assert len(final) == len(set(final)) <= 40  # CreateTrainingJob's limit
    assert len(tuning) <= 20
    assert {CHAMPION_GATE_METRIC, GATE_P_VALUE_METRIC} <= set(COMPARISON_METRICS)
    assert (CHAMPION_GATE_METRIC, GATE_P_VALUE_METRIC) == ("champion_test_acc", "mcnemar_p_value")


@pytest.mark.parametrize(
    ("p", "printed"),
    [
        (3e-7, "3e-07"),
        (1e-300, "1e-300"),
        (0.04138946533203125, "0.0413895"),
        (0.375, "0.375"),
        (1.0, "1"),
        (0.0, "0"),
    ],
)
def test_a_p_value_prints_with_significant_digits_and_reads_back(p: float, printed: str) -> None:
    line = format_metrics(mcnemar_p_value=p)
    assert line == f"mcnemar_p_value={printed}"
    assert parse_metrics(line, METRIC_DEFINITIONS)["mcnemar_p_value"] == pytest.approx(p, rel=1e-5)


@pytest.mark.parametrize("text", ["1e-07", "2.5E+3", "4.94066e-324", "0.0413895", "1", "12"])
def test_the_number_pattern_takes_exponents_whole(text: str) -> None:
    assert re.fullmatch(_NUMBER, text)
    assert float(re.search(_NUMBER, f"x={text} y").group(1)) == float(text)


def test_the_comparison_line_round_trips_exactly() -> None:
    values = {
        "champion_test_acc": 0.7123,
        "mcnemar_p_value": 1.23457e-07,
        "candidate_only_correct": 412,
        "champion_only_correct": 301,
    }
    line = format_metrics(**values)
    assert line == (
        "champion_test_acc=0.7123 mcnemar_p_value=1.23457e-07 "
        "candidate_only_correct=412 champion_only_correct=301"
    )
    assert parse_metrics(line, METRIC_DEFINITIONS) == values
    # Other floats keep their 4 decimals.
    assert format_metrics(champion_test_acc=0.71234567) == "champion_test_acc=0.7123"


def test_the_gate_metric_is_not_read_out_of_the_champions() -> None:
    assert GATE_METRIC not in parse_metrics("champion_test_acc=0.7000", METRIC_DEFINITIONS)
    both = parse_metrics("test_loss=1.1000 test_acc=0.7500", METRIC_DEFINITIONS)
    assert CHAMPION_GATE_METRIC not in both
    assert both == {"test_loss": 1.1, "test_acc": 0.75}
