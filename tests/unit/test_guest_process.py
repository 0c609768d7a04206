"""GuestProcess against a local shell: start, JSON lines, signals, deadlines, cleanup."""

import subprocess
import time

from harness.guest_process import GuestProcess
from harness.ssh import CommandResult


class LocalShell:
    """Runs commands with /bin/sh on this machine (the same protocol as GuestShell)."""

    def run(self, command: str, timeout_s: float = 30) -> CommandResult:
        t = time.monotonic()
        p = subprocess.run(["sh", "-c", command], capture_output=True, text=True,
                           timeout=timeout_s)
        return CommandResult(command, p.returncode, p.stdout, p.stderr, time.monotonic() - t)


HOLDER = """\
trap 'echo "{\\"event\\": \\"touched\\"}"' USR1
trap 'echo "{\\"program\\": \\"x\\"}"; exit 0' USR2
echo '{"event": "pinned"}'
while :; do sleep 0.05; done
"""


def test_background_process_lines_signals_and_exit(tmp_path):
    script = tmp_path / "holder.sh"
    script.write_text(HOLDER)
    proc = GuestProcess(LocalShell(), f"sh {script}", tag="nvh-unit", poll_s=0.05).start()
    try:
        assert proc.wait_for_line(lambda o: o.get("event") == "pinned", 10)
        assert not proc.finished()
        proc.signal("USR1")
        assert proc.wait_for_line(lambda o: o.get("event") == "touched", 10)
        proc.signal("USR2")
        assert proc.wait(10)
        assert proc.result().status == 0
        assert proc.json_lines()[-1] == {"program": "x"}
    finally:
        proc.cleanup()


def test_deadline_and_cleanup_of_a_process_that_never_ends():
    proc = GuestProcess(LocalShell(), "sleep 30", tag="nvh-unit", poll_s=0.05).start()
    t = time.monotonic()
    assert not proc.wait(0.3)
    assert time.monotonic() - t < 5
    assert proc.state() in ("S", "R")
    assert proc.wait_for_line(lambda o: True, 0.2) is None
    proc.cleanup()
    assert subprocess.run(["test", "-e", proc.dir]).returncode != 0
