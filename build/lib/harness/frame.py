"""The frame around one guest test: its artifacts, kernel-log slice, findings and crash state.

    frame = TestFrame(test_id, expected_titles, guest, artifacts)
    frame.start()            # marks the kernel log, reads the taint flags
    ...                      # the test runs
    frame.finish(exc)        # slices the log, scans it, decides crashed / QEMU killed /
                             # timed out, stops a guest that must not serve the next test
    error = frame.failure(pin_leak)   # what fails a test that raised nothing itself

or, in a pytest hook wrapper around the test call, `return (yield from frame.guard(pins))`,
which does the last two.

The decision itself is crash_verdict(), a pure function of what finish() observed.
Nothing here knows pytest: conftest.py builds a frame from a test item's id and markers.
"""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from . import emulator_faults, interrupt, kmsg, progress, symbolize
from .checks import Check
from .console import slice_between_marks
from .errors import HarnessError
from .ssh import GuestCommandTimeout

if TYPE_CHECKING:
    from .guest import Guest
    from .pinning import PinAccounting


class TestArtifacts:
    """What a test leaves in results/tests/<id>/ and the expectation it checked."""

    __test__ = False  # not a pytest test class

    def __init__(self, directory: Path, relative: str):
        self.dir = directory
        self.relative = relative
        self.files: list[str] = []
        self.expected = ""
        self.observed = ""
        self.trace_counts: dict[str, int] = {}
        self.checks: list[Check] = []
        # Findings the harness made itself (a stalled workload): judged like kernel ones.
        self.harness_findings: list[kmsg.Finding] = []
        # Checks the test still owes when the frame has to stop its guest (a crash, a
        # timeout, a new taint): run on the restarted guest, their checks recorded here.
        self.after_restart: Callable[[], list[Check]] | None = None

    def attach(self, name: str, text: str) -> Path:
        path = self.dir / name
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        except OSError as e:
            # A full results disk: the test's verdict still counts; writing the reports at
            # the end says the results are incomplete (exit 3), in one line.
            path.unlink(missing_ok=True)
            progress.say(f"cannot write {path}: {e.strerror or e}")
            return path
        rel = f"{self.relative}/{name}"
        if rel not in self.files:
            self.files.append(rel)
        return path

    def expectation(self, expected: str, observed: str) -> None:
        self.expected, self.observed = expected, observed

    def add_checks(self, checks) -> None:
        """Record what the test compared; kept for every outcome, crash included."""
        self.checks.extend(checks)

    def add_finding(self, finding: kmsg.Finding) -> None:
        self.harness_findings.append(finding)


class KernelFindingsError(AssertionError):
    pass


@dataclass(frozen=True)
class CrashVerdict:
    """What became of the guest during a test, and whether it may serve the next one."""

    crashed: str = ""      # the kernel's doing: panic title, or how the guest died
    qemu_killed: str = ""  # QEMU killed from outside (not the kernel): the test is `error`
    stop_guest: bool = False


# Taints that say which modules were loaded, not that the kernel went wrong: out-of-tree
# (O, bit 12: nfit_test and its wrapped libnvdimm), unsigned (E, 13), test module (N, 18;
# kernel/panic.c taint_flags). ndctl's tests load them on purpose.
MODULE_TAINTS = (1 << 12) | (1 << 13) | (1 << 18)


def taint_changed(before: int | None, after: int | None) -> bool:
    """Both read and different (an unread value, e.g. after a timeout, changes nothing),
    module-loading taints aside."""
    return None not in (before, after) and (before | MODULE_TAINTS) != (after | MODULE_TAINTS)


