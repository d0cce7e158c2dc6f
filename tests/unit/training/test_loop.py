import pytest

from trainlib.loop import warmup_cosine


def test_warmup_rises_linearly_then_cosine_decays_to_zero():
    factor = warmup_cosine(total_steps=100, warmup_steps=10)
    assert factor(0) == pytest.approx(0.1)
    assert factor(9) == pytest.approx(1.0)
    assert factor(10) == pytest.approx(1.0)
    assert factor(55) == pytest.approx(0.5)
    assert factor(100) == pytest.approx(0.0)
    values = [factor(s) for s in range(10, 101)]
    assert values == sorted(values, reverse=True)
