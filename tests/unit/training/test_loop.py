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


class _Stream:
    """stderr as a terminal or as SageMaker's log pipe."""

    def __init__(self, tty: bool) -> None:
        self.tty, self.written = tty, []

    def isatty(self) -> bool:
        return self.tty

    def write(self, text: str) -> int:
        self.written.append(text)
        return len(text)

    def flush(self) -> None:
        pass


@pytest.mark.parametrize("tty", [True, False])
def test_progress_bar_only_in_a_terminal(monkeypatch: pytest.MonkeyPatch, tty: bool) -> None:
    from trainlib import loop

    stream = _Stream(tty)
    monkeypatch.setattr(loop.sys, "stderr", stream)
    items = list(loop._progress(range(3), total=3, desc="epoch 1"))
    assert items == [0, 1, 2]
    drawn = "".join(stream.written)
    if tty:
        # tqdm's bar went to the terminal
        assert "epoch 1" in drawn
        assert "/3 [" in drawn  # a bar with its counter, cleared at the end (leave=False)
    else:
        assert drawn == ""  # SageMaker's logs get the metric lines only
