"""Terminal progress for long steps: one line per event, with the time since the step began."""

from __future__ import annotations

import contextlib
import os
import signal
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


def stderr_writer(prefix: str = "",
                  uncaptured: Callable[[], contextlib.AbstractContextManager] | None = None
                  ) -> Callable[[str], None]:
    """A writer for set_writer(): each line to stderr after `prefix`, inside `uncaptured()`
    (pytest's capture manager's global_and_fixture_disabled: a developer waiting for an
    image build or a TCG boot needs to see it move, and pytest captures fd 2 in fixtures)."""
    def write(line: str) -> None:
        with uncaptured() if uncaptured else contextlib.nullcontext():
            _write_stderr(prefix + line)
    return write


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
    for progress; return its status and the last lines, for the error message.

    The command gets its own process group: when we are interrupted (Ctrl-C, SIGTERM, any
    exception) the whole tree - make -j and every gcc under it, mmdebstrap and its apt/dpkg
    - is stopped before the exception goes on, instead of building on as orphans.
    """
    tail: list[str] = []
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, errors="replace", start_new_session=True)
    assert proc.stdout is not None
    try:
        for raw in proc.stdout:
            line = raw.rstrip()
            tail = [*tail[-(tail_lines - 1):], line]
            on_line(line)
        return proc.wait(), tail
    except BaseException:
        stop_process_group(proc)
        raise
    finally:
        proc.stdout.close()


def stop_process_group(proc: subprocess.Popen, grace_s: float = 5.0) -> None:
    """SIGTERM to the child's process group (make and Kbuild's rules delete half-written
    targets on it, mmdebstrap unmounts), SIGKILL to whatever is left after `grace_s`. A
    second Ctrl-C cannot cut this short and leave the tree running."""
    held = {signal.SIGINT, signal.SIGTERM}
    old = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        while time.monotonic() < deadline:
            proc.poll()  # reap the leader: a zombie still counts as a member
            if not group_members(proc.pid):
                break
            time.sleep(0.1)
        else:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        # SIGKILL is delivered asynchronously: return only once the group is really gone.
        deadline = time.monotonic() + 5
        while group_members(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def group_members(pgid: int) -> list[int]:
    """Live (not zombie) processes of process group `pgid`."""
    members = []
    for stat in os.listdir("/proc"):
        if not stat.isdigit():
            continue
        try:
            with open(f"/proc/{stat}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        # After the command name: state, ppid, pgrp.
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.append(int(stat))
    return members


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
