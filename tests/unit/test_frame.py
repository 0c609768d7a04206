"""harness.frame: a guest test's artifacts, its kernel-log slice and findings, and the
decision after it (crashed, QEMU killed, timed out, tainted: stop the guest).

crash_verdict() is pure and is driven through every branch directly. The TestFrame tests
drive the frame's control flow with FakeGuest, a stand-in for harness.guest.Guest that
holds a kernel log built from the real logs in tests/data/kmsg/ (these are unit tests of
the harness's logic: no QEMU, no guest).
"""

from __future__ import annotations

import errno
import signal
from pathlib import Path
from types import SimpleNamespace

import pytest
from kmsg_data import body

from harness import interrupt, kmsg, progress
from harness.checks import Check
from harness.console import mark_text, slice_between_marks
from harness.errors import HarnessError
from harness.frame import (
    CrashVerdict,
    KernelFindingsError,
    TestArtifacts,
    TestFrame,
    crash_verdict,
    taint_changed,
)
from harness.pinning import PinAccounting
from harness.ssh import GuestCommandTimeout

OOPS = "BUG: unable to handle kernel paging request in dax_disassociate_entry"
PANIC = "kernel panic: sysrq triggered crash"
TEST = "testcases/test_remove.py::test_unbind_fsdax[ext4]"




def scan(name: str) -> list[kmsg.Finding]:
    return kmsg.scan_kernel_log("\n".join(body(name)))


# -- crash_verdict: every branch ----------------------------------------------------------

PANIC_FINDINGS = scan("real-6.1-panic-sysrq-c.log")
OOPS_FINDINGS = scan("real-6.1-oops-dax_disassociate_entry-ext4-unbind.log")
QMP = {"event": "GUEST_PANICKED", "data": {"action": "pause"}}
GONE = "the guest died (QEMU exited)"
NO_TEXT = "kernel panic (no panic text on the console)"
KILLED = ("QEMU was killed by signal 9 (SIGKILL) during the test; the next test gets a "
          "fresh guest")


@pytest.mark.parametrize(
    ("alive", "panic_event", "findings", "killed", "timed_out", "taint", "expected"), [
        # a live guest: stopped only when wedged or newly tainted
        (True, None, [], None, False, (0, 0), CrashVerdict()),
        (True, None, OOPS_FINDINGS, None, False, (0, 0), CrashVerdict()),
        (True, None, OOPS_FINDINGS, None, False, (0, 4608), CrashVerdict(stop_guest=True)),
        (True, None, [], None, False, (0, None), CrashVerdict()),  # taint unread: no change
        (True, None, [], None, False, (None, 1), CrashVerdict()),
        (True, None, [], None, True, (0, None), CrashVerdict(stop_guest=True)),
        # a dead guest: why
        (False, None, PANIC_FINDINGS, None, False, (0, None), CrashVerdict(PANIC, "", True)),
        (False, None, PANIC_FINDINGS, 9, False, (0, None), CrashVerdict(PANIC, "", True)),
        (False, QMP, PANIC_FINDINGS, None, False, (0, None),
         CrashVerdict(f"{PANIC} [QMP: GUEST_PANICKED]", "", True)),
        (False, None, [], 9, False, (0, None), CrashVerdict("", KILLED, True)),
        (False, None, OOPS_FINDINGS, 9, True, (0, None), CrashVerdict("", KILLED, True)),
        (False, None, [], None, False, (0, None), CrashVerdict(GONE, "", True)),
        (False, None, OOPS_FINDINGS, None, True, (0, 0), CrashVerdict(GONE, "", True)),
        # QMP says it panicked: a crash even while QEMU still runs, and even if killed
        (True, QMP, [], None, False, (0, 0),
         CrashVerdict(f"{NO_TEXT} [QMP: GUEST_PANICKED]", "", True)),
        (False, QMP, [], 9, False, (0, None),
         CrashVerdict(f"{NO_TEXT} [QMP: GUEST_PANICKED]", "", True)),
        (True, QMP, PANIC_FINDINGS, None, False, (0, 0),
         CrashVerdict(f"{PANIC} [QMP: GUEST_PANICKED]", "", True)),
    ])
