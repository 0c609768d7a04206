"""Ctrl-C and SIGTERM, remembered for the whole process.

Once the run is interrupted, cleanup must not talk to the guest any more: unmounting and
resetting namespaces over SSH under TCG takes tens of seconds, and the user asked the run
to stop. The guest is going away anyway (QEMU is stopped, the console log kept), so guest
commands fail at once (harness.guest) and the test frame takes the kernel log from the
console instead of dmesg.
"""

from __future__ import annotations

import signal

_received: int | None = None


def requested() -> int | None:
    """The signal that interrupted this process, if any."""
    return _received


def note(signum: int) -> None:
    global _received
    if _received is None:
        _received = signum


def clear() -> None:
    """For tests."""
    global _received
    _received = None


def raise_keyboard_interrupt(signum, frame) -> None:
    """A handler for SIGINT and SIGTERM: remember, then unwind like Ctrl-C (pytest runs the
    fixture teardown and sessionfinish for KeyboardInterrupt, not for a plain SIGTERM)."""
    note(signum)
    raise KeyboardInterrupt(f"signal {signal.Signals(signum).name}")
