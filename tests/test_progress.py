"""Progress of long work: a bar on a terminal, plain lines in a log, nothing when asked to be quiet."""

from __future__ import annotations

import io

import pytest

from mstvsc_stream.progress import Progress


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def run_steps(stream: io.StringIO, total: int, quiet: bool = False) -> str:
    with Progress(total, "eval", quiet=quiet, stream=stream) as progress:
        for index in range(total):
            progress.step(f"GOP {index + 1}")
    return stream.getvalue()


def test_a_terminal_gets_a_bar() -> None:
    shown = run_steps(Terminal(), 20)
    assert "eval:" in shown and "20/20" in shown and "\r" in shown, "tqdm redraws one line"


def test_a_log_gets_a_plain_line_every_tenth_and_at_the_end() -> None:
    lines = run_steps(io.StringIO(), 25).splitlines()
    assert lines[0] == "eval: 1/25 (GOP 1)" and lines[-1] == "eval: 25/25 (GOP 25)"
    assert 9 <= len(lines) <= 14 and "\r" not in "".join(lines)


@pytest.mark.parametrize("stream", [Terminal(), io.StringIO()], ids=["terminal", "log"])
def test_quiet_shows_nothing(stream: io.StringIO) -> None:
    assert run_steps(stream, 25, quiet=True) == ""