def test_crash_verdict(alive, panic_event, findings, killed, timed_out, taint, expected):
    assert crash_verdict(alive, panic_event, findings, killed, timed_out, *taint) == expected


def test_crash_verdict_names_the_panic_not_the_oops_before_it():
    """6.1's "Fatal exception in interrupt": an oops, then the panic it caused."""
    findings = scan("real-6.1-panic-bio_check_pages_dirty-irq.log")
    assert [f.kind for f in findings] == ["oops", "panic"]
    v = crash_verdict(False, None, findings, None, False, 0, None)
    assert v.crashed == "kernel panic: Fatal exception"


def test_taint_changed():
    assert taint_changed(0, 512) and not taint_changed(512, 512)
    assert not taint_changed(None, 512) and not taint_changed(0, None)
    # loading nfit_test (out-of-tree, O) or an unsigned module (E) is not the kernel failing
    assert not taint_changed(0, 1 << 12) and not taint_changed(0, (1 << 12) | (1 << 13))
    assert taint_changed(1 << 12, (1 << 12) | 512)


# -- TestArtifacts --------------------------------------------------------------------------

def test_artifacts_attach_checks_and_harness_findings(tmp_path):
    art = TestArtifacts(tmp_path / "tests" / "t", "tests/t")
    art.attach("dmesg.txt", "one")
    art.attach("dmesg.txt", "two")
    assert (tmp_path / "tests" / "t" / "dmesg.txt").read_text() == "two"
    assert art.files == ["tests/t/dmesg.txt"]
    art.add_checks([Check("umount", "ok", "ok", True)])
    art.add_checks([Check("mapping", "SIGBUS", "intact", False)])
    assert [c.name for c in art.checks] == ["umount", "mapping"]
    stall = kmsg.Finding("hung_task", "workload stalled", 0, "")
    art.add_finding(stall)
    assert art.harness_findings == [stall]


def test_artifacts_attach_on_a_full_disk_keeps_going(tmp_path, monkeypatch):
    def full(self, text):
        Path.touch(self)  # the half-written file goes again
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Path, "write_text", full)
    said: list[str] = []
    monkeypatch.setattr(progress, "_writer", said.append)
    art = TestArtifacts(tmp_path / "t", "tests/t")
    art.attach("dmesg.txt", "log")
    assert art.files == [] and not (tmp_path / "t" / "dmesg.txt").exists()
    assert len(said) == 1 and "No space left on device" in said[0]


# -- TestFrame with a fake guest ------------------------------------------------------------

class FakeGuest:
    """A stand-in for harness.guest.Guest (no QEMU): a kernel log that the console and
    dmesg both show, liveness, taint flags, the QMP panic event and the signal that killed
    QEMU; it records what the frame asked of it."""

    def __init__(self, taint=(0, 0), pins=((0, 0), (0, 0))):
        self.config = SimpleNamespace(kernel=SimpleNamespace(vmlinux=None, modules_dir=None,
                                                             source_root=None))
        self.log = body("clean-boot-debian-6.1.log")
        self.alive = True
        self.taints = list(taint)
        self.pins = [f"nr_foll_pin_acquired {a}\nnr_foll_pin_released {r}\n" for a, r in pins]
        self.panic = None
        self.killed = None
        self.mark_error: Exception | None = None
        self.calls: list[str] = []

    # what the test does to the kernel
    def kernel_prints(self, name: str) -> None:
        self.log += body(name)

    def dies(self, killed: int | None = None, panic: dict | None = None) -> None:
        self.alive, self.killed, self.panic = False, killed, panic

    # the Guest API the frame uses
    def mark(self, label: str) -> None:
        self.calls.append(f"mark {label.split()[0]}")
        if self.mark_error:
            raise self.mark_error
        self.log.append(f"[   99.000000] {mark_text(label)}")

    def taint(self) -> int:
        self.calls.append("taint")
        return self.taints.pop(0)

    def run(self, command: str, timeout_s: float = 0):
        self.calls.append("vmstat")
        return SimpleNamespace(stdout=self.pins.pop(0), status=0)

    def is_alive(self) -> bool:
        return self.alive

    def panic_event(self) -> dict | None:
        return self.panic

    def killed_by(self) -> int | None:
        return self.killed

    def wait_exit(self, timeout_s: float) -> bool:
        self.calls.append("wait_exit")
        if self.panic:
            self.alive = False  # QEMU exits once the panic is printed (-no-reboot)
        return not self.alive

    def dump_blocked_tasks(self) -> bool:
        self.calls.append("sysrq-w")
        self.log.append("[  100.000000] sysrq: Show Blocked State")
        return True

    def dmesg_between(self, begin: str, end: str) -> str:
        self.calls.append("dmesg")
        return slice_between_marks(self.console_text(), begin, end)

    def console_text(self) -> str:
        return "\n".join(self.log) + "\n"

    def stop(self) -> None:
        self.calls.append("stop")
        self.alive = False


