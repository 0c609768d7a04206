"""Fixtures of the guest suite: namespaces in the mode a test needs, reset afterwards."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness import dax, kvm, odirect, pin_backends, pinning, removal
from harness.expectations import ExpectationError, ExpectationTable, Vocabulary, load

EXPECTATIONS = Path(__file__).resolve().parent / "expectations"
# Each workload family's expected-outcome table, testcases/expectations/FAMILY.yaml, and the
# vocabulary of its `expect` keys.
FAMILIES: dict[str, Vocabulary] = {
    "odirect": odirect.VOCABULARY,
    "pin": pinning.VOCABULARY,
    "remove": removal.VOCABULARY,
    "kvm": kvm.VOCABULARY,
}


@pytest.fixture
def fsdax_ext4(ndctl):
    with dax.fsdax_mount(ndctl, "ext4") as mount:
        yield mount


@pytest.fixture(scope="session")
def expectations() -> dict[str, ExpectationTable]:
    """The table of every family, loaded once: expectations["pin"].lookup(mode, case,
    release). A bad table fails the tests that use it, with one line naming file and row."""
    try:
        return {family: load(EXPECTATIONS / f"{family}.yaml", vocabulary)
                for family, vocabulary in FAMILIES.items()}
    except ExpectationError as e:
        pytest.fail(str(e), pytrace=False)


@pytest.fixture
def pin_method_ready(guest):
    """Prepares the guest for a pin method (soft-RoCE device, gup_test) and returns the
    extra nvh-pin options; skips the test when this kernel cannot do the method."""
    def ready(method: str) -> dict[str, str]:
        if method == "rdma":
            return {"rdma_dev": pin_backends.ensure_rxe(guest)}
        if method.startswith("gup_test") and not pin_backends.has_gup_test(guest):
            pytest.skip("this kernel has no /sys/kernel/debug/gup_test (CONFIG_GUP_TEST=n, "
                        "as in Debian's; the harness's own kernel config enables it)")
        return {}
    return ready
