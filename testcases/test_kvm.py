"""KVM guests whose memory is DAX: workload family 4, the KVM half of the seed series (issue 19).

The seed series converts KVM's page lookup to pfn_t (virt/kvm/kvm_main.c hva_to_pfn(),
kvm_pfn_t) so a KVM guest's memory can live in a DAX mapping. Each test runs nvh-kvm
(guest-images/workloads/nvh-kvm.c), a minimal VMM on the test guest's /dev/kvm (nested SVM:
TCG's -cpu max emulates it), with a 4 MiB memory slot backed by the mode's memory, and checks
against testcases/expectations/kvm.yaml:

- access: the guest writes the slot and the VMM reads it back, on a never-touched host
  mapping (KVM's fault path) and a pre-faulted one; the VMM writes and the guest checksums;
  dirty logging reports exactly the pages written; KVM's own page-size statistics say
  whether the slot was mapped huge (pages_2m);
- removal: device-dax disabled, destroyed or reconfigured under a live VM (vCPU paused, then
  its next access), and disabled while the vCPU loops over the slot; the namespace must
  work again afterwards;
- fsdax: the backing file truncated or hole-punched under a live VM;
- a real VMM: QEMU in the test guest with the devdax device as its guest's RAM.

Where the guest cannot run VMs (no svm/vmx in its CPU model, a kernel without KVM) every test
is skipped with that reason. `-k kvm` selects them all.
"""

from __future__ import annotations

import contextlib
import json
import shlex
import time

import pytest

from harness import dax, kvm, removal
from harness.checks import failures, format_failures, with_sources
from harness.workload import run_workload

pytestmark = pytest.mark.foll_counters_balanced

TIMEOUT_S = 180
ACTION_DEADLINE_S = 90      # as the removal family: ndctl under TCG takes seconds
LOOP_END_S = 60             # a looping vCPU must notice the removal within this
HOLE = (0, 2 << 20)         # punch-hole: the slot's first 2 MiB (one PMD)
MODES = dax.buffer_modes()
ACCESS = [(mode, case) for mode in MODES for case in kvm.ACCESS_CASES]
DEVDAX_2M = next(m for m in MODES if m.name == "devdax-2M-mem")


@pytest.fixture(scope="module")
def kvm_boot_state():
    """What harness.kvm.ready_in_this_boot() learnt about the current guest boot, and the
    idle VM it keeps there for the whole family (the tests' VMs then flip no static keys,
    so no kernel text is patched under a running vCPU)."""
    state: dict = {}
    yield state
    kvm.release_kept_vm(state)


@pytest.fixture
def kvm_ready(guest, kvm_boot_state):
    """Skip with the reason when the test guest cannot run VMs."""
    reason = kvm.ready_in_this_boot(guest, kvm_boot_state)
    if reason:
        pytest.skip(reason)


def judge(artifacts, expect, obs: dict, extra_checks=()) -> None:
    artifacts.attach("kvm.json", json.dumps(obs, indent=2, default=str) + "\n")
    artifacts.expectation(expect.describe(), kvm.describe_kvm(obs))
    artifacts.add_checks(with_sources(kvm.kvm_checks(obs, expect.values), expect.sources))
    artifacts.add_checks(extra_checks)
    assert not failures(artifacts.checks), format_failures(artifacts.checks)


# ------------------------------------------------------------------------------ access

@pytest.mark.parametrize(("mode", "case"), ACCESS, ids=[f"{m.name}-{c}" for m, c in ACCESS])
def test_kvm_access(guest, ndctl, artifacts, expectations, kvm_ready, mode, case):
    """A KVM guest reads and writes a memory slot backed by the mode's memory."""
    expect = expectations["kvm"].lookup(mode.name, case, guest.kernel_release)
    with dax.buffer_in_mode(ndctl, mode) as buffer:
        command = kvm.kvm_command(buffer, case, dirty_pages=kvm.DIRTY_PAGES) \
            if case == "dirty-log" else kvm.kvm_command(buffer, case)
        report = run_workload(guest, command, TIMEOUT_S, json_lines=True)
    artifacts.attach("workload.json", json.dumps({"command": command, **report}, indent=2) + "\n")
    judge(artifacts, expect, {"report": report})


# ----------------------------------------------------------------------------- removal

@contextlib.contextmanager
def held_vm(guest, command: str):
    vm = kvm.HeldVm(guest, command)
    try:
        yield vm
    finally:
        vm.cleanup()


@pytest.fixture
def namespace_usable_after(guest, ndctl, artifacts):
    """After a removal the namespace must work again (harness.removal.owe_namespace_check:
    a test that crashed the guest is checked on the restarted one)."""
    removal.owe_namespace_check(guest, ndctl, artifacts)
    yield lambda: [removal.namespace_check_now(guest, ndctl, artifacts)]


