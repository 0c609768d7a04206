"""Fixtures of the guest suite: namespaces in the mode a test needs, reset afterwards."""

import pytest

from harness import dax


@pytest.fixture
def fsdax_ext4(ndctl):
    with dax.fsdax_mount(ndctl, "ext4") as mount:
        yield mount
