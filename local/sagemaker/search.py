"""The tuner's search: sample hyperparameters from SageMaker's ParameterRanges.

Random search (what SageMaker's ``Random`` strategy does), also used for ``Bayesian``: with
the handful of trials a laptop runs, a surrogate model has nothing to learn from. The seed
is the tuning job name, so a rerun of the same job samples the same trials.
"""

from __future__ import annotations

import itertools
import math
import random
from typing import Any


def _sample(low: float, high: float, scaling: str, rng: random.Random) -> float:
    if scaling == "Logarithmic" and low > 0:
        return math.exp(rng.uniform(math.log(low), math.log(high)))
    if scaling == "ReverseLogarithmic" and high < 1:
        return 1 - math.exp(rng.uniform(math.log(1 - high), math.log(1 - low)))
    return rng.uniform(low, high)


def sample_trials(
    ranges: dict[str, Any], count: int, strategy: str, seed: str
) -> list[dict[str, str]]:
    """``count`` hyperparameter sets (values as strings, as SageMaker passes them)."""
    rng = random.Random(seed)
    categorical = {r["Name"]: r["Values"] for r in ranges.get("CategoricalParameterRanges", [])}
    if strategy == "Grid":
        grid = [
            dict(zip(categorical, combo, strict=True))
            for combo in itertools.product(*categorical.values())
        ]
        return grid[:count]
    trials = []
    for _ in range(count):
        trial = {name: rng.choice(values) for name, values in categorical.items()}
        for r in ranges.get("IntegerParameterRanges", []):
            first, last = int(r["MinValue"]), int(r["MaxValue"])
            value = _sample(first, last + 0.999, r.get("ScalingType", "Auto"), rng)
            trial[r["Name"]] = str(min(last, max(first, int(value))))
        for r in ranges.get("ContinuousParameterRanges", []):
            low, high = float(r["MinValue"]), float(r["MaxValue"])
            trial[r["Name"]] = f"{_sample(low, high, r.get('ScalingType', 'Auto'), rng):.6g}"
        trials.append(trial)
    return trials
