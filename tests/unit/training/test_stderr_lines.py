"""Every rank's ``error:`` line reaches stderr in one write (CI once read
``error: …directoryerror: …`` from two torchrun ranks sharing one pipe)."""

import io
import sys

import pytest

from trainlib import cli
from trainlib.stderr import say


class RawWrites(io.RawIOBase):
    """The OS end of an unbuffered stream: one entry per write(2) the process would make."""

    def __init__(self) -> None:
        self.calls: list[bytes] = []

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        self.calls.append(bytes(data))
        return len(data)


def unbuffered_stderr(monkeypatch) -> RawWrites:
    """sys.stderr as PYTHONUNBUFFERED makes it (SageMaker's framework images set it): a
    write-through text layer straight over the file descriptor."""
    raw = RawWrites()
    monkeypatch.setattr(sys, "stderr", io.TextIOWrapper(raw, encoding="utf-8", write_through=True))
    return raw


def test_print_splits_a_line_on_an_unbuffered_stream(monkeypatch):
    """The premise, pinned: if CPython stops splitting, say() is no longer needed."""
    raw = unbuffered_stderr(monkeypatch)
    print("error: a", file=sys.stderr, flush=True)
    assert raw.calls == [b"error: a", b"\n"]


def test_bad_input_is_one_write_of_one_whole_line(monkeypatch, sm_env, tmp_path):
    raw = unbuffered_stderr(monkeypatch)
    code = cli.main([], prog="train_model.py", description="", instrumented=False)
    assert code == 2
    missing = tmp_path / "train"  # where sm_env points the train channel; never made
    assert raw.calls == [
        f"error: train channel {missing} does not exist or is not a directory\n".encode()
    ]


@pytest.mark.parametrize("line", ["warning: checkpoint x is unreadable", "error: é" * 40])
def test_say_writes_the_line_and_its_newline_together(monkeypatch, line):
    raw = unbuffered_stderr(monkeypatch)
    say(line)
    assert raw.calls == [(line + "\n").encode()]
