"""KVM guests whose memory is DAX (workload family 4: the KVM half of the seed series).

The seed series converts KVM's page lookup to pfn_t (virt/kvm/kvm_main.c hva_to_pfn(),
kvm_pfn_t) so that a KVM guest's memory can be a DAX mapping. nvh-kvm
(guest-images/workloads/nvh-kvm.c) is a minimal VMM on the test guest's /dev/kvm: it gives
a VM a memory slot backed by a device-dax or fsdax mapping (controls: anonymous memory, a
page-cache file), runs a few bytes of 32-bit guest code over it and prints what KVM did.
This module builds its command lines, makes sure the test guest can run VMs (nested SVM
under TCG), holds a VM in the background for the removal tests, and judges observations
against testcases/expectations/kvm.yaml. The judging functions are pure.
"""

from __future__ import annotations

import contextlib
import shlex
from typing import TYPE_CHECKING, Any

from .checks import Check, completed, result, unobserved
from .expectations import Vocabulary, parse_count_rule, v_exact, v_one_of, v_result, v_rule
from .guest_process import GuestProcess
from .workload import debug_hooks_prefix

if TYPE_CHECKING:
    from .ssh import Runner

# The memory slot under test: 4 MiB = two 2 MiB pages, so "mapped huge" is seen twice.
SLOT_SIZE = 4 << 20
DIRTY_PAGES = 700           # dirty-log: the guest writes pages 0..699 (across both 2 MiB)
ACCESS_CASES = ("guest-writes", "guest-writes-prefaulted", "host-writes", "dirty-log")


# Keys of testcases/expectations/kvm.yaml, judged by kvm_checks().
VOCABULARY: Vocabulary = {
    # the case's guest runs before anything is taken away: KVM_RUN returns 0 and the vCPU
    # stops at its hlt (ok), or KVM_RUN fails with {errno: E...}
    "guest_run": v_result("guest_run", "ok"),
    # the VMM reads every byte the guest wrote, through its own mapping
    "host_sees_guest": v_exact("host_sees_guest"),
    # the guest reads every byte the VMM wrote through its mapping
    "guest_sees_host": v_exact("guest_sees_host"),
    # KVM's own count of 2 MiB leaf mappings of the VM after the guest touched the slot
    # (VM statistic pages_2m, KVM_GET_STATS_FD): 2 = the 4 MiB slot mapped huge
    "pages_2m": v_rule("pages_2m"),
    # KVM_GET_DIRTY_LOG reports exactly the pages the guest wrote
    "dirty_log": v_exact("dirty_log"),
    # the removal or truncation under the live VM (ndctl, truncate, fallocate): its result
    "action": v_result("action", "ok"),
    # the guest's next access to the slot after the action
    "next_run": v_result("next_run", "ok"),
    # what that access read: exact (the bytes written before), zeroes-in-hole (a punched
    # range reads zeroes, the rest as written)
    "next_read": v_one_of("next_read", "exact", "zeroes-in-hole"),
    # a vCPU looping over the slot while the device goes away: its KVM_RUN ends with
    # {errno: E...}, or it is still running when stopped ("running")
    "loop_end": v_result("loop_end", "running"),
    # QEMU in the test guest boots a kernel whose RAM is the DAX device to its init
    "nested_boot": v_one_of("nested_boot", "marker"),
}


# ------------------------------------------------------------------ can this guest run VMs

# The vendor module: TCG's -cpu max emulates AMD SVM with nested paging (not VMX); a KVM host
# may offer either.
_ENABLE_KVM = ("if grep -qw svm /proc/cpuinfo; then m=kvm_amd; "
               "elif grep -qw vmx /proc/cpuinfo; then m=kvm_intel; "
               "else echo 'nvh: no-virt'; exit 0; fi; "
               "modprobe $m 2>&1; echo \"nvh: module $m\"; "
               "test -c /dev/kvm && echo 'nvh: dev-kvm'")