def crash_verdict(alive: bool, panic_event: dict | None,
                  kernel_findings: Sequence[kmsg.Finding], killed_by_signal: int | None,
                  timed_out: bool, taint_before: int | None,
                  taint_after: int | None) -> CrashVerdict:
    """The frame's decision after a test.

    alive: QEMU still runs; panic_event: pvpanic's GUEST_PANICKED QMP event, if any;
    kernel_findings: the unexpected kernel findings of the test's log slice (a panic among
    them names the crash); killed_by_signal: the signal that ended QEMU, if one did;
    timed_out: a guest command timed out or the guest stopped answering; taint_*: the
    kernel's taint flags before and after the test (None when they could not be read)."""
    if not alive or panic_event:
        crashed = qemu_killed = ""
        panic = next((f for f in kernel_findings if f.kind == "panic"), None)
        if panic:
            crashed = panic.title
        elif panic_event:
            crashed = "kernel panic (no panic text on the console)"
        elif killed_by_signal:
            sig = killed_by_signal
            qemu_killed = (f"QEMU was killed by signal {sig} ({signal.Signals(sig).name}) "
                           "during the test; the next test gets a fresh guest")
        else:
            crashed = "the guest died (QEMU exited)"
        if panic_event:
            crashed += " [QMP: GUEST_PANICKED]"
        return CrashVerdict(crashed, qemu_killed, stop_guest=True)
    # A wedged guest, or one an oops left tainted (processes in D state, leaked
    # references), would poison every later test: the next one boots a fresh guest.
    return CrashVerdict(stop_guest=timed_out or taint_changed(taint_before, taint_after))


