"""Ctrl-C and SIGTERM, remembered for the whole process.

Once the run is interrupted, cleanup must not talk to the guest any more: unmounting and
resetting namespaces over SSH under TCG takes tens of seconds, and the user asked the run
to stop. The guest is going away anyway (QEMU is stopped, the console log kept), so guest
commands fail at once (harness.guest) and the test frame takes the kernel log from the
console instead of dmesg.
"""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path

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


def install_handlers(forward_to_children: bool = False) -> None:
    """SIGTERM unwinds like Ctrl-C (pytest runs fixture teardown and sessionfinish for
    KeyboardInterrupt, not for SIGTERM: a terminated run still stops its guest and writes
    partial results); Ctrl-C as before, but remembered: teardown then stops talking to the
    guest. forward_to_children: the xdist controller, whose workers are its children but
    not in the signal's path (the CLI signals only its child): pass SIGTERM on, so that each
    stops its guest and writes results."""
    signal.signal(signal.SIGTERM, _forward_and_raise if forward_to_children
                  else raise_keyboard_interrupt)
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        signal.signal(signal.SIGINT, raise_keyboard_interrupt)


def _forward_and_raise(signum, frame) -> None:
    for pid in child_pids():
        with contextlib.suppress(OSError):
            os.kill(pid, signum)
    raise_keyboard_interrupt(signum, frame)


def child_pids() -> list[int]:
    me = str(os.getpid())
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError):
            # Field 4 is the parent pid; the command name (field 2) may contain spaces.
            if stat.read_text().rsplit(")", 1)[1].split()[1] == me:
                pids.append(int(stat.parent.name))
    return pids


def stay_interrupted(starting: bool = False):
    """For a hook wrapper (`return (yield from stay_interrupted())`): after Ctrl-C/SIGTERM,
    cleanup code (a `finally:` that talks to the guest) raises its own error while the
    KeyboardInterrupt unwinds, and Python replaces the interrupt with it: the test would be
    recorded as failed and the run would go on to the next test. Whatever the wrapped phase
    raises once the run is interrupted is the interrupt. starting: a test's setup, which
    does not even start once the run is interrupted (an interrupt something swallowed)."""
    if starting and requested():
        raise KeyboardInterrupt("interrupted")
    try:
        return (yield)
    except KeyboardInterrupt:
        raise
    except BaseException as e:
        if requested():
            raise KeyboardInterrupt(f"interrupted ({type(e).__name__} in cleanup)") from e
        raise
