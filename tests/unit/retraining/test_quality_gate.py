"""The quality gate: good enough, and significantly better than the champion on the same test
images (the final job's paired comparison and exact McNemar p-value)."""

from __future__ import annotations

import pytest

import metric_definitions
from retraining.quality_gate import (
    CHAMPION_METRIC,
    GATE_METRIC,
    P_VALUE_METRIC,
    MissingMetric,
    decide,
)
from retraining.settings import Settings


def compared(candidate: float, champion: float, p_value: float) -> dict[str, float]:
    return {GATE_METRIC: candidate, CHAMPION_METRIC: champion, P_VALUE_METRIC: p_value}


def gate(metrics: dict[str, float], champion: bool = True, margin: float = 0.0, **kw: float):
    return decide(
        metrics,
        champion,
        min_accuracy=kw.get("min_accuracy", 0.5),
        margin=margin,
        significance=kw.get("significance", 0.05),
    )


def test_the_gate_reads_the_metrics_the_final_job_reports():
    assert (GATE_METRIC, CHAMPION_METRIC, P_VALUE_METRIC) == (
        "test_acc",
        "champion_test_acc",
        "mcnemar_p_value",
    )
    reported = {d["Name"] for d in metric_definitions.METRIC_DEFINITIONS}
    assert {GATE_METRIC, CHAMPION_METRIC, P_VALUE_METRIC} <= reported


@pytest.mark.parametrize("margin", [0.0, 0.01])
def test_identical_models_never_deploy(margin):
    decision = gate(compared(0.71, 0.71, 1.0), margin=margin)
    assert decision.passed is False
    assert "+0.00 points, p=1" in decision.reason
    assert "not better" in decision.reason
    assert (decision.candidate, decision.champion, decision.p_value) == (0.71, 0.71, 1.0)


def test_a_tiny_improvement_that_is_noise_is_refused():
    decision = gate(compared(0.7130, 0.7100, 0.41))
    assert decision.passed is False
    assert "test_acc 0.7130 vs the champion's 0.7100 on the same test images" in decision.reason
    assert "+0.30 points, p=0.41" in decision.reason
    assert "not significant (p >= 0.05, GATE_SIGNIFICANCE)" in decision.reason


def test_a_clearly_better_model_passes():
    decision = gate(compared(0.7400, 0.7100, 1e-6))
    assert decision.passed is True
    assert "+3.00 points, p=1e-06 < 0.05: better" in decision.reason
    assert decision.p_value == 1e-6
    assert decision.champion == 0.71


def test_significance_is_strict_and_configurable():
    assert not gate(compared(0.74, 0.71, 0.05)).passed  # p must be below it
    assert gate(compared(0.74, 0.71, 0.049)).passed
    assert not gate(compared(0.74, 0.71, 0.02), significance=0.01).passed
    assert gate(compared(0.74, 0.71, 0.02), significance=0.1).passed


def test_a_worse_model_is_refused_whatever_its_p_value():
    decision = gate(compared(0.69, 0.71, 1e-9))
    assert decision.passed is False
    assert "-2.00 points" in decision.reason
    assert "not better" in decision.reason


def test_below_the_minimum_is_refused_even_when_it_beats_the_champion():
    decision = gate(compared(0.45, 0.30, 1e-9))
    assert decision.passed is False
    assert decision.reason == "test_acc 0.4500 is below the minimum 0.5000"
    assert decision.champion is None


@pytest.mark.parametrize(
    ("metrics", "missing"),
    [
        ({GATE_METRIC: 0.8}, CHAMPION_METRIC),
        ({GATE_METRIC: 0.8, CHAMPION_METRIC: 0.7}, P_VALUE_METRIC),
        ({GATE_METRIC: 0.8, P_VALUE_METRIC: 0.001}, CHAMPION_METRIC),
    ],
)
def test_a_job_given_a_champion_must_report_the_comparison(metrics, missing):
    with pytest.raises(MissingMetric, match=f"no {missing} although it was given the champion"):
        gate(metrics)


def test_no_gate_metric_at_all_is_missing():
    with pytest.raises(MissingMetric, match="reported no test_acc"):
        gate({"val_acc": 0.9}, champion=False)


def test_with_no_champion_the_minimum_alone_decides():
    passed = gate({GATE_METRIC: 0.5}, champion=False)
    assert passed.passed is True
    assert "no model in service to compare with" in passed.reason
    assert (passed.champion, passed.p_value) == (None, None)
    assert not gate({GATE_METRIC: 0.49}, champion=False).passed
    # Comparison metrics without a champion (cannot happen, but) are not read.
    assert gate(compared(0.6, 0.9, 0.9), champion=False).passed


@pytest.mark.parametrize(
    ("candidate", "passed"),
    [(0.72, True), (0.71, True), (0.709, False), (0.7001, False)],
)
def test_the_margin_is_respected(candidate, passed):
    decision = gate(compared(candidate, 0.70, 1e-6), margin=0.01)
    assert decision.passed is passed
    if not passed:
        assert "not better (needs +1.00)" in decision.reason


def test_without_a_margin_any_significant_gain_passes():
    assert gate(compared(0.7001, 0.70, 1e-6), margin=0.0).passed


def test_a_log_line_as_sagemaker_reads_it_decides_the_gate():
    """train_model.py prints the comparison with format_metrics; the regexes read it back
    (a p-value of 3e-07 with four decimals would read 0.0000)."""
    line = metric_definitions.format_metrics(
        test_loss=1.01, test_acc=0.7412, champion_test_acc=0.7105, mcnemar_p_value=3e-07
    )
    metrics = metric_definitions.parse_metrics(line)
    assert metrics[P_VALUE_METRIC] == pytest.approx(3e-07)
    decision = gate(metrics)
    assert decision.passed is True
    assert "+3.07 points, p=3e-07" in decision.reason


def test_gate_significance_is_read_from_the_environment(monkeypatch):
    monkeypatch.setenv("GATE_SIGNIFICANCE", "0.01")
    assert Settings(_env_file=None).gate_significance == 0.01
    monkeypatch.setenv("GATE_SIGNIFICANCE", "0")
    with pytest.raises(ValueError, match="gate_significance"):
        Settings(_env_file=None)
    monkeypatch.delenv("GATE_SIGNIFICANCE")
    assert Settings(_env_file=None).gate_significance == 0.05
