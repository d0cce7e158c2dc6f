"""The metric lines training prints and the regexes SageMaker reads them with.

This module is the single source of truth for both sides: the training library
formats its log lines with :func:`format_metrics`, and the orchestration builds
``MetricDefinitions`` and the tuning objective from :data:`METRIC_DEFINITIONS`.
It has no dependencies so it can ship inside the training source dir and the
Lambda package alike.
"""

from __future__ import annotations

import math
import re

# A float as Python prints it; 'nan'/'inf' deliberately do not match (see format_metrics).
_NUMBER = r"([-+]?[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)"

#: Metric names training prints, in the order of a training run.
BATCH_METRICS = ("batch_loss", "batch_acc")
EPOCH_METRICS = ("train_loss", "train_acc", "val_loss", "val_acc")
FINAL_METRICS = ("test_loss", "test_acc")
#: The final job's champion/challenger comparison on the same test images (only when it was
#: given a champion; trials never compare, so these are not tuning metrics).
COMPARISON_METRICS = (
    "champion_test_acc",
    "mcnemar_p_value",
    "candidate_only_correct",
    "champion_only_correct",
)
#: The final job's int8 serving graph against fp32 on the validation split (top-1 agreement,
#: accuracy points lost as a fraction), printed when it tried to quantize (docs/training.md).
SERVING_GRAPH_METRICS = ("int8_agreement", "int8_accuracy_drop")
ALL_METRICS = (
    BATCH_METRICS + EPOCH_METRICS + FINAL_METRICS + COMPARISON_METRICS + SERVING_GRAPH_METRICS
)

#: The HPO objective: validation accuracy on the held-out split, maximised.
OBJECTIVE_METRIC = "val_acc"
OBJECTIVE_TYPE = "Maximize"
#: The metric the quality gate compares (test split, reported once at the end).
GATE_METRIC = "test_acc"
#: The champion's accuracy on the same test images, measured in the candidate's job.
CHAMPION_GATE_METRIC = "champion_test_acc"
#: Exact two-sided McNemar p-value of candidate vs champion on those images.
GATE_P_VALUE_METRIC = "mcnemar_p_value"

# Printed with significant digits: with 4 decimals a p-value of 3e-07 would read 0.0000.
_SIGNIFICANT_DIGITS = frozenset({GATE_P_VALUE_METRIC})


def metric_regex(name: str) -> str:
    """The regex that captures ``name=<number>`` in a log line (and nothing longer)."""
    # \b (not a look-behind) keeps the regex in the plain subset SageMaker documents;
    # "_" is a word character, so "val_acc" never matches inside "xval_acc".
    return rf"\b{name}={_NUMBER}"


#: ``MetricDefinitions`` for the final job's CreateTrainingJob (SageMaker allows 40).
METRIC_DEFINITIONS: list[dict[str, str]] = [
    {"Name": name, "Regex": metric_regex(name)} for name in ALL_METRICS
]

#: The subset an HPO trial reports (SageMaker caps tuning jobs at 20 definitions).
TUNING_METRIC_DEFINITIONS: list[dict[str, str]] = [
    d for d in METRIC_DEFINITIONS if d["Name"] in EPOCH_METRICS + FINAL_METRICS
]


def format_metrics(**values: float | int) -> str:
    """One stable ``name=value`` line, e.g. ``epoch=3 train_loss=1.2340 val_acc=0.6120``.

    Integers (epoch, step, counts) print as integers, floats with 4 decimals (p-values with
    6 significant digits, e.g. ``mcnemar_p_value=3e-07``, which the regex reads). Non-finite
    values print as ``nan``/``inf`` which the regexes deliberately do not match,
    so a diverged run never reports a bogus objective.
    """
    parts = []
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(f"metric {name!r} must be a number, got {value!r}")
        if isinstance(value, int):
            parts.append(f"{name}={value}")
        elif math.isfinite(value):
            parts.append(
                f"{name}={value:.6g}" if name in _SIGNIFICANT_DIGITS else f"{name}={value:.4f}"
            )
        else:
            parts.append(f"{name}={value}")
    return " ".join(parts)


def parse_metrics(line: str, definitions: list[dict[str, str]] | None = None) -> dict[str, float]:
    """Read a log line the way SageMaker does: the first group of each regex that matches."""
    found: dict[str, float] = {}
    for definition in definitions or METRIC_DEFINITIONS:
        match = re.search(definition["Regex"], line)
        if match:
            found[definition["Name"]] = float(match.group(1))
    return found