def kvm_unavailable_reason(output: str) -> str:
    """'' when the probe's output says /dev/kvm works, else why the family is skipped."""
    if "nvh: no-virt" in output:
        return ("no nested virtualization: the guest's CPU offers neither svm nor vmx "
                "(the QEMU -cpu model hides them; TCG's -cpu max has svm)")
    if "nvh: dev-kvm" in output:
        return ""
    module = next((line.split()[-1] for line in output.splitlines()
                   if line.startswith("nvh: module ")), "kvm")
    detail = " ".join(line.strip() for line in output.splitlines()
                      if line.strip() and not line.startswith("nvh: "))[:300]
    return (f"this kernel cannot run KVM guests: {module} did not give /dev/kvm"
            + (f" ({detail})" if detail else " (CONFIG_KVM off?)"))


def enable_kvm(guest: Runner) -> str:
    """Load the KVM vendor module in the guest; '' when /dev/kvm works, else the reason."""
    return kvm_unavailable_reason(guest.run(_ENABLE_KVM, timeout_s=120).stdout)


# ------------------------------------------------------- a VM kept alive for the family

# Creating the first VM (and vCPU) of a kernel flips static keys (preempt notifiers,
# kvm_has_noapic_vcpu...), destroying the last flips them back: text_poke_bp() on every
# test, and QEMU 7.2's multi-threaded TCG sometimes wedges the other vCPU on a stale int3
# when kernel text is patched under it (harness/emulator_faults.py). One idle VM of the
# same shape kept alive for the whole family keeps the keys on: the tests' VMs patch no
# text.
KEEPER_SIZE = 2 << 20


def ready_in_this_boot(guest: Runner, state: dict[str, Any]) -> str:
    """'' when this boot of the guest runs VMs (the vendor module loaded, an idle VM
    kept), else why not. Probed once per boot (state: the caller's, kept across tests; a
    restarted guest is probed again), so a test pays no round trip for it."""
    boot = getattr(guest, "boots", None)
    if "reason" in state and state.get("boot") == boot:
        return state["reason"]
    reason = enable_kvm(guest)
    if not reason:
        vm = HeldVm(guest, kvm_command("anon", "hold", KEEPER_SIZE))
        vm.start("ready")
        state["vm"] = vm
    state.update(boot=boot, reason=reason)
    return reason


def release_kept_vm(state: dict[str, Any]) -> None:
    vm = state.pop("vm", None)
    if vm is not None:
        with contextlib.suppress(Exception):  # the guest may be gone
            vm.stop(limit_s=30)
            vm.cleanup()


# ----------------------------------------------------------------------------- commands

def kvm_command(buffer: str, case: str, size: int = SLOT_SIZE, **extra: str | int) -> str:
    """nvh-kvm command line; extra options by keyword (next="read" -> --next read)."""
    args = [*debug_hooks_prefix(), "nvh-kvm", "--buffer", buffer, "--case", case,
            "--size", str(size)]
    for key, value in extra.items():
        args += [f"--{key.replace('_', '-')}", str(value)]
    return shlex.join(args)


# ------------------------------------------------------------------------------ judging

OPS = {1: "write", 2: "verify", 3: "write-loop"}


def _run_text(run: dict[str, Any] | None) -> str:
    if not run:
        return "not run"
    k = run.get("kvm_run") or {}
    if k.get("sigbus"):
        return "KVM_RUN ended by a SIGBUS to the VMM"
    if not k.get("ok"):
        return f"KVM_RUN -1 {k.get('errno') or '?'}"
    exit_ = run.get("exit")
    if exit_ == "hlt":
        return "ran to hlt"
    detail = run.get("detail")
    return f"exit {exit_}" + (f" {detail}" if detail else "")


def _op(run: dict[str, Any]) -> str:
    return OPS.get(run.get("op"), str(run.get("op")))


def _run_ok(run: dict[str, Any] | None) -> bool:
    return bool(run) and bool((run.get("kvm_run") or {}).get("ok")) and run.get("exit") == "hlt"


def _run_errno(run: dict[str, Any] | None) -> str | None:
    return ((run or {}).get("kvm_run") or {}).get("errno")


def _check_text(check: dict[str, Any] | None, what: str) -> str:
    if not check:
        return f"{what}: not checked"
    if check.get("skipped"):
        return f"{what}: not checked ({check['skipped']})"
    if check.get("sigbus"):
        return f"{what}: SIGBUS at offset {check.get('fault_offset')}"
    n = check.get("mismatches")
    if n == 0:
        return "byte-exact"
    return f"{n} dwords differ, the first at offset {check.get('first_mismatch_offset')}"


