"""Removing the pmem device while its pages are mapped, pinned or under I/O (issue 5).

Workload family 3 of the DAX-GUP series ("revoking usages of ZONE_DEVICE pages when the
driver disables the pmem device"). Each test sets a namespace up, gives it a user (a process
with the range mapped, a long-term pin, an O_DIRECT held in flight by dm-delay), takes the
namespace away in the guest (ndctl disable / destroy / reconfigure / disable-region, or a
sysfs unbind of nd_pmem), and checks against testcases/expectations/remove.yaml: the action's
result, the namespace afterwards, what the old mapping does on the next touch (SIGBUS when
revoked), that the data is intact where the removal was refused. Every action runs under a
deadline: a hang fails the test as `timeout` with the blocked tasks' stacks (sysrq-w) in its
dmesg.txt, and the guest is restarted. After every test the namespace is recreated and must
pass an O_DIRECT round trip. Kernel bugs found here are in testcases/known_failures.yaml.

`-k remove` selects them all.
"""

from __future__ import annotations

import contextlib
import json

import pytest

from harness import dax, pinning, removal
from harness.checks import failures, format_failures, with_sources
from harness.guest_process import GuestProcess
from harness.odirect import odirect_command
from harness.qemu import SCRATCH_DISK_IN_GUEST as SCRATCH_DISK
from harness.sizes import MiB

pytestmark = pytest.mark.foll_counters_balanced

SIZE = 2 * MiB
ACTION_DEADLINE_S = 90      # ndctl under TCG takes seconds; a removal past this is hung
RELEASE_DEADLINE_S = 60
DELAY_MS = 4000             # dm-delay on the peer: the O_DIRECT stays in flight this long
                            # (times the kernel's slowdown: a KASAN kernel runs ndctl 3x slower)
DELAYED_PEER = "/dev/mapper/nvh-slow"


# ------------------------------------------------------------------------------ helpers

def remove(guest, artifacts, action: str, bound: str = "") -> dict:
    """Run the removal under its deadline; a hang dumps blocked tasks and fails as timeout."""
    return {"action": action, **removal.act(guest, artifacts, removal.action_command(action, bound),
                                            ACTION_DEADLINE_S)}


def holder_for(guest, buffer: str, method: str = "none", **extra) -> pinning.PinHolder:
    return pinning.PinHolder(guest, pinning.pin_command(buffer, method, SIZE, hold=True,
                                                        **extra))


def release(holder: pinning.PinHolder, obs: dict) -> None:
    outcome = holder.release(RELEASE_DEADLINE_S)
    obs["release"] = {k: v for k, v in outcome.items() if k != "stacks"}
    obs["release"]["deadline_s"] = RELEASE_DEADLINE_S
    if not outcome["exited"]:
        obs["release"]["stacks"] = outcome.get("stacks", "")


def file_digest(guest, path: str) -> str:
    return guest.succeed(f"md5sum < {path}", timeout_s=120).split()[0]


def judge(guest, ndctl, artifacts, expect, obs: dict) -> None:
    """Compare with the table, then check that the namespace works again, record every
    check (summary.json, for any outcome) and fail on the ones that did not hold."""
    artifacts.attach("removal.json", json.dumps(obs, indent=2, default=str) + "\n")
    artifacts.expectation(expect.describe(), removal.describe_removal(obs))
    artifacts.add_checks(with_sources(removal.removal_checks(obs, expect.values),
                                      expect.sources))
    artifacts.add_checks([removal.namespace_check_now(guest, ndctl, artifacts)])
    assert not failures(artifacts.checks), format_failures(artifacts.checks)


@pytest.fixture(autouse=True)
def _namespace_usable_after_a_restart(guest, ndctl, artifacts):
    """A removal that crashes or wedges the guest before its own check still gets the
    namespace-usable check: the test frame restarts the guest and runs this
    (harness/frame.py TestFrame._checks_after_restart)."""
    removal.owe_namespace_check(guest, ndctl, artifacts)
    yield


@contextlib.contextmanager
def checked_until_the_end(artifacts, expect, obs: dict):
    """When the guest dies mid-test (a panic), keep what could be checked before it."""
    try:
        yield
    except BaseException:
        if not artifacts.checks:
            artifacts.add_checks(with_sources(removal.removal_checks(obs, expect.values),
                                              expect.sources))
            artifacts.attach("removal.json", json.dumps(obs, indent=2, default=str) + "\n")
        raise


