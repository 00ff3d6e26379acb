"""Progress of long offline work (evaluation, export, shipping a model), shown the way the user can see it.

On a terminal: a tqdm bar on standard error, as the training tool shows. Not on a terminal (a log file,
CI): a plain line at every tenth of the work, so a log still says how far a run got. With ``quiet``:
nothing. Log records and results printed through :meth:`Progress.print` go above the bar instead of
tearing it.
"""

from __future__ import annotations

import sys
from types import TracebackType
from typing import TextIO

from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

STEPS_PER_LINE = 10  # plain lines per run when not on a terminal


class Progress:
    """``total`` steps of ``description``; :meth:`step` after each one, optionally saying what it was."""

    def __init__(self, total: int, description: str, *, quiet: bool = False, unit: str = "step",
                 stream: TextIO | None = None) -> None:
        self.total = max(0, total)
        self.done = 0
        self.description = description
        self._stream = stream or sys.stderr
        self._quiet = quiet
        self._bar = None
        self._logging = logging_redirect_tqdm()
        self._next_line = 0
        if not quiet and self._stream.isatty():
            self._bar = tqdm(total=self.total, desc=description, unit=unit, file=self._stream, dynamic_ncols=True)
            self._logging.__enter__()

    def step(self, note: str = "") -> None:
        self.done += 1
        if self._bar is not None:
            if note:
                self._bar.set_postfix_str(note, refresh=False)
            self._bar.update()
        elif not self._quiet and (self.done >= self._next_line or self.done == self.total):
            self._next_line = self.done + max(1, self.total // STEPS_PER_LINE)
            suffix = f" ({note})" if note else ""
            print(f"{self.description}: {self.done}/{self.total}{suffix}", file=self._stream, flush=True)

    def print(self, text: str) -> None:
        """A result line on standard output, above the bar."""
        if self._bar is not None:
            self._bar.write(text, file=sys.stdout)
        else:
            print(text, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._logging.__exit__(None, None, None)
            self._bar.close()
            self._bar = None

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
                 ) -> None:
        self.close()