def _exact(check: dict[str, Any] | None) -> bool:
    return bool(check) and not check.get("skipped") and not check.get("sigbus") \
        and check.get("mismatches") == 0


def main_runs(report: dict[str, Any]) -> list[dict[str, Any]]:
    """The guest runs of the case itself: all of them for the access cases; for hold only
    the first (the report lists the runs asked for after "ready" too), none for loop (its
    end is the loop record)."""
    runs = report.get("runs") or []
    case = report.get("case")
    return runs[:1] if case == "hold" else [] if case == "loop" else runs


def describe_kvm(obs: dict[str, Any]) -> str:
    """One line of what happened, for the report's `observed`."""
    report = obs.get("report") or {}
    parts = []
    runs = main_runs(report)
    if runs:
        parts.append("guest " + ", ".join(f"{_op(r)}: {_run_text(r)}" for r in runs))
    if "host_check" in report:
        parts.append("host reads " + _check_text(report["host_check"], "host"))
    if "guest_check" in report:
        parts.append("guest reads " + _check_text(report["guest_check"], "guest"))
    stats = report.get("stats") or {}
    if "pages_2m" in stats:
        # hold and loop read them at the end, after the action zapped the mappings
        when = "at the end " if report.get("case") in ("hold", "loop") else ""
        parts.append(f"KVM mappings {when}pages_2m {stats.get('pages_2m')}, "
                     f"pages_4k {stats.get('pages_4k')}")
    dirty = report.get("dirty")
    if dirty:
        parts.append(f"dirty log {dirty.get('reported')} of {dirty.get('written')} written"
                     + ("" if dirty.get("exact") else
                        f", first unexpected page {dirty.get('first_unexpected')}"))
    if "action" in obs:
        a = obs["action"] or {}
        parts.append(f"{obs.get('action_name', 'action')} "
                     + ("ok" if a.get("ok") else f"failed {a.get('errno') or a.get('status')}"))
    if "next" in obs:
        parts.append("next access " + _run_text((obs["next"] or {}).get("run")))
    if "loop" in obs:
        loop = obs["loop"] or {}
        parts.append(f"loop {loop.get('passes')} passes, stopped by {loop.get('stopped_by')}: "
                     f"{_run_text(loop.get('run'))}")
    if "nested" in obs:
        parts.append(obs["nested"].get("detail", ""))
    if report.get("error"):
        parts.append(f"error: {report['error']}")
    return "; ".join(p for p in parts if p)


def _hole_outcome(check: dict[str, Any] | None) -> str:
    """exact | zeroes-in-hole | a description of anything else."""
    if not check or check.get("skipped"):
        return _check_text(check, "guest")
    hole = check.get("hole")
    if hole:
        if hole.get("zeroes_in_hole") and hole.get("rest_exact"):
            return "zeroes-in-hole"
        if hole.get("rest_exact") and check.get("mismatches") == 0:
            return "exact"
        return (f"hole {'zeroes' if hole.get('zeroes_in_hole') else 'not zeroes'}, rest "
                f"{'as written' if hole.get('rest_exact') else 'differs'}")
    return "exact" if _exact(check) else _check_text(check, "guest")


