"""Shared by the end-to-end tests: no QEMU of ours may outlive a test."""

import subprocess
import time

import pytest

OUR_QEMU = "nvdimm-harness,process=nvh-"


def our_qemus() -> set[int]:
    out = subprocess.run(["pgrep", "-f", OUR_QEMU], capture_output=True, text=True).stdout
    return {int(p) for p in out.split()}


@pytest.fixture
def no_new_qemu():
    before = our_qemus()
    yield
    deadline = time.monotonic() + 10
    while our_qemus() - before and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not our_qemus() - before, "a QEMU of ours outlived the run"




@pytest.fixture
def list_our_qemus():
    """The pids of QEMUs started by nvdimm-harness, as a function to poll."""
    return our_qemus
