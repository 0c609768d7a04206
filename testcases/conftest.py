"""Fixtures of the guest suite: namespaces in the mode a test needs, reset afterwards."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness import dax, expectations, odirect, pin_backends, pinning, removal

EXPECTATIONS = Path(__file__).resolve().parent / "expectations"


@pytest.fixture
def fsdax_ext4(ndctl):
    with dax.fsdax_mount(ndctl, "ext4") as mount:
        yield mount


@pytest.fixture(scope="session")
def odirect_expectations() -> expectations.ExpectationTable:
    try:
        return expectations.load(EXPECTATIONS / "odirect.yaml", odirect.VOCABULARY)
    except expectations.ExpectationError as e:
        pytest.fail(str(e), pytrace=False)


@pytest.fixture(scope="session")
def pin_expectations() -> expectations.ExpectationTable:
    try:
        return expectations.load(EXPECTATIONS / "pin.yaml", pinning.VOCABULARY)
    except expectations.ExpectationError as e:
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


@pytest.fixture(scope="session")
def remove_expectations() -> expectations.ExpectationTable:
    try:
        return expectations.load(EXPECTATIONS / "remove.yaml", removal.VOCABULARY)
    except expectations.ExpectationError as e:
        pytest.fail(str(e), pytrace=False)