def kvm_checks(obs: dict[str, Any], expect: dict[str, Any]) -> list[Check]:
    """Every comparison of a KVM observation with `expect` (kvm.yaml), held or not.

    obs: {"report": nvh-kvm's final JSON, "action": removal.command_result() of the action
    under the live VM, "next": the VMM's "ran" event after it, "loop": the loop record,
    "nested": {"marker": bool, "detail": str}} as the test has them. A key of `expect`
    whose observation the test did not make fails as unobserved.
    """
    report = obs.get("report")
    out: list[Check] = []
    if report is not None:
        out.append(completed(report))
    runs = main_runs(report or {})
    if "guest_run" in expect and report is not None:
        want = expect["guest_run"]
        bad = next((r for r in runs if not _run_ok(r)), None)
        observed = "; ".join(f"{_op(r)}: {_run_text(r)}" for r in runs) or "no guest run"
        out.append(result("guest run", want, "KVM_RUN ok, the vCPU reaches hlt",
                          bool(runs) and bad is None, _run_errno(bad), observed,
                          key="guest_run", refusal="KVM_RUN fails {errno}"))
    if "host_sees_guest" in expect and report is not None:
        check = report.get("host_check")
        out.append(Check("the guest's bytes, read by the VMM", "byte-exact",
                         _check_text(check, "host"), _exact(check), key="host_sees_guest"))
    if "guest_sees_host" in expect and report is not None:
        check = report.get("guest_check")
        out.append(Check("the VMM's bytes, read by the guest", "byte-exact",
                         _check_text(check, "guest"), _exact(check), key="guest_sees_host"))
    if "pages_2m" in expect and report is not None:
        rule = parse_count_rule(expect["pages_2m"])
        stats = report.get("stats") or {}
        got = stats.get("pages_2m")
        out.append(Check("KVM 2 MiB mappings (VM stat pages_2m)", rule.text,
                         f"{got} (pages_4k {stats.get('pages_4k')})" if got is not None
                         else f"not read: {stats.get('error') or 'no pages_2m statistic'}",
                         got is not None and rule.holds(int(got)), key="pages_2m"))
    if "dirty_log" in expect and report is not None:
        dirty = report.get("dirty") or {}
        out.append(Check("KVM_GET_DIRTY_LOG", f"exactly the {dirty.get('written', '?')} "
                         "pages the guest wrote",
                         f"{dirty.get('reported')} pages reported" +
                         ("" if dirty.get("exact") else
                          f", first unexpected page {dirty.get('first_unexpected')}")
                         if dirty else "not read", bool(dirty.get("exact")), key="dirty_log"))
    if "action" in expect and "action" in obs:
        a = obs.get("action") or {}
        name = obs.get("action_name", "the action")
        out.append(result(name, expect["action"], "succeeds", bool(a.get("ok")),
                          a.get("errno"), "succeeded" if a.get("ok") else
                          f"status {a.get('status')} {a.get('errno') or ''} "
                          f"{a.get('stderr', '')[-200:]}".strip(), key="action"))
    if "next_run" in expect and "next" in obs:
        nxt = obs.get("next")
        run = (nxt or {}).get("run")
        observed = _run_text(run) if nxt else "the VMM did not answer"
        out.append(result("the guest's next access", expect["next_run"],
                          "KVM_RUN ok, the vCPU reaches hlt", _run_ok(run), _run_errno(run),
                          observed, key="next_run", refusal="KVM_RUN fails {errno}"))
    if "next_read" in expect and "next" in obs:
        nxt = obs.get("next") or {}
        got = _hole_outcome(nxt.get("guest_check"))
        want = expect["next_read"]
        out.append(Check("what the guest reads next", want, got, got == want, key="next_read"))
    if "loop_end" in expect and "loop" in obs:
        loop = obs.get("loop") or {}
        run = loop.get("run")
        want = expect["loop_end"]
        if want == "running":
            ok = loop.get("stopped_by") == "signal"
            wanted = "still running until stopped"
        else:
            ok = loop.get("stopped_by") == "error" and _run_errno(run) == want["errno"]
            wanted = f"KVM_RUN fails {want['errno']}"
        out.append(Check("the looping vCPU", wanted,
                         f"{loop.get('passes')} passes, then {_run_text(run)} "
                         f"(stopped by {loop.get('stopped_by')})" if loop else
                         "the VMM reported no loop end", ok, key="loop_end"))
    if "nested_boot" in expect and "nested" in obs:
        nested = obs.get("nested") or {}
        out.append(Check("nested QEMU boot", "reaches its init's marker line",
                         nested.get("detail", "not run"), bool(nested.get("marker")),
                         key="nested_boot"))
    vmm = obs.get("vmm_exit")
    if vmm is not None:
        # Always, without a key: the VMM survives everything to report, and exits when told.
        out.append(Check("the VMM", "survives and exits when told", vmm.get("detail", ""),
                         bool(vmm.get("ok"))))
    return out + unobserved(expect, out, "kvm.yaml")


# ------------------------------------------------------------------- a VM held running

