"""Fixtures of the guest suite: namespaces in the mode a test needs, reset afterwards."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness import dax, expectations

EXPECTATIONS = Path(__file__).resolve().parent / "expectations"


@pytest.fixture
def fsdax_ext4(ndctl):
    with dax.fsdax_mount(ndctl, "ext4") as mount:
        yield mount


@pytest.fixture(scope="session")
def odirect_expectations() -> expectations.ExpectationTable:
    try:
        return expectations.load(EXPECTATIONS / "odirect.yaml")
    except expectations.ExpectationError as e:
        pytest.fail(str(e), pytrace=False)
