"""The KVM family's pure pieces: the table, the judge fed wrong observations, the probe."""

from pathlib import Path

import pytest

from harness import dax, expectations, kvm
from harness.checks import failures

ROOT = Path(__file__).resolve().parents[2]
TABLE = ROOT / "testcases" / "expectations" / "kvm.yaml"
DEBIAN = "6.1.0-57-amd64"


def table():
    return expectations.load(TABLE, kvm.VOCABULARY)


def run(op=1, ok=True, errno=None, exit_="hlt"):
    return {"op": op, "kvm_run": {"ok": ok, "errno": errno}, "exit": exit_ if ok else None,
            "elapsed_ms": 3}


def report(case="guest-writes", **kw):
    base = {"program": "nvh-kvm", "case": case, "completed": True, "error": None,
            "runs": [run()], "stats": {"pages_4k": 3, "pages_2m": 2, "pages_1g": 0},
            "host_check": {"mismatches": 0, "first_mismatch_offset": None, "sigbus": False}}
    base.update(kw)
    return base


def names(checks):
    return [c.name for c in failures(checks)]


def test_every_access_cell_has_a_row_with_a_page_size_and_a_data_check():
    cells = [(m.name, c) for m in dax.buffer_modes() for c in kvm.ACCESS_CASES]
    assert len(cells) == 40
    assert expectations.uncovered(table(), cells, ("guest_run", "pages_2m"), DEBIAN) == []
    for mode, case in cells:
        e = table().lookup(mode, case, DEBIAN)
        assert {"host_sees_guest", "guest_sees_host"} & set(e.values)
        assert all(e.sources[k] for k in e.values)
    assert table().lookup("devdax-2M-dev", "guest-writes").values["pages_2m"] == 2
    assert table().lookup("devdax-4K-mem", "host-writes").values["pages_2m"] == 0
    assert table().lookup("devdax-2M-mem", "dirty-log").values["pages_2m"] == 0


def test_a_good_guest_writes_report_passes():
    e = table().lookup("devdax-2M-mem", "guest-writes").values
    assert failures(kvm.kvm_checks({"report": report()}, e)) == []


def test_each_wrong_observation_fails_its_own_check():
    e = table().lookup("devdax-2M-mem", "guest-writes").values
    refused = report(runs=[run(ok=False, errno="EFAULT")],
                     host_check={"skipped": "the guest run failed"})
    assert names(kvm.kvm_checks({"report": refused}, e)) == [
        "guest run", "the guest's bytes, read by the VMM"]
    assert "KVM_RUN -1 EFAULT" in str(failures(kvm.kvm_checks({"report": refused}, e))[0])
    small = report(stats={"pages_4k": 1026, "pages_2m": 0, "pages_1g": 0})
    [c] = failures(kvm.kvm_checks({"report": small}, e))
    assert str(c) == ("KVM 2 MiB mappings (VM stat pages_2m): expected 2, "
                      "observed 0 (pages_4k 1026)")
    corrupt = report(host_check={"mismatches": 7, "first_mismatch_offset": 4096,
                                 "sigbus": False})
    assert names(kvm.kvm_checks({"report": corrupt}, e)) == ["the guest's bytes, read by the VMM"]
    mmio = report(runs=[run(exit_="mmio")])
    assert names(kvm.kvm_checks({"report": mmio}, e)) == ["guest run"]
    stopped = report(completed=False, error="KVM_CREATE_VM: EBUSY", runs=[])
    assert "workload" in names(kvm.kvm_checks({"report": stopped}, e))


def test_dirty_log_must_name_exactly_the_written_pages():
    e = table().lookup("fsdax-xfs-dev", "dirty-log").values
    good = report(case="dirty-log", stats={"pages_4k": 702, "pages_2m": 0},
                  dirty={"written": 700, "reported": 700, "exact": True,
                         "first_unexpected": None})
    assert failures(kvm.kvm_checks({"report": good}, e)) == []
    bad = report(case="dirty-log", stats={"pages_4k": 702, "pages_2m": 0},
                 dirty={"written": 700, "reported": 512, "exact": False,
                        "first_unexpected": 512})
    [c] = failures(kvm.kvm_checks({"report": bad}, e))
    assert c.key == "dirty_log" and "first unexpected page 512" in c.observed


