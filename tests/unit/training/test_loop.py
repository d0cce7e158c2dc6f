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


def test_evaluate_is_the_mean_of_the_per_image_results() -> None:
    import torch
    from torch import nn

    from trainlib.data import ImageSet
    from trainlib.loop import Runtime, evaluate, evaluate_images

    torch.manual_seed(0)
    images = torch.randint(0, 256, (10, 3, 4, 4), dtype=torch.uint8)
    data = ImageSet(images, torch.arange(10) % 3, ["a", "b", "c"])
    model = nn.Sequential(nn.Flatten(), nn.Linear(48, 3))
    runtime = Runtime(torch.device("cpu"), None, False)

    def transform(x: torch.Tensor) -> torch.Tensor:
        return x.float() / 255

    result = evaluate_images(model, data, transform, runtime, batch_size=4)  # 4 + 4 + 2
    with torch.no_grad():
        logits = model(transform(images))
    assert result.correct.dtype == torch.bool
    assert torch.equal(result.correct, logits.argmax(1) == data.labels)
    assert result.accuracy == int(result.correct.sum()) / 10
    expected_loss = nn.functional.cross_entropy(logits, data.labels).item()
    assert result.loss == pytest.approx(expected_loss, rel=1e-5)
    assert evaluate(model, data, transform, runtime, 4) == (result.loss, result.accuracy)
