"""Guest tests that hang on purpose, run by tests/e2e/test_hang.py (not by `make run`).

They use the suite's own fixtures and frame (conftest.py treats this directory as guest
tests), so what they show is what a real hang in a suite test gets: `timeout`, blocked-task
stacks in its dmesg.txt, a fresh guest for the next test.
"""

import pytest

from harness.qemu import SCRATCH_DISK_IN_GUEST

# A task blocked in the kernel: a write to a frozen filesystem waits in sb_start_write() in
# D state (uninterruptible), so neither `timeout -k` in the guest nor SIGKILL can end it.
FROZEN_FS = ("mkfs.ext4 -q -F {disk} && mkdir -p /mnt/frozen && mount {disk} /mnt/frozen && "
             "fsfreeze -f /mnt/frozen")


# khungtaskd reports a task in D state for longer than this (Debian's default is 120 s):
# the stuck write below then prints a real "INFO: task ... blocked for more than" report.
HUNG_TASK_TIMEOUT_S = 2


def test_1_task_stuck_in_kernel(guest):
    guest.succeed(f"echo {HUNG_TASK_TIMEOUT_S} > /proc/sys/kernel/hung_task_timeout_secs")
    guest.succeed(FROZEN_FS.format(disk=SCRATCH_DISK_IN_GUEST))
    guest.run("echo data > /mnt/frozen/file", timeout_s=10)
    pytest.fail("a write to a frozen filesystem returned")


def test_2_frozen_guest(guest):
    guest.machine.command("stop")  # the whole VM stops: no SSH, no console
    guest.run("true", timeout_s=10)
    pytest.fail("a stopped VM answered")


def test_3_next_test_runs_on_a_fresh_guest(guest):
    assert guest.boots >= 3, f"expected a restart after each hang, boots={guest.boots}"
    assert guest.succeed("echo ok").strip() == "ok"