# --------------------------------------------------------------------------------- tests

FSDAX_ACTIONS = ["disable", "destroy", "reconfigure", "disable-region"]


@pytest.mark.parametrize("fs", ["ext4", "xfs"])
@pytest.mark.parametrize("action", FSDAX_ACTIONS)
def test_remove_busy_fsdax(guest, ndctl, artifacts, expectations, fs, action):
    """ndctl takes a mounted fsdax namespace away while a process has a file mapped."""
    expect = expectations["remove"].lookup(f"fsdax-{fs}", f"mapped-{action}", guest.kernel_release)
    with dax.fsdax_mount(ndctl, fs) as mount:
        path = mount.path("buffer")
        holder = holder_for(guest, f"file:{path}")
        try:
            holder.start()
            digest = file_digest(guest, path)
            obs = {"state_before": removal.namespace_state(guest)}
            obs.update(remove(guest, artifacts, action))
            obs["state_after"] = removal.namespace_state(guest)
            obs["touched"] = holder.touch()
            obs["data_intact"] = file_digest(guest, path) == digest \
                if guest.run(f"test -r {path}").status == 0 else False
            release(holder, obs)
        finally:
            holder.cleanup()
    judge(guest, ndctl, artifacts, expect, obs)


@pytest.mark.parametrize("action", ["disable", "destroy", "reconfigure"])
def test_remove_mapped_devdax(guest, ndctl, artifacts, expectations, action):
    """device-dax taken away under a live mapping: the mapping is revoked (SIGBUS)."""
    expect = expectations["remove"].lookup("devdax-2M", f"mapped-{action}", guest.kernel_release)
    with dax.devdax(ndctl, align="2M", map="mem") as ns:
        holder = holder_for(guest, f"devdax:{ns.device_path}")
        try:
            holder.start()
            obs = {"state_before": removal.namespace_state(guest)}
            obs.update(remove(guest, artifacts, action))
            obs["state_after"] = removal.namespace_state(guest)
            obs["touched"] = holder.touch()
            release(holder, obs)
        finally:
            holder.cleanup()
    judge(guest, ndctl, artifacts, expect, obs)


@pytest.mark.parametrize("fs", ["ext4", "xfs"])
def test_unbind_fsdax(guest, ndctl, artifacts, expectations, fs):
    """sysfs unbind of nd_pmem under a mounted, mapped fsdax filesystem, then umount."""
    expect = expectations["remove"].lookup(f"fsdax-{fs}", "mapped-unbind", guest.kernel_release)
    with dax.fsdax_mount(ndctl, fs) as mount:
        bound = removal.bound_pmem_device(guest, mount.namespace.blockdev)
        holder = holder_for(guest, f"file:{mount.path('buffer')}")
        try:
            holder.start()
            obs = {"bound": bound}
            obs.update(remove(guest, artifacts, "unbind", bound=bound))
            obs["touched"] = holder.touch()
            release(holder, obs)
        finally:
            holder.cleanup()
        # What each filesystem does once its device is gone: xfs shuts down, ext4 aborts
        # its journal; both must still unmount (inside the test: an oops here is its own).
        obs["fs_state"] = guest.run("dmesg | grep -E 'XFS|EXT4-fs' | tail -5",
                                    timeout_s=30).stdout
        obs["umount"] = removal.command_result(guest.run(f"umount {dax.MOUNTPOINT}",
                                                         timeout_s=ACTION_DEADLINE_S))
    judge(guest, ndctl, artifacts, expect, obs)


