"""Terminal progress for long steps: one line per event, with the time since the step began."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager


def _write_stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


_writer: Callable[[str], None] = _write_stderr


def set_writer(writer: Callable[[str], None]) -> None:
    """Where progress goes; pytest's conftest routes it around output capture."""
    global _writer
    _writer = writer


def say(message: str) -> None:
    _writer(f"nvdimm-harness: {message}")


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


def run_streaming(cmd: list[str], on_line: Callable[[str], None], cwd: str | None = None,
                  tail_lines: int = 30) -> tuple[int, list[str]]:
    """Run a long command (bootstrap, kernel build), feeding each output line to `on_line`
    for progress; return its status and the last lines, for the error message."""
    tail: list[str] = []
    with subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, errors="replace") as proc:
        assert proc.stdout is not None
        for raw in proc.stdout:
            line = raw.rstrip()
            tail = [*tail[-(tail_lines - 1):], line]
            on_line(line)
        return proc.wait(), tail


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