def started(tmp_path, guest: FakeGuest, expected=()) -> TestFrame:
    frame = TestFrame(TEST, expected, guest, TestArtifacts(tmp_path / "t", "tests/t"))
    frame.start()
    return frame


def test_a_clean_test(tmp_path):
    guest = FakeGuest()
    frame = started(tmp_path, guest)
    guest.log.append("[   50.000000] EXT4-fs (pmem0): mounted filesystem")
    frame.finish(None)
    assert guest.calls == ["mark begin", "taint", "mark end", "dmesg", "taint"]
    assert (tmp_path / "t" / "dmesg.txt").read_text() == \
        "[   50.000000] EXT4-fs (pmem0): mounted filesystem\n"
    assert frame.findings == [] and not frame.crashed and not frame.guest_stopped
    assert frame.failure() is None


def test_an_oops_that_taints_fails_the_test_and_retires_the_guest(tmp_path):
    guest = FakeGuest(taint=(0, 4608))
    frame = started(tmp_path, guest)
    guest.kernel_prints("real-6.1-oops-dax_disassociate_entry-ext4-unbind.log")
    stall = kmsg.Finding("hung_task", "workload stalled: nvh-odirect", 0, "")
    frame.artifacts.add_finding(stall)
    frame.finish(None)
    # The harness's own findings come first, then the kernel's.
    assert [f.title for f in frame.findings] == [stall.title, OOPS]
    assert frame.guest_stopped and guest.calls[-1] == "stop" and not frame.crashed
    assert frame.taint_changed
    assert frame.findings_json()[1] == {
        "kind": "oops", "title": OOPS, "frame": "dax_disassociate_entry",
        "line": frame.findings[1].line, "log_line": frame.findings[1].header}
    error = frame.failure("FOLL_PIN leak: 1 pages pinned but 0 released")
    assert isinstance(error, KernelFindingsError)
    assert str(error).splitlines() == [
        "the kernel reported problems during the test:",
        f"  hung_task: {stall.title} (dmesg line 0)",
        f"  oops: {OOPS} (dmesg line {frame.findings[1].line})",
        "FOLL_PIN leak: 1 pages pinned but 0 released"]


def test_an_expected_finding_is_shown_but_does_not_fail(tmp_path):
    guest = FakeGuest()
    frame = started(tmp_path, guest,
                    expected=[r"BUG: unable to handle kernel paging request in dax_.*"])
    guest.kernel_prints("real-6.1-oops-dax_disassociate_entry-ext4-unbind.log")
    frame.finish(None)
    assert frame.findings == [] and [f.title for f in frame.expected_findings] == [OOPS]
    assert frame.failure() is None and not frame.guest_stopped


