"""The exact McNemar p-value against values computed independently of its implementation."""

import math
import random
from fractions import Fraction

import pytest

from trainlib.mcnemar import exact_mcnemar_p_value


def reference(b: int, c: int) -> float:
    """The definition, in exact rationals: min(1, 2 * P[X <= min(b, c)]), X ~ Bin(b + c, 1/2)."""
    n = b + c
    if n == 0:
        return 1.0
    tail = sum(Fraction(math.comb(n, i), 2**n) for i in range(min(b, c) + 1))
    return float(min(Fraction(1), 2 * tail))  # float(Fraction) is correctly rounded


@pytest.mark.parametrize(
    ("b", "c", "p"),
    [
        (10, 0, 2 / 1024),  # 2 * (1/2)^10 = 0.001953125
        (0, 10, 0.001953125),
        (5, 15, 0.04138946533203125),  # 2 * 21700 / 2^20
        (1, 4, 0.375),  # 2 * (1 + 5) / 32
        (0, 1, 1.0),  # 2 * 1/2
        (0, 0, 1.0),  # no discordant pair: no evidence either way
        (7, 7, 1.0),
        (500, 500, 1.0),
    ],
)
def test_known_values(b: int, c: int, p: float) -> None:
    assert exact_mcnemar_p_value(b, c) == p


def test_symmetric_and_exact_against_rationals() -> None:
    rng = random.Random(7)
    cases = [(rng.randrange(0, 300), rng.randrange(0, 300)) for _ in range(60)]
    cases += [(0, 1200), (3, 2000), (1000, 1100)]
    for b, c in cases:
        p = exact_mcnemar_p_value(b, c)
        assert p == exact_mcnemar_p_value(c, b)
        assert p == reference(b, c), (b, c)  # bit for bit: both are correctly rounded
        assert 0.0 <= p <= 1.0


def test_agrees_with_scipy() -> None:
    stats = pytest.importorskip("scipy.stats")
    rng = random.Random(11)
    cases = [(rng.randrange(0, 2000), rng.randrange(0, 2000)) for _ in range(40)]
    cases += [(1, 30), (12, 13), (0, 2)]
    for b, c in cases:
        if b + c == 0:
            continue
        expected = stats.binomtest(b, b + c, 0.5).pvalue
        assert exact_mcnemar_p_value(b, c) == pytest.approx(expected, rel=1e-9, abs=1e-300)


def test_large_counts_stay_exact_and_finite() -> None:
    # 2^n overflows a float from n = 1024 on; the ratio of the exact integers does not.
    assert exact_mcnemar_p_value(50_000, 50_001) == 1.0
    assert exact_mcnemar_p_value(3_300, 700) == 0.0 == reference(3_300, 700)  # < 5e-324
    assert 0.0 < exact_mcnemar_p_value(600, 400) == reference(600, 400) < 1e-9


def test_a_test_set_of_100k_images() -> None:
    # scipy's binomtest as the independent reference (normal approximation: z = -6.32).
    expected = 2.5887160383468943e-10
    assert exact_mcnemar_p_value(49_000, 51_000) == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize(("b", "c"), [(-1, 3), (2.0, 3), (True, 3), (3, None)])
def test_counts_must_be_non_negative_ints(b, c) -> None:
    with pytest.raises(ValueError, match="count"):
        exact_mcnemar_p_value(b, c)
