"""RDMA-like pinning of DAX pages: workload family 2 of the DAX-GUP series (issue 5).

"get_user_pages() ... pin the device hosting the page range active": each test pins a 2 MiB
buffer (one PMD for devdax-2M and the 2 MiB-aligned fsdax files) with one method and checks
the kernel's answer against testcases/expectations/pin.yaml (source and release range per
row), that the bytes seen through the pin are the buffer's, and whether the pin was counted
as FOLL_PIN. Around every test the FOLL_PIN counters must balance (marker
foll_counters_balanced, conftest.py): a pin the kernel never released fails the test with
the numbers.

Methods: vmsplice into a pipe held open (plain references), io_uring fixed buffers and an
rxe (soft-RoCE) memory region (long-term pins), and the kernel's gup_test (basic, fast and
long-term pin benchmarks; skipped on kernels without CONFIG_GUP_TEST, which Debian's lacks
and the harness's own kernel config has). Modes: fsdax on ext4 and xfs and devdax 2M, with
the memmap in RAM and in pmem; controls anonymous, shmem and page cache.

`-k pin` selects them all; one is e.g. `-k "test_pin[devdax-2M-dev-rdma]"`.
"""

from __future__ import annotations

import json

import pytest

from harness import dax, pinning
from harness.checks import failures, format_failures, with_sources
from harness.sizes import MiB
from harness.workload import run_workload

pytestmark = pytest.mark.foll_counters_balanced

SIZE = 2 * MiB
TIMEOUT_S = 180
MATRIX = [(mode, method) for mode in dax.pin_buffer_modes() for method in pinning.METHODS]


@pytest.mark.parametrize(("mode", "method"), MATRIX,
                         ids=[f"{m.name}-{method}" for m, method in MATRIX])
def test_pin(guest, ndctl, artifacts, expectations, pin_method_ready, mode, method):
    extra = pin_method_ready(method)
    expect = expectations["pin"].lookup(mode.name, method, guest.kernel_release)
    with dax.buffer_in_mode(ndctl, mode) as buffer:
        command = pinning.pin_command(buffer, method, SIZE, **extra)
        before = pinning.vmstat_pins(guest)
        observed = run_workload(guest, command, TIMEOUT_S, json_lines=True)
        delta = pinning.pin_delta(before, pinning.vmstat_pins(guest))
    artifacts.attach("workload.json", json.dumps({"command": command, "foll_pin_delta": delta,
                                                  **observed}, indent=2) + "\n")
    if observed.get("supported") is False:
        pytest.skip(f"{method}: not supported by this kernel ({observed.get('error')})")
    artifacts.expectation(expect.describe(), pinning.describe_pin(observed, delta))
    checks = with_sources(pinning.pin_checks(observed, expect.values, delta), expect.sources)
    artifacts.add_checks(checks)
    assert not failures(checks), format_failures(checks)