def test_a_panic_drops_ssh_and_the_console_has_the_log(tmp_path):
    guest = FakeGuest()
    frame = started(tmp_path, guest)
    guest.kernel_prints("real-6.1-panic-sysrq-c.log")
    guest.dies(panic=None)
    frame.finish(ConnectionError("SSH session closed"))
    assert "wait_exit" in guest.calls and "dmesg" not in guest.calls
    assert "mark end" not in guest.calls  # nobody to talk to
    assert frame.crashed == PANIC and frame.guest_stopped and not frame.timed_out
    dmesg = (tmp_path / "t" / "dmesg.txt").read_text()
    assert "Kernel panic - not syncing: sysrq triggered crash" in dmesg
    assert "Linux version" not in dmesg  # the slice starts at the test's begin mark


def test_qmp_panic_without_panic_text(tmp_path):
    guest = FakeGuest()
    frame = started(tmp_path, guest)
    guest.panic = {"event": "GUEST_PANICKED"}
    frame.finish(EOFError())
    assert frame.crashed == "kernel panic (no panic text on the console) [QMP: GUEST_PANICKED]"
    assert guest.calls.count("wait_exit") == 1 and frame.guest_stopped


def test_qemu_killed_from_outside_is_not_a_crash(tmp_path):
    guest = FakeGuest()
    frame = started(tmp_path, guest)
    guest.dies(killed=signal.SIGKILL)
    frame.finish(ConnectionError())
    assert frame.crashed == "" and frame.qemu_killed == KILLED and frame.guest_stopped


def test_a_command_timeout_dumps_blocked_tasks_and_retires_the_guest(tmp_path):
    guest = FakeGuest()
    frame = started(tmp_path, guest)
    frame.finish(GuestCommandTimeout("nvh-odirect", 120))
    assert guest.calls[2:] == ["sysrq-w", "stop"]
    assert frame.timed_out and frame.guest_stopped and not frame.crashed
    assert "Show Blocked State" in (tmp_path / "t" / "dmesg.txt").read_text()


def test_a_stale_code_loop_of_the_emulator_is_its_fault_not_the_kernel_s(tmp_path):
    """The real capture: a soft lockup whose NMI backtraces show the other vCPU looping on
    an int3 that memory no longer holds (QEMU TCG); the frame names the emulator and
    retires the guest."""
    guest = FakeGuest()
    frame = started(tmp_path, guest)
    guest.kernel_prints("real-tcg-stale-int3-own-6.1.192.log")
    frame.finish(GuestCommandTimeout("nvh-kvm", 180))
    assert frame.emulator_fault.startswith("emulator fault, not a kernel bug: CPU 0 trapped")
    assert "__schedule+0x228" in frame.emulator_fault and frame.guest_stopped
    assert [f.kind for f in frame.findings] == ["soft_lockup"] * 3  # kept, for the record
    assert str(frame.failure()) == frame.emulator_fault


def test_a_soft_lockup_without_that_evidence_stays_the_kernel_s(tmp_path):
    guest = FakeGuest()
    frame = started(tmp_path, guest)
    guest.kernel_prints("real-tcg-stale-int3-own-6.1.192.log")
    guest.log = [ln.replace("asm_exc_int3", "asm_sysvec_apic_timer_interrupt")
                 for ln in guest.log]
    frame.finish(GuestCommandTimeout("nvh-kvm", 180))
    assert frame.emulator_fault == "" and frame.timed_out
    assert isinstance(frame.failure(), KernelFindingsError)


def test_a_guest_that_stops_answering_after_the_test_counts_as_timed_out(tmp_path):
    guest = FakeGuest()
    frame = started(tmp_path, guest)
    guest.kernel_prints("real-6.1-oops-dax_disassociate_entry-ext4-unbind.log")
    guest.mark_error = HarnessError("guest command did not finish")
    frame.finish(None)
    assert frame.timed_out and frame.guest_stopped
    assert [f.title for f in frame.findings] == [OOPS]  # from the console instead


def test_after_ctrl_c_the_frame_only_saves_the_console_slice(tmp_path):
    guest = FakeGuest()
    frame = started(tmp_path, guest)
    guest.kernel_prints("real-6.1-oops-dax_disassociate_entry-ext4-unbind.log")
    interrupt.note(signal.SIGINT)
    frame.finish(KeyboardInterrupt())
    assert guest.calls == ["mark begin", "taint"]  # no SSH round trip, no stop
    assert "dax_disassociate_entry" in (tmp_path / "t" / "dmesg.txt").read_text()
    assert frame.findings == [] and not frame.guest_stopped