class TestFrame:
    """Everything about one guest test: its kernel log slice, findings and crash state."""

    __test__ = False  # not a pytest test class

    def __init__(self, test_id: str, expected_titles: Iterable[str], guest: Guest,
                 artifacts: TestArtifacts):
        self.test_id = test_id
        # Titles (or regexes) of kernel findings the test provokes on purpose.
        self.expected_titles = list(expected_titles)
        self.guest = guest
        self.artifacts = artifacts
        self.begin = f"begin {test_id}"
        self.end = f"end {test_id}"
        self.findings: list[kmsg.Finding] = []
        self.expected_findings: list[kmsg.Finding] = []
        self.locations: dict[int, str] = {}  # finding line -> file:line
        self.crashed = ""
        self.timed_out = False
        self.taint_before: int | None = None
        self.taint_after: int | None = None
        # Set when the frame stopped a wedged, tainted or dead guest: the test's fixture
        # teardown then has no guest to talk to, and that is not the test's error.
        self.guest_stopped = False
        # Set when QEMU was killed from outside during the test (not the guest kernel's
        # doing): the test is `error`, not `crashed`.
        self.qemu_killed = ""
        # Set when the kernel log shows the emulator misbehaving (harness.emulator_faults):
        # the test is `error`, and the findings it caused are not the kernel's.
        self.emulator_fault = ""

    def start(self) -> None:
        self.guest.mark(self.begin)
        self.taint_before = self.guest.taint()

    def finish(self, exc: BaseException | None) -> None:
        if interrupt.requested():
            # Ctrl-C/SIGTERM: stop now. The console has the kernel log; no SSH round trips.
            self.artifacts.attach("dmesg.txt", self._console_slice())
            return
        if isinstance(exc, (ConnectionError, EOFError)) or self.guest.panic_event():
            # A panicking guest drops SSH and finishes printing the panic before QEMU exits.
            self.guest.wait_exit(timeout_s=10)
        self.timed_out = isinstance(exc, GuestCommandTimeout)
        if self.timed_out and self.guest.is_alive():
            # What is everybody waiting for? Blocked-task stacks into the log, if the guest
            # still takes a command.
            self.guest.dump_blocked_tasks()
        if self.guest.is_alive() and not self.timed_out:
            try:
                self.guest.mark(self.end)
                log = self.guest.dmesg_between(self.begin, self.end)
                self.taint_after = self.guest.taint()
            except (HarnessError, OSError, GuestCommandTimeout):
                log = self._console_slice()
                self.timed_out = True
        else:
            log = self._console_slice()
        self.artifacts.attach("dmesg.txt", log)
        unexpected, expected = kmsg.split_expected(kmsg.scan_kernel_log(log),
                                                   self.expected_titles)
        self.findings = [*self.artifacts.harness_findings, *unexpected]
        self.expected_findings = expected
        self._locate_findings()
        panic_event = self.guest.panic_event()
        alive = self.guest.is_alive()
        verdict = crash_verdict(
            alive, panic_event, unexpected,
            self.guest.killed_by() if not alive and not panic_event else None,
            self.timed_out, self.taint_before, self.taint_after)
        self.crashed, self.qemu_killed = verdict.crashed, verdict.qemu_killed
        # Only a wedged guest can show the emulator's stale-code loop.
        if self.timed_out or any(f.kind in emulator_faults.SYMPTOMS for f in unexpected):
            self.emulator_fault = emulator_faults.stale_int3_loop(log)
        if verdict.stop_guest or (self.emulator_fault and alive):
            self.guest.stop()
            self.guest_stopped = True
            self._checks_after_restart()

    def _checks_after_restart(self) -> None:
        """What the test could not check in the guest it lost, on a fresh one (which the
        next test would have booted anyway)."""
        owed, self.artifacts.after_restart = self.artifacts.after_restart, None
        if owed is None or interrupt.requested():
            return
        try:
            self.guest.restart()
            checks = owed()
        except (HarnessError, OSError, GuestCommandTimeout) as e:
            checks = [Check("checks after the restart", "the restarted guest answers",
                            f"{type(e).__name__}: {str(e)[:300]}", False)]
        self.artifacts.add_checks([replace(c, name=f"{c.name} (after the restart)")
                                   for c in checks])

    def guard(self, pins: PinAccounting | None = None):
        """The test call's hook wrapper, as a generator: `return (yield from
        frame.guard(pins))`. The test runs at its one yield (inside
        interrupt.stay_interrupted()); the frame finishes whatever the test raised; a test
        that raised nothing fails with its unexpected findings or pin leak (failure())."""
        try:
            if pins:
                pins.begin()
            result = yield from interrupt.stay_interrupted()
        except BaseException as exc:
            self.finish(exc)
            raise
        leak = pins.leak() if pins and self.guest.is_alive() else ""
        self.finish(None)
        error = self.failure(leak)
        if error is not None:
            raise error
        return result

    def failure(self, pin_leak: str = "") -> AssertionError | None:
        """What fails a test that raised nothing itself: unexpected findings (and a pin
        leak beside them), else a pin leak alone; None when neither."""
        if self.emulator_fault:
            return AssertionError(self.emulator_fault)
        if self.findings:
            titles = "\n".join(f"  {f.kind}: {f.title} (dmesg line {f.line})"
                               for f in self.findings)
            return KernelFindingsError("the kernel reported problems during the test:\n"
                                       f"{titles}" + (f"\n{pin_leak}" if pin_leak else ""))
        return AssertionError(pin_leak) if pin_leak else None

    def _locate_findings(self) -> None:
        """With a vmlinux that has DWARF (the harness's own builds): each finding's
        file:line in summary.json and its symbolized call trace in findings.txt."""
        kernel = self.guest.config.kernel
        symbolizer = symbolize.for_kernel(kernel.vmlinux, kernel.modules_dir, kernel.source_root)
        every = [*self.findings, *self.expected_findings]
        if symbolizer is None or not every:
            return
        reports = []
        for f in every:
            loc = symbolize.finding_location(symbolizer, f.title, f.text)
            if loc:
                self.locations[f.line] = str(loc)
            reports.append(f"{f.kind}: {f.title}" + (f" ({loc})" if loc else "") + "\n"
                           + symbolizer.annotate(f.text))
        self.artifacts.attach("findings.txt", "\n\n".join(reports) + "\n")

    def findings_json(self) -> list[dict]:
        return [{**f.to_json(), **({"location": self.locations[f.line]}
                                   if f.line in self.locations else {})}
                for f in self.findings]

    @property
    def taint_changed(self) -> bool:
        return taint_changed(self.taint_before, self.taint_after)

    def _console_slice(self) -> str:
        text = self.guest.console_text()
        return slice_between_marks(text, self.begin, self.end)
