"""One line to stderr in one write, so that ranks sharing the stream never split each other's lines."""

from __future__ import annotations

import sys


def say(line: str) -> None:
    """``print(line, file=sys.stderr)`` issues two writes, the text and then its newline, when
    the stream is unbuffered (PYTHONUNBUFFERED, which the SageMaker framework images and the
    local runner set); two torchrun ranks then interleave as ``error: aerror: a``. One write
    of at most PIPE_BUF bytes to a pipe is atomic (POSIX), so a whole line goes at once."""
    sys.stderr.write(line + "\n")
    sys.stderr.flush()
