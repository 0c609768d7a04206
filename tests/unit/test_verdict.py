"""harness.verdict: a test's outcome and message from one phase of its run (setup, call,
teardown) and the state of its frame (crashed, QEMU killed, timed out, guest stopped)."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.frame import TestArtifacts, TestFrame
from harness.known_failures import parse
from harness.verdict import Phase, classify, message, xfail_reason

FAIL = "AssertionError: O_DIRECT read returned 4096, expected 65536"


def frame(**state) -> TestFrame:
    """A frame in a given state after the test (the guest is not needed to classify)."""
    f = TestFrame("t.py::t", [], None, TestArtifacts(Path("/nonexistent"), "tests/t"))
    for k, v in state.items():
        setattr(f, k, v)
    return f


CLEAN = frame()
CRASHED = frame(crashed="kernel panic: sysrq triggered crash", guest_stopped=True)
TIMEOUT = frame(timed_out=True, guest_stopped=True)
KILLED = frame(qemu_killed="QEMU was killed by signal 9 (SIGKILL) during the test; ...",
               guest_stopped=True)
STOPPED = frame(guest_stopped=True)  # stopped for a taint change
# Every frame state: (name, frame); None is a test the frame never started.
FRAMES = [("none", None), ("clean", CLEAN), ("crashed", CRASHED), ("timeout", TIMEOUT),
          ("qemu_killed", KILLED), ("guest_stopped", STOPPED)]

# when, status -> outcome for each frame state, in FRAMES order.
TABLE = {
    ("setup", "passed"): [None, None, None, None, None, None],
    ("setup", "failed"): ["error"] * 6,
    ("setup", "skipped"): ["skipped"] * 6,
    ("call", "passed"): ["passed"] * 6,
    ("call", "failed"): ["failed", "failed", "crashed", "timeout", "error", "failed"],
    ("call", "skipped"): ["skipped"] * 6,
    ("teardown", "passed"): [None] * 6,
    # fixture teardown after the frame stopped the guest: not the test's error
    ("teardown", "failed"): ["error", "error", None, None, None, None],
    ("teardown", "skipped"): [None] * 6,
}


@pytest.mark.parametrize(("when", "status", "state", "outcome"), [
    (when, status, name, outcome)
    for (when, status), outcomes in TABLE.items()
    for (name, _), outcome in zip(FRAMES, outcomes, strict=True)])
def test_classify(when, status, state, outcome):
    f = dict(FRAMES)[state]
    assert classify(Phase(when, status), f) == outcome


def test_a_guest_command_timeout_is_timeout_even_when_the_frame_did_not_see_it():
    phase = Phase("call", "failed", guest_timeout=True)
    assert classify(phase, CLEAN) == "timeout" and classify(phase, None) == "timeout"
    # what the frame saw comes first
    assert classify(phase, CRASHED) == "crashed" and classify(phase, KILLED) == "error"
    assert classify(Phase("setup", "failed", guest_timeout=True), None) == "error"


def test_the_frame_s_verdict_order_killed_crashed_timed_out():
    both = frame(qemu_killed="killed", crashed="panic", timed_out=True)
    assert classify(Phase("call", "failed"), both) == "error"
    assert classify(Phase("call", "failed"), frame(crashed="panic", timed_out=True)) == \
        "crashed"


def test_an_emulator_fault_is_error_with_its_evidence_not_the_kernel_s_timeout():
    fault = ("emulator fault, not a kernel bug: CPU 0 trapped 2 times on an int3 before "
             "__schedule+0x228/0x7d0 although memory there holds 0xe9 ...")
    wedged = frame(emulator_fault=fault, timed_out=True, guest_stopped=True)
    assert classify(Phase("call", "failed", guest_timeout=True), wedged) == "error"
    assert message(Phase("call", "failed", crash_message="timed out"), wedged) == fault


def test_message():
    failed = Phase("call", "failed", longrepr="Traceback ...\n" + FAIL, crash_message=FAIL)
    assert message(failed, None) == FAIL
    assert message(failed, CRASHED) == "kernel crashed: kernel panic: sysrq triggered crash"
    assert message(failed, KILLED) == KILLED.qemu_killed
    # no one-line summary: the whole text, capped
    long = Phase("call", "failed", longrepr="x" * 5000)
    assert message(long, CLEAN) == "x" * 4000
    assert message(Phase("call", "failed", crash_message=""), None) == ""
    skipped = Phase("setup", "skipped", skip_reason="Skipped: gup_test needs CONFIG_GUP_TEST")
    assert message(skipped, None) == "Skipped: gup_test needs CONFIG_GUP_TEST"
    assert message(Phase("call", "skipped"), None) == ""
    assert message(Phase("call", "passed"), CLEAN) == ""
    # a crash is the message whatever the phase says
    assert message(Phase("call", "passed"), CRASHED).startswith("kernel crashed: ")


def test_xfail_reason():
    table = parse({"known_failures": [{
        "test": "test_remove.py::test_remove_pinned_devdax[rdma]", "kernel": ">=6.1,<6.2",
        "finding": "BUG: unable to handle kernel paging request in "
                   "unpin_user_page_range_dirty_lock",
        "reference": "rxe MR released after devdax disable"}]})
    verdict = table.judge("testcases/test_remove.py::test_remove_pinned_devdax[rdma]",
                          "6.1.0-57-amd64", True, [])
    assert verdict.outcome == "fixed"
    assert xfail_reason(verdict) == (
        "known kernel bug: BUG: unable to handle kernel paging request in "
        "unpin_user_page_range_dirty_lock (rxe MR released after devdax disable)")


def test_a_precondition_not_met_is_error_never_passed():
    """issue 14 item 3: the removal ran when the O_DIRECT was no longer in flight."""
    phase = Phase("call", "failed", crash_message="PreconditionNotMet: precondition not met: "
                  "the O_DIRECT read had finished when the removal returned",
                  precondition_not_met=True)
    assert classify(phase, None) == "error"
    assert message(phase, None).startswith("PreconditionNotMet: precondition not met")
