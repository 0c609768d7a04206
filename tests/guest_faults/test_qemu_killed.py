"""QEMU killed from outside (SIGKILL) while a guest command runs, driven by
tests/e2e/test_faults.py (not part of `make run`).

The test's own QEMU is killed from a host-side thread a few seconds into a long guest command:
the command must end at once (the SSH connection is gone, no waiting for its deadline), the
test is `error` with the signal named, and the next test runs on a fresh guest.
"""

import os
import signal
import threading


def test_1_qemu_killed_mid_command(guest):
    pid = guest.machine.pid
    threading.Timer(3, os.kill, (pid, signal.SIGKILL)).start()
    guest.run("sleep 60", timeout_s=120)


def test_2_next_test_runs_on_a_fresh_guest(guest):
    assert guest.boots == 2, f"expected one restart after QEMU was killed, boots={guest.boots}"
    assert guest.succeed("echo ok").strip() == "ok"