def test_removal_under_a_live_vm_wants_efault_on_the_next_access():
    e = table().lookup("devdax-2M-mem", "mapped-disable", DEBIAN).values
    final = report(case="hold", runs=[run(), run(ok=False, errno="EFAULT")])
    obs = {"report": final, "action": {"ok": True, "status": 0},
           "next": {"event": "ran", "run": run(ok=False, errno="EFAULT")},
           "vmm_exit": {"ok": True, "detail": "reported and exited"}}
    assert failures(kvm.kvm_checks(obs, e)) == []
    # a kernel that still maps the freed pages: the guest's access succeeds
    stale = dict(obs, next={"event": "ran", "run": run()})
    [c] = failures(kvm.kvm_checks(stale, e))
    assert str(c) == ("the guest's next access: expected KVM_RUN fails EFAULT, "
                      "observed ran to hlt")
    silent = dict(obs, next=None, vmm_exit={"ok": False, "detail": "still running"})
    assert names(kvm.kvm_checks(silent, e)) == ["the guest's next access", "the VMM"]


def test_a_loop_that_never_ends_and_a_hole_that_is_not_zero_fail():
    e = table().lookup("devdax-2M-mem", "running-disable", DEBIAN).values
    ended = {"action": {"ok": True}, "loop": {"passes": 40, "stopped_by": "error",
                                              "run": run(op=3, ok=False, errno="EFAULT")}}
    assert failures(kvm.kvm_checks(ended, e)) == []
    running = {"action": {"ok": True}, "loop": {"passes": 900, "stopped_by": "signal",
                                                "run": run(op=3, exit_="io")}}
    assert names(kvm.kvm_checks(running, e)) == ["the looping vCPU"]
    e = table().lookup("fsdax-ext4-mem", "punch-hole", DEBIAN).values
    hole = {"offset": 0, "size": 2 << 20, "zeroes_in_hole": True, "rest_exact": True}
    obs = {"report": report(case="hold"), "action": {"ok": True},
           "next": {"run": run(op=2), "guest_check": {"mismatches": 524288,
                                                             "hole": hole}}}
    assert failures(kvm.kvm_checks(obs, e)) == []
    obs["next"]["guest_check"]["hole"] = dict(hole, zeroes_in_hole=False)
    [c] = failures(kvm.kvm_checks(obs, e))
    assert c.key == "next_read" and c.observed == "hole not zeroes, rest as written"


def test_a_key_the_test_never_observes_fails():
    e = table().lookup("devdax-2M-mem", "qemu-boot", DEBIAN).values
    [c] = failures(kvm.kvm_checks({}, e))
    assert c.name == "nested_boot (kvm.yaml)" and c.observed == "not observed by this test"


def test_the_nested_boot_needs_its_marker_and_a_clean_memory_test():
    line = "nvh-nested: init reached, kernel 6.1.0-57-amd64, memtest ok (0 of 4194304 ...)"
    assert kvm.nested_outcome(0, f"junk\n{line}\n", 41.0)["marker"]
    bad = kvm.nested_outcome(0, line.replace("memtest ok", "memtest FAILED"), 41.0)
    assert not bad["marker"] and not bad["memtest_ok"]
    late = kvm.nested_outcome(124, "[    0.000000] Linux version", 180.0)
    assert not late["marker"] and "timed out" in late["detail"]


@pytest.mark.parametrize(("output", "reason"), [
    ("nvh: module kvm_amd\nnvh: dev-kvm\n", ""),
    ("nvh: no-virt\n", "no nested virtualization"),
    ("modprobe: FATAL: Module kvm_amd not found in directory /lib/modules/6.1.0\n"
     "nvh: module kvm_amd\n", "kvm_amd did not give /dev/kvm (modprobe: FATAL"),
])
def test_the_probe_says_why_kvm_is_unavailable(output, reason):
    got = kvm.kvm_unavailable_reason(output)
    assert (got == "") if not reason else reason in got


def test_commands_quote_and_spell_options():
    assert kvm.kvm_command("file:/mnt/dax/a b", "hold", next="read", hole_size=2097152) == (
        "nvh-kvm --buffer 'file:/mnt/dax/a b' --case hold --size 4194304 --next read "
        "--hole-size 2097152")
    q = kvm.nested_qemu_command("/dev/dax0.0", "/boot/vmlinuz-6.1", "/tmp/i", "256M")
    assert "mem-path=/dev/dax0.0,share=on,align=2M,size=256M" in q and "-accel kvm" in q


class ProbedGuest:
    """Counts what ready_in_this_boot() asks of the guest (no VM is started: no virt)."""

    def __init__(self):
        self.boots, self.commands = 1, []

    def run(self, command, timeout_s=0):
        self.commands.append(command)
        return type("R", (), {"stdout": "nvh: no-virt\n", "status": 0})()


def test_the_kvm_probe_runs_once_per_guest_boot():
    guest, state = ProbedGuest(), {}
    assert "no nested virtualization" in kvm.ready_in_this_boot(guest, state)
    assert kvm.ready_in_this_boot(guest, state) == state["reason"]
    assert len(guest.commands) == 1
    guest.boots = 2  # restarted after a crash: probed again
    kvm.ready_in_this_boot(guest, state)
    assert len(guest.commands) == 2
