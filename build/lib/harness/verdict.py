"""A guest test's outcome (DESIGN.md's vocabulary) from one phase of its run.

pytest reports each test three times (setup, call, teardown); conftest.py describes each
report as a Phase, and classify() + message() turn it and the test's frame (crashed, QEMU
killed, timed out, guest stopped: harness.frame.TestFrame) into the outcome and message of
the test's record (an emulator fault, like a killed QEMU, is `error`: not the kernel's
doing). Pure.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .frame import TestFrame
    from .known_failures import Verdict

MESSAGE_MAX = 4000


@dataclass(frozen=True)
class Phase:
    """One phase's report, without pytest."""

    when: str                   # setup | call | teardown
    status: str                 # passed | failed | skipped
    duration_s: float = 0.0
    longrepr: str = ""          # the whole failure text (failure.txt)
    crash_message: str | None = None  # the failure's one-line summary, when pytest has one
    skip_reason: str | None = None    # why it was skipped, when pytest says
    guest_timeout: bool = False       # the exception was a harness.ssh.GuestCommandTimeout
    # the exception was harness.errors.PreconditionNotMet: nothing was tested
    precondition_not_met: bool = False

    @property
    def passed(self) -> bool:
        return self.status == "passed"

    @property
    def failed(self) -> bool:
        return self.status == "failed"

    @property
    def skipped(self) -> bool:
        return self.status == "skipped"


def classify(phase: Phase, frame: TestFrame | None) -> str | None:
    """The DESIGN.md outcome for one phase's report, or None when the phase says nothing."""
    if phase.when == "teardown" and frame and frame.guest_stopped:
        return None  # the frame stopped the guest; fixtures had nothing left to clean
    if phase.when == "setup":
        if phase.skipped:
            return "skipped"
        return "error" if phase.failed else None
    if phase.when == "call":
        if phase.skipped:
            return "skipped"
        if phase.passed:
            return "passed"
        if frame and (frame.qemu_killed or frame.emulator_fault):
            return "error"
        if frame and frame.crashed:
            return "crashed"
        if frame and frame.timed_out:
            return "timeout"
        if phase.guest_timeout:
            return "timeout"
        if phase.precondition_not_met:
            return "error"
        return "failed"
    return "error" if phase.failed else None


def message(phase: Phase, frame: TestFrame | None) -> str:
    """The record's message: what killed QEMU or crashed the kernel, else why the phase
    was skipped or what failed (the exception's one line, else the whole text, capped)."""
    if frame and frame.qemu_killed:
        return frame.qemu_killed
    if frame and frame.emulator_fault:
        return frame.emulator_fault
    if frame and frame.crashed:
        return f"kernel crashed: {frame.crashed}"
    if phase.skipped and phase.skip_reason is not None:
        return phase.skip_reason
    if phase.failed:
        text = phase.crash_message if phase.crash_message is not None else phase.longrepr
        return text[:MESSAGE_MAX]
    return ""


def xfail_reason(verdict: Verdict) -> str:
    """pytest's `wasxfail` for a known kernel bug (xfail) or a fixed one (xpass)."""
    return f"known kernel bug: {verdict.entry.finding} ({verdict.entry.reference})"