# -- guard(): the hook wrapper around the test call -----------------------------------------

def test_guard_returns_the_result_of_a_clean_balanced_test(tmp_path):
    guest = FakeGuest(pins=((10, 10), (14, 14)))
    frame = started(tmp_path, guest)
    gen = frame.guard(PinAccounting(guest))
    next(gen)  # the test runs here
    with pytest.raises(StopIteration) as stop:
        gen.send("result")
    assert stop.value.value == "result"
    assert guest.calls.count("vmstat") == 2 and "mark end" in guest.calls


def test_guard_fails_a_test_that_leaked_pins(tmp_path):
    guest = FakeGuest(pins=((10, 10), (14, 12)))
    frame = started(tmp_path, guest)
    gen = frame.guard(PinAccounting(guest))
    next(gen)
    with pytest.raises(AssertionError, match="FOLL_PIN leak: 4 pages pinned but 2 released"):
        gen.send(None)
    assert "mark end" in guest.calls  # the frame finished first


def test_guard_finishes_the_frame_with_the_test_s_exception(tmp_path):
    guest = FakeGuest()
    frame = started(tmp_path, guest)
    gen = frame.guard()
    next(gen)
    with pytest.raises(GuestCommandTimeout):
        gen.throw(GuestCommandTimeout("fio", 60))
    assert frame.timed_out and "sysrq-w" in guest.calls


def test_guard_turns_a_cleanup_error_after_ctrl_c_into_the_interrupt(tmp_path):
    guest = FakeGuest()
    frame = started(tmp_path, guest)
    gen = frame.guard()
    next(gen)
    interrupt.note(signal.SIGTERM)
    with pytest.raises(KeyboardInterrupt, match="ConnectionError in cleanup"):
        gen.throw(ConnectionError("the run was interrupted: no more guest commands"))
    assert guest.calls == ["mark begin", "taint"]


class RestartingGuest(FakeGuest):
    def restart(self) -> None:
        self.calls.append("restart")
        self.alive = True


def test_checks_owed_to_a_crashed_test_run_on_the_restarted_guest(tmp_path):
    """issue 14: 'the namespace works again' is checked for every removal test, after a
    restart when the removal crashed the guest; recorded with the test's other checks."""
    guest = RestartingGuest()
    frame = started(tmp_path, guest)
    frame.artifacts.after_restart = lambda: [
        Check("namespace usable again", "a 64 KiB O_DIRECT round trip byte-exact",
              "recreated, byte-exact", True)]
    guest.kernel_prints("real-6.1-panic-sysrq-c.log")
    guest.dies(panic=None)
    frame.finish(ConnectionError("SSH session closed"))
    assert frame.crashed and guest.calls[-2:] == ["stop", "restart"]
    [check] = frame.artifacts.checks
    assert check.name == "namespace usable again (after the restart)" and check.ok
    assert frame.artifacts.after_restart is None


def test_nothing_is_owed_by_a_test_that_made_its_checks(tmp_path):
    guest = RestartingGuest(taint=(0, 4608))
    frame = started(tmp_path, guest)
    frame.artifacts.after_restart = None  # the test checked the namespace itself
    guest.kernel_prints("real-6.1-oops-dax_disassociate_entry-ext4-unbind.log")
    frame.finish(None)
    assert frame.guest_stopped and "restart" not in guest.calls


def test_a_restart_that_fails_is_a_failed_check_not_a_lost_one(tmp_path):
    class Unbootable(FakeGuest):
        def restart(self):
            raise HarnessError("guest did not reach SSH")
    guest = Unbootable()
    frame = started(tmp_path, guest)
    frame.artifacts.after_restart = lambda: []
    guest.kernel_prints("real-6.1-panic-sysrq-c.log")
    guest.dies(panic=None)
    frame.finish(ConnectionError("SSH session closed"))
    [check] = frame.artifacts.checks
    assert not check.ok and "did not reach SSH" in check.observed
