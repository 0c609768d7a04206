"""A program running in the background in the guest, watched over SSH.

Tests that must act while a workload holds something (a pin, a mapping, an I/O in flight)
start it with GuestProcess, poll its output, signal it, and see whether it finishes, all
with deadlines: a process stuck in the kernel (D state) is reported with its stacks, it
never blocks the harness.
"""

from __future__ import annotations

import contextlib
import json
import shlex
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .ssh import CommandResult, Runner


class GuestProcessError(AssertionError):
    pass


# Every thread's state, wait channel and kernel stack, for a report.
STACKS = ('for t in /proc/$pid/task/*; do '
          'echo "== thread ${t##*/} $(cat $t/comm) state $(cut -d" " -f3 $t/stat)'
          ' wchan $(cat $t/wchan)"; cat $t/stack; done 2>/dev/null')


class GuestProcess:
    """`command` run with setsid in a fresh /tmp/<tag>.XXXXXX directory holding its
    out, err, pid and (once it exited) rc."""

    def __init__(self, guest: Runner, command: str, tag: str = "nvh-proc",
                 poll_s: float = 0.3):
        self.guest = guest
        self.command = command
        self.tag = tag
        self.poll_s = poll_s
        self.dir = ""
        self.started = 0.0

    def start(self) -> GuestProcess:
        # setsid + redirections: the program outlives this SSH command and its `timeout`.
        inner = f"{self.command} >$0/out 2>$0/err & echo $! >$0/pid; wait $!; echo $? >$0/rc"
        r = self.guest.run(f"d=$(mktemp -d /tmp/{self.tag}.XXXXXX) || exit 1; "
                           f'setsid sh -c {shlex.quote(inner)} "$d" </dev/null >/dev/null 2>&1 & '
                           'while [ ! -s "$d/pid" ]; do sleep 0.05; done; echo "$d"',
                           timeout_s=60)
        if r.status != 0 or not r.stdout.strip():
            raise GuestProcessError(f"could not start {self.command}\n{r.describe()}")
        self.dir = r.stdout.strip().splitlines()[-1]
        self.started = time.monotonic()
        return self

    def elapsed_s(self) -> float:
        return time.monotonic() - self.started

    def finished(self) -> bool:
        return self.guest.run(f"test -e {self.dir}/rc", timeout_s=30).status == 0

    def wait(self, limit_s: float) -> bool:
        """True once the process exited, False if it still runs after `limit_s`."""
        end = time.monotonic() + limit_s
        while time.monotonic() < end:
            if self.finished():
                return True
            time.sleep(self.poll_s)
        return self.finished()

    def signal(self, name: str) -> None:
        self.guest.run(f"kill -{name} $(cat {self.dir}/pid) 2>/dev/null", timeout_s=30)

    def state(self) -> str:
        """The process state letter (R, S, D, Z, ...), or "" once it is gone."""
        r = self.guest.run(f"cut -d' ' -f3 /proc/$(cat {self.dir}/pid)/stat 2>/dev/null",
                           timeout_s=30)
        return r.stdout.strip()

    def stacks(self) -> str:
        return self.guest.run(f"pid=$(cat {self.dir}/pid); {STACKS}", timeout_s=30).stdout

    def wait_for_stack(self, function: str, limit_s: float) -> bool:
        """Until a thread of the process is in the kernel inside `function` (e.g. the I/O
        it is blocked on); False when it did not get there in time."""
        end = time.monotonic() + limit_s
        while time.monotonic() < end:
            if function in self.stacks():
                return True
            time.sleep(self.poll_s)
        return False

    def output(self) -> str:
        return self.guest.run(f"cat {self.dir}/out", timeout_s=60).stdout

    def stderr(self) -> str:
        return self.guest.run(f"cat {self.dir}/err", timeout_s=60).stdout

    def json_lines(self) -> list[dict[str, Any]]:
        """Every complete JSON object line written so far (line-oriented programs)."""
        out = []
        for line in self.output().splitlines():
            line = line.strip()
            if line.startswith("{"):
                with contextlib.suppress(json.JSONDecodeError):  # a line being written
                    out.append(json.loads(line))
        return out

    def wait_for_line(self, predicate, limit_s: float) -> dict[str, Any] | None:
        """The first JSON line satisfying `predicate`, or None when the process exited or
        `limit_s` passed without one."""
        end = time.monotonic() + limit_s
        while True:
            for obj in self.json_lines():
                if predicate(obj):
                    return obj
            if time.monotonic() >= end or self.finished():
                for obj in self.json_lines():
                    if predicate(obj):
                        return obj
                return None
            time.sleep(self.poll_s)

    def request(self, signal: str, event: str, limit_s: float) -> dict[str, Any] | None:
        """Send `signal` and wait for the next JSON line whose "event" is `event` (the
        --hold protocols of nvh-pin and nvh-kvm); None if the process exits or limit_s
        passes without answering (stuck in the kernel)."""
        seen = sum(1 for o in self.json_lines() if o.get("event") == event)
        self.signal(signal)
        deadline = time.monotonic() + limit_s
        while True:
            answers = [o for o in self.json_lines() if o.get("event") == event]
            if len(answers) > seen:
                return answers[-1]
            if time.monotonic() >= deadline or self.finished():
                return None
            time.sleep(self.poll_s)

    def result(self) -> CommandResult:
        """stdout, stderr and exit status (137 when it never wrote one: killed)."""
        return self.guest.run(f"cat {self.dir}/out; cat {self.dir}/err >&2; "
                              f"exit $(cat {self.dir}/rc 2>/dev/null || echo 137)", timeout_s=60)

    def cleanup(self) -> None:
        """Kill it if it still runs and remove its directory; a D-state process stays."""
        if self.dir:
            self.guest.run(f"test -e {self.dir}/rc || kill -KILL $(cat {self.dir}/pid) "
                           f"2>/dev/null; rm -rf {self.dir}", timeout_s=30)