@pytest.mark.parametrize("method", ["rdma", "io_uring", "gup_test-hold"])
def test_remove_pinned_devdax(guest, ndctl, artifacts, expectations, pin_method_ready, method):
    """device-dax disabled while its pages are long-term pinned, then unpinned."""
    extra = pin_method_ready(method)
    expect = expectations["remove"].lookup("devdax-2M", f"pinned-{method}", guest.kernel_release)
    pin_expect = expectations["pin"].lookup("devdax-2M-mem", method.replace("-hold", "-longterm"),
                                            guest.kernel_release)
    with dax.devdax(ndctl, align="2M", map="mem") as ns:
        holder = holder_for(guest, f"devdax:{ns.device_path}", method, **extra)
        try:
            before = pinning.vmstat_pins(guest)
            first = holder.start()
            if holder.pinned is None:
                if first.get("supported") is False:
                    why = first.get("error") or (first.get("pin") or {}).get("errno")
                    pytest.skip(f"{method}: not supported by this kernel ({why}; "
                                "gup_test's PIN_LONGTERM_TEST_START needs >= 6.2)"
                                if method == "gup_test-hold" else
                                f"{method}: not supported by this kernel ({why})")
                delta = pinning.pin_delta(before, pinning.vmstat_pins(guest))
                checks = with_sources(pinning.pin_checks(first, pin_expect.values, delta),
                                      pin_expect.sources)
                artifacts.add_checks(checks)
                assert not failures(checks), format_failures(checks)
                pytest.skip(f"{method}: this kernel refuses the pin as pin.yaml expects "
                            f"({(first.get('pin') or {}).get('errno')}); nothing to remove "
                            "under")
            obs = {"state_before": removal.namespace_state(guest), "pinned": holder.pinned}
            obs.update(remove(guest, artifacts, "disable"))
            obs["state_after"] = removal.namespace_state(guest)
            obs["touched"] = holder.touch() if obs["command"]["ok"] else None
            release(holder, obs)
        finally:
            holder.cleanup()
    judge(guest, ndctl, artifacts, expect, obs)


@pytest.fixture
def delayed_peer(guest):
    """(path, seconds): the scratch disk behind dm-delay, every read to it held in flight
    for that long (DELAY_MS, scaled by the kernel's slowdown like every deadline)."""
    r = guest.run("modprobe dm_delay 2>/dev/null; dmsetup targets | grep -qw delay", 60)
    if r.status != 0:
        pytest.skip("this kernel has no dm-delay target (CONFIG_DM_DELAY)")
    name = DELAYED_PEER.rsplit("/", 1)[-1]
    delay_ms = int(DELAY_MS * guest.config.kernel.slowdown)
    # Reads wait delay_ms, writes none: nvh-odirect's preparation (writing the peer) is
    # quick and its transfer (the read into the DAX mapping) is what stays in flight. No
    # udev in the guest: dmsetup mknodes makes the /dev/mapper node.
    guest.succeed(f"dmsetup remove {name} 2>/dev/null; dmsetup create {name} --table "
                  f"\"0 $(blockdev --getsz {SCRATCH_DISK}) delay {SCRATCH_DISK} 0 {delay_ms} "
                  f"{SCRATCH_DISK} 0 0\" && dmsetup mknodes {name}", timeout_s=60)
    yield DELAYED_PEER, delay_ms / 1000
    with contextlib.suppress(ConnectionError):  # the test may have crashed the guest
        guest.run(f"dmsetup remove --force {name}", timeout_s=60)


@pytest.mark.parametrize("mode", ["devdax-2M", "fsdax-ext4"])
def test_remove_during_odirect(guest, ndctl, artifacts, expectations, delayed_peer, mode):
    """Removal while an O_DIRECT read into the DAX buffer is held in flight by dm-delay."""
    expect = expectations["remove"].lookup(mode, "inflight-disable", guest.kernel_release)
    peer, held_s = delayed_peer
    buffer_mode = next(m for m in dax.buffer_modes() if m.name == f"{mode}-mem")
    obs: dict = {}
    with dax.buffer_in_mode(ndctl, buffer_mode) as buffer, \
            checked_until_the_end(artifacts, expect, obs):
        io = GuestProcess(guest, odirect_command(buffer, peer, "read-untouched", SIZE),
                          tag="nvh-inflight").start()
        try:
            # The precondition of the whole test: the read is in flight before the removal
            # starts and still is when it returned. Otherwise nothing was tested: error.
            in_flight = io.wait_for_stack(removal.IN_FLIGHT_STACK, held_s)
            obs["state_before"] = removal.namespace_state(guest)
            obs.update(remove(guest, artifacts, "disable"))
            still_in_flight = not io.finished()
            obs["in_flight"] = {"before_removal": in_flight, "after_removal": still_in_flight}
            obs["state_after"] = removal.namespace_state(guest)
            finished = io.wait(held_s + RELEASE_DEADLINE_S)
            result = io.result() if finished else None
            obs["io"] = removal.inflight_result(result, io.command)
            if finished:
                artifacts.attach("workload.json", io.output())
            if not finished:
                obs["release"] = {"exited": False, "state": io.state(), "stacks": io.stacks()}
        finally:
            io.cleanup()
    removal.require_in_flight(obs, held_s)
    judge(guest, ndctl, artifacts, expect, obs)