@pytest.mark.parametrize("action", ["disable", "destroy", "reconfigure"])
def test_kvm_remove_mapped_devdax(guest, ndctl, artifacts, expectations, kvm_ready,
                                  namespace_usable_after, action):
    """device-dax taken away under a live VM whose slot it backs; then the guest's next
    access: KVM must fail it (EFAULT), never hand the guest the freed pages."""
    expect = expectations["kvm"].lookup(DEVDAX_2M.name, f"mapped-{action}", guest.kernel_release)
    obs: dict = {"action_name": f"ndctl {action}"}
    with dax.devdax(ndctl, align="2M", map="mem") as ns, \
            held_vm(guest, kvm.kvm_command(f"devdax:{ns.device_path}", "hold")) as vm:
        vm.start("ready")
        done = removal.act(guest, artifacts, removal.action_command(action), ACTION_DEADLINE_S)
        obs.update(action=done["command"], action_s=done["action_s"])
        obs["next"] = vm.run_again()
        obs.update(vm.stop())
    checks = namespace_usable_after()
    judge(artifacts, expect, obs, checks)


def test_kvm_remove_running_devdax(guest, ndctl, artifacts, expectations, kvm_ready,
                                   namespace_usable_after):
    """device-dax disabled while the vCPU writes the slot in a loop: the mmu-notifier
    invalidation races the guest's accesses; the loop must end (EFAULT) within LOOP_END_S."""
    expect = expectations["kvm"].lookup(DEVDAX_2M.name, "running-disable", guest.kernel_release)
    obs: dict = {"action_name": "ndctl disable"}
    with dax.devdax(ndctl, align="2M", map="mem") as ns, \
            held_vm(guest, kvm.kvm_command(f"devdax:{ns.device_path}", "loop")) as vm:
        vm.start("running")
        done = removal.act(guest, artifacts, removal.action_command("disable"),
                           ACTION_DEADLINE_S)
        obs.update(action=done["command"], action_s=done["action_s"])
        # A loop still running at the deadline is stopped by SIGUSR2: stopped_by "signal".
        obs["ended_within_s"] = LOOP_END_S if vm.wait_end(LOOP_END_S) else None
        obs.update(vm.stop())
        obs["loop"] = (obs["report"] or {}).get("loop")
    checks = namespace_usable_after()
    judge(artifacts, expect, obs, checks)


FSDAX_ACTIONS = {
    "truncate": "truncate -s 0 {path}",
    "punch-hole": f"fallocate --punch-hole --keep-size -o {HOLE[0]} -l {HOLE[1]} {{path}}",
}


@pytest.mark.parametrize("fs", ["ext4", "xfs"])
@pytest.mark.parametrize("action", list(FSDAX_ACTIONS))
def test_kvm_fsdax_file_shrinks(guest, ndctl, artifacts, expectations, kvm_ready, fs, action):
    """The fsdax file behind a live VM's slot is truncated or hole-punched: KVM takes no
    long-term pin, so it completes; the guest's next read faults (EFAULT) or sees zeroes."""
    expect = expectations["kvm"].lookup(f"fsdax-{fs}-mem", action, guest.kernel_release)
    obs: dict = {"action_name": action}
    with dax.fsdax_mount(ndctl, fs, map="mem") as mount:
        path = mount.path("vm-memory")
        command = kvm.kvm_command(f"file:{path}", "hold", next="read",
                                  **({"hole_offset": HOLE[0], "hole_size": HOLE[1]}
                                     if action == "punch-hole" else {}))
        with held_vm(guest, command) as vm:
            vm.start("ready")
            done = removal.act(guest, artifacts,
                               FSDAX_ACTIONS[action].format(path=shlex.quote(path)),
                               ACTION_DEADLINE_S)
            obs.update(action=done["command"], action_s=done["action_s"])
            obs["next"] = vm.run_again()
            obs.update(vm.stop())
    judge(artifacts, expect, obs)


# --------------------------------------------------------------------------- a real VMM

NESTED_RAM = "256M"
NESTED_DIR = "/tmp/nvh-nested"
# The test guest's newest installed kernel boots the nested guest (the image always has
# Debian's, also when the test guest itself runs a --kernel-tree build).
NESTED_SETUP = (f"rm -rf {NESTED_DIR} && mkdir -p {NESTED_DIR}/root/dev && "
                f"cp /usr/local/lib/nvh/nvh-nested-init {NESTED_DIR}/root/init && "
                f"(cd {NESTED_DIR}/root && find . | cpio -o -H newc --quiet) "
                f"> {NESTED_DIR}/initrd && ls /boot/vmlinuz-* | sort -V | tail -1")


def test_kvm_qemu_boots_on_devdax(guest, ndctl, artifacts, expectations, kvm_ready):
    """QEMU in the test guest, its guest's RAM the devdax device (QEMU docs/nvdimm.txt),
    boots a kernel to its init, which checks 32 MiB of that memory."""
    expect = expectations["kvm"].lookup(DEVDAX_2M.name, "qemu-boot", guest.kernel_release)
    kernel = guest.succeed(NESTED_SETUP, timeout_s=120).strip().splitlines()[-1]
    with dax.devdax(ndctl, align="2M", map="mem") as ns:
        command = kvm.nested_qemu_command(ns.device_path, kernel, f"{NESTED_DIR}/initrd",
                                          NESTED_RAM)
        started = time.monotonic()
        r = guest.run(f"timeout {TIMEOUT_S} {command}", TIMEOUT_S + 30)
        elapsed = round(time.monotonic() - started, 1)
    artifacts.attach("nested-console.txt", f"$ {command}\n{r.stdout}\n{r.stderr}")
    obs = {"nested": kvm.nested_outcome(r.status, r.stdout + r.stderr, elapsed)}
    judge(artifacts, expect, obs)