class HeldVm:
    """nvh-kvm --case hold|loop in the background (protocol: guest-images/workloads/README.md).

    hold: the VM is set up and the guest has written the slot ("ready"); SIGUSR1 runs the
    guest over the slot once more ("ran"), SIGUSR2 ends it. loop: the vCPU writes the slot
    over and over ("running") until KVM_RUN fails or SIGUSR2.
    """

    def __init__(self, guest: Runner, command: str):
        self.proc = GuestProcess(guest, command, tag="nvh-kvm")

    def start(self, event: str, limit_s: float = 120) -> dict[str, Any]:
        """The first `event` ("ready", "running"), or the final report if it ended first."""
        self.proc.start()
        line = self.proc.wait_for_line(
            lambda o: o.get("event") == event or o.get("program") == "nvh-kvm", limit_s)
        if line is None:
            raise AssertionError(f"nvh-kvm did not report {event!r} within {limit_s:.0f}s: "
                                 f"{self.proc.stderr()[-2000:]}")
        return line

    def run_again(self, limit_s: float = 60) -> dict[str, Any] | None:
        """SIGUSR1: one more guest run; its "ran" event, None if the VMM did not answer."""
        return self.proc.request("USR1", "ran", limit_s)

    def wait_end(self, limit_s: float) -> bool:
        """Whether the VMM exited by itself within limit_s (a loop that ended)."""
        return self.proc.wait(limit_s)

    def stop(self, limit_s: float = 60) -> dict[str, Any]:
        """SIGUSR2 (unless it already exited) and the outcome: {"report": final JSON or
        None, "vmm_exit": {"ok", "detail"}}; a VMM stuck in the kernel is reported with
        its state and stacks."""
        exited = self.proc.finished()
        if not exited:
            self.proc.signal("USR2")
            exited = self.proc.wait(limit_s)
        finals = [o for o in self.proc.json_lines() if o.get("program") == "nvh-kvm"]
        report = finals[-1] if finals else None
        if not exited:
            detail = (f"still running {limit_s:.0f}s after SIGUSR2, state "
                      f"{self.proc.state()}:\n{self.proc.stacks()[:2000]}")
        elif report is None:
            detail = f"exited without its report: {self.proc.stderr()[-500:]}"
        else:
            detail = "reported and exited"
        return {"report": report,
                "vmm_exit": {"ok": exited and report is not None, "detail": detail}}

    def cleanup(self) -> None:
        self.proc.cleanup()


# --------------------------------------------------------------------------- a real VMM

NESTED_MARKER = "nvh-nested: init reached"


def nested_qemu_command(dax_device: str, kernel: str, initrd: str, ram: str) -> str:
    """QEMU in the test guest with `dax_device` as its guest's RAM, as QEMU's
    docs/nvdimm.txt describes (memory-backend-file on the device, share=on, the device's
    align). One vCPU, no devices but the serial console; init powers off, -no-reboot
    makes that (and a panic) end QEMU."""
    return shlex.join([
        "qemu-system-x86_64", "-accel", "kvm", "-cpu", "host", "-smp", "1", "-m", ram,
        "-nodefaults", "-no-reboot", "-display", "none", "-monitor", "none",
        "-serial", "stdio",
        "-object", f"memory-backend-file,id=ram0,mem-path={dax_device},share=on,align=2M,"
                   f"size={ram}",
        "-machine", "q35,memory-backend=ram0",
        "-kernel", kernel, "-initrd", initrd,
        "-append", "console=ttyS0 quiet panic=-1",
    ])


def nested_outcome(status: int, console: str, elapsed_s: float) -> dict[str, Any]:
    """{"marker": bool, "memtest_ok": bool, "elapsed_s", "detail"} from the nested QEMU's
    exit status and console: the marker line must be there and its memory test clean."""
    line = next((ln.strip() for ln in console.splitlines() if NESTED_MARKER in ln), "")
    memtest_ok = "memtest ok" in line
    if line:
        detail = f"{line} after {elapsed_s}s (QEMU exit {status})"
    elif status == 124:
        detail = f"no marker within {elapsed_s}s (timed out); console tail: {console[-600:]}"
    else:
        detail = f"QEMU exit {status} after {elapsed_s}s without the marker: {console[-600:]}"
    return {"marker": bool(line) and memtest_ok, "memtest_ok": memtest_ok,
            "elapsed_s": elapsed_s, "detail": detail}
