"""Terminal progress for long steps: one line per event, with the time since the step began."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager


def say(message: str) -> None:
    # sys.__stderr__: pytest captures sys.stderr inside fixtures, but a developer waiting
    # for a 3-minute image build needs to see it move.
    stream = sys.__stderr__ or sys.stderr
    print(f"nvdimm-harness: {message}", file=stream, flush=True)


@contextmanager
def step(title: str) -> Iterator[Step]:
    s = Step(title)
    say(f"{title} ...")
    try:
        yield s
    except BaseException:
        say(f"{title}: failed after {s.elapsed():.1f}s")
        raise
    say(f"{title}: done in {s.elapsed():.1f}s")


class Step:
    def __init__(self, title: str):
        self.title = title
        self.start = time.monotonic()
        self._last = 0.0

    def elapsed(self) -> float:
        return time.monotonic() - self.start

    def note(self, message: str, every_s: float = 0.0) -> None:
        """Report progress; with every_s, rate-limit chatty sources (apt, make)."""
        now = self.elapsed()
        if every_s and now - self._last < every_s:
            return
        self._last = now
        say(f"  [{now:6.1f}s] {message}")
