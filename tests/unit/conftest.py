"""Unit tests that send themselves SIGINT/SIGTERM go through the suite's handlers, which
remember the signal process-wide (harness.interrupt); forget it after each test.

A shell that starts a command in the background without job control (`make test &` in a
script, some CI runners) starts it with SIGINT ignored, and Python then installs no
KeyboardInterrupt handler: a test that sends itself SIGINT would wait forever. Each test
gets Python's own SIGINT handler back."""

import signal

import pytest

from harness import interrupt


@pytest.fixture(autouse=True)
def _forget_interrupts():
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)
    interrupt.clear()
