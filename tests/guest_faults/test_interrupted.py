"""Ctrl-C or SIGTERM while a test waits on the guest, driven by tests/e2e/test_faults.py (not
part of `make run`).

The test sits in a long guest command inside an fsdax mount, with cleanup that talks to the
guest (as the pin and removal tests do). The interrupt must stop the run within seconds:
no umount or namespace reset over SSH, the cleanup's own error must not turn the interrupt
into a test failure, and the next test must never start.
"""

import os
from pathlib import Path

import pytest

from harness import dax


def test_1_waits_in_the_guest(guest, ndctl):
    with dax.fsdax_mount(ndctl, "ext4") as mount:
        try:
            guest.succeed(f"dd if=/dev/zero of={mount.path('f')} bs=1M count=1")
            Path(os.environ["NVH_FAULT_MARK"]).write_text("waiting\n")  # interrupt me now
            guest.run("sleep 600", timeout_s=900)
        finally:
            # After an interrupt this must not reach the guest (its console would show it).
            guest.run(f"rm -f {mount.path('f')}; echo nvh-fault: cleanup ran > /dev/kmsg")


def test_2_never_runs(guest):
    pytest.fail("the run went on after it was interrupted")
