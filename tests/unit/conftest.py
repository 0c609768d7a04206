"""Unit tests that send themselves SIGINT/SIGTERM go through the suite's handlers, which
remember the signal process-wide (harness.interrupt); forget it after each test."""

import pytest

from harness import interrupt


@pytest.fixture(autouse=True)
def _forget_interrupts():
    yield
    interrupt.clear()
