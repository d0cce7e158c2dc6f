"""The exact McNemar test: do two classifiers, scored on the same images, differ?

Both models see the same test images, so their results are paired: images both get right or
both get wrong say nothing about which is better. Only the discordant pairs count,
``b`` (candidate right, champion wrong) and ``c`` (candidate wrong, champion right). Under
"equally good" each discordant image is a fair coin, so ``b ~ Binomial(b + c, 1/2)``; the
two-sided p-value is ``min(1, 2 * P[X <= min(b, c)])``. It is computed exactly with Python
integers: the normal approximation (chi-squared with or without continuity correction) is
poor for the small ``b + c`` a close race gives.
"""

from __future__ import annotations

#: What evaluation.json names the test.
TEST_NAME = "exact McNemar (two-sided binomial on discordant pairs)"


def exact_mcnemar_p_value(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value from the discordant counts (1.0 when there are none)."""
    for name, value in (("b", b), ("c", c)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"{name} must be a count (a non-negative int), got {value!r}")
    n = b + c
    if abs(b - c) <= 1:  # also b + c == 0: P[X <= min(b, c)] >= 1/2 by symmetry, so p = 1
        return 1.0
    # sum_{i <= k} comb(n, i), each term from the last one: exact, k big-int steps rather
    # than k comb() calls (n = 100k, k = 49k: about 2 s; a typical 10k-image test: ms).
    term, tail = 1, 1
    for i in range(min(b, c)):
        term = term * (n - i) // (i + 1)
        tail += term
    numerator, denominator = 2 * tail, 1 << n
    if numerator >= denominator:
        return 1.0
    # int / int is correctly rounded in Python, however large both are (tiny results
    # underflow to a subnormal or 0.0, never an error).
    return numerator / denominator
