"""Taking a pmem namespace away under its users (workload family 3) and judging the result.

The seed series "revokes usages of ZONE_DEVICE pages when the driver disables the pmem
device". QEMU cannot hot-unplug an nvdimm, so removal happens inside the guest: ndctl
disable / destroy / reconfigure, disable-region, or a sysfs unbind of the pmem driver.
Each action runs under a deadline: a removal that hangs is a finding, with the stacks of the
blocked tasks, never a hung harness. The judging functions are pure.
"""

from __future__ import annotations

import json
import re
import time
from typing import TYPE_CHECKING, Any

from . import dax
from .checks import Check, failed, format_failures, result, unobserved
from .dax import reset_namespace
from .errors import HarnessError, PreconditionNotMet
from .expectations import Vocabulary, v_bool, v_one_of, v_result
from .odirect import odirect_checks, odirect_command, run_odirect
from .qemu import SCRATCH_DISK_IN_GUEST
from .ssh import GuestCommandTimeout
from .workload import WorkloadOutputError, parse_output

if TYPE_CHECKING:
    from .frame import TestArtifacts
    from .ndctl import Ndctl
    from .ssh import CommandResult, Runner

NAMESPACE = "namespace0.0"
REGION = "region0"

# What each action runs in the guest. {ns} is the namespace, {region} its region and, for
# unbind, {bound} the nd device the pmem driver is bound to (the pfn device in fsdax mode).
ACTIONS = {
    "disable": "ndctl disable-namespace {ns}",
    "destroy": "ndctl destroy-namespace -f {ns}",
    "reconfigure": "ndctl create-namespace -f -e {ns} -m raw",
    "disable-region": "ndctl disable-region {region}",
    "unbind": "echo {bound} > /sys/bus/nd/drivers/nd_pmem/unbind",
}

# Keys of testcases/expectations/remove.yaml, judged by removal_checks().
VOCABULARY: Vocabulary = {
    # the action's own result: ok, or refused with the errno ndctl returns as its status
    "command": v_result("command", "ok"),
    # the namespace (mode, enabled) is as before the action
    "namespace_unchanged": v_bool("namespace_unchanged"),
    # a process that had the range mapped touches every page afterwards
    "mapping_after": v_one_of("mapping_after", "intact", "sigbus"),
    # (a SIGSEGV, or a holder that does not answer, matches neither: always a failure)
    # the same process reading every page (before it writes): a mapping that was zapped
    # faults (sigbus), one that was only write-protected still reads (readable); old_data:
    # every page still returns the bytes stored before the action (implies readable)
    "read_after": v_one_of("read_after", "readable", "old_data", "sigbus"),
    # the bytes the file or device held before the action are still there
    "data_intact": v_bool("data_intact"),
    # in-flight O_DIRECT into the buffer: completes (full) or fails with an errno
    "io": v_one_of("io", "full", "full_or_error"),
    # unmounting the filesystem after its device went away (unbind)
    "umount": v_result("umount", "ok"),
}


def action_command(action: str, bound: str = "", ns: str = NAMESPACE,
                   region: str = REGION) -> str:
    return ACTIONS[action].format(ns=ns, region=region, bound=bound)


_ERRNO_BY_NUMBER = {1: "EPERM", 2: "ENOENT", 5: "EIO", 6: "ENXIO", 12: "ENOMEM", 16: "EBUSY",
                    19: "ENODEV", 22: "EINVAL", 95: "EOPNOTSUPP", 110: "ETIMEDOUT"}


def command_result(result: CommandResult) -> dict[str, Any]:
    """ok, or the errno behind a failure: ndctl exits with the negative errno as its status
    (EBUSY -> 240); `echo > sysfs` fails with the message of the errno."""
    if result.status == 0:
        return {"ok": True, "status": 0}
    errno = None
    if 128 < result.status < 256:
        errno = _ERRNO_BY_NUMBER.get(256 - result.status)
    if errno is None and "Device or resource busy" in result.stderr:
        errno = "EBUSY"
    return {"ok": False, "status": result.status, "errno": errno,
            "stderr": result.stderr.strip()[-500:]}


def namespace_state(guest: Runner, ns: str = NAMESPACE) -> str:
    """'fsdax enabled', 'devdax disabled', 'raw enabled', 'absent' ... for before/after."""
    r = guest.run(f"ndctl list -N -i -n {ns}", timeout_s=60)
    text = r.stdout.strip()
    if r.status != 0 or not text:
        return "absent"
    data = json.loads(text)
    item = data[0] if isinstance(data, list) else data
    return f"{item.get('mode', '?')} {item.get('state', 'enabled')}"


def bound_pmem_device(guest: Runner, blockdev: str) -> str:
    """The nd device nd_pmem is bound to for /dev/BLOCKDEV (pfnX.Y in fsdax mode)."""
    out = guest.run(f"basename $(readlink -f /sys/block/{blockdev}/device)", timeout_s=30)
    name = out.stdout.strip()
    if out.status != 0 or not re.fullmatch(r"(namespace|pfn|dax|btt)\d+\.\d+", name):
        raise AssertionError(f"cannot tell which nd device backs {blockdev}: {out.describe()}")
    return name


def describe_removal(obs: dict[str, Any]) -> str:
    c = obs.get("command") or {}
    parts = ["action " + ("ok" if c.get("ok") else
                          f"refused {c.get('errno') or 'status ' + str(c.get('status'))}")
             + f" in {obs.get('action_s', '?')}s"]
    if "state_before" in obs:
        parts.append(f"namespace {obs['state_before']} -> {obs.get('state_after')}")
    touched = obs.get("touched")
    if touched is not None:
        signal = "SIGBUS" if touched.get("sigbus") else touched.get("signal")
        if not signal and not touched.get("pass"):
            parts.append("mapping still readable and writable")
        elif touched.get("pass") == "write":
            parts.append(f"mapping: reads ok{_as_written(touched)}, "
                         f"{signal or 'a fault'} {touched.get('si_code')} on write")
        else:
            parts.append(f"mapping: {signal or 'a fault'} {touched.get('si_code')}"
                         + (" on read" if touched.get("pass") == "read" else ""))
    elif "touched" in obs:
        parts.append("mapping: the holder did not answer")
    if "data_intact" in obs:
        parts.append("data intact" if obs["data_intact"] else "data changed")
    if obs.get("io") is not None:
        parts.append(f"in-flight I/O: {obs['io']}")
    return ", ".join(parts)


def _as_written(touched: dict[str, Any]) -> str:
    n = touched.get("read_pages_as_written")
    return "" if n is None else f" ({n} of {touched.get('pages')} pages as written before)"


def touch_outcome(touched: dict[str, Any] | None) -> str:
    """What the holder's touch of every page (read, then write) ended with: intact (no
    fault), sigbus, sigsegv or another signal's name in lower case, or no answer."""
    if touched is None:
        return "no answer"
    if touched.get("sigbus"):
        return "sigbus"
    signal = touched.get("signal")
    if signal:
        return str(signal).lower()
    if touched.get("pass"):
        return "a fault (no signal reported)"
    return "intact"


def read_outcome(touched: dict[str, Any] | None) -> str:
    """What the holder's read pass saw: sigbus, sigsegv, old_data, readable (or why it
    cannot tell)."""
    if touched is None:
        return "no answer"
    if "read_sigbus" not in touched:
        return "no read pass (older nvh-pin)"
    if touched["read_sigbus"]:
        return "sigbus"
    if touched.get("pass") == "read":
        return str(touched.get("signal") or "a fault").lower()  # faulted, but not SIGBUS
    pages = touched.get("pages")
    if pages and touched.get("read_pages_as_written") == pages:
        return "old_data"
    return "readable"


_MAPPING_TEXT = {"sigbus": "SIGBUS on the next touch (a write to every page)",
                 "intact": "still mapped, no SIGBUS"}
_READ_TEXT = {"sigbus": "SIGBUS on the first read (the mapping is gone)",
              "readable": "every page still reads",
              "old_data": "every page still reads the bytes stored before"}


def _status_text(result: dict[str, Any], refused: str = "") -> str:
    """'succeeded', or the status and errno of a command_result()."""
    if result.get("ok"):
        return "succeeded"
    return f"{refused}status {result.get('status')} {result.get('errno') or ''}".rstrip()


def removal_checks(obs: dict[str, Any], expect: dict[str, Any]) -> list[Check]:
    """Every comparison of a removal observation with `expect` (remove.yaml), held or not."""
    out: list[Check] = []
    c = obs.get("command") or {}
    if obs.get("hung"):
        out.append(failed("removal", "finishes within the deadline",
                          f"still running after {obs.get('action_s')}s"))
    # A value the test never saw (the guest died during the action) is not compared: the
    # key is then reported as not observed (unobserved()).
    if "command" in expect and "command" in obs:
        out.append(result("removal", expect["command"], "succeeds", bool(c.get("ok")),
                          c.get("errno"), _status_text(c, "refused: "), key="command"))
    if "namespace_unchanged" in expect and "state_before" in obs \
            and obs.get("state_after") is not None:
        same = obs["state_before"] == obs.get("state_after")
        out.append(Check("namespace after the removal",
                         "unchanged" if expect["namespace_unchanged"] else "changed",
                         f"{obs['state_before']} -> {obs.get('state_after')}",
                         same == expect["namespace_unchanged"], key="namespace_unchanged"))
    if "mapping_after" in expect and "touched" in obs:
        got = touch_outcome(obs["touched"])
        out.append(Check("the old mapping", _MAPPING_TEXT[expect["mapping_after"]], got,
                         got == expect["mapping_after"], key="mapping_after"))
    if "read_after" in expect and "touched" in obs:
        got = read_outcome(obs["touched"])
        want = expect["read_after"]
        out.append(Check("reading the old mapping", _READ_TEXT[want], got,
                         got == want or (want == "readable" and got == "old_data"),
                         key="read_after"))
    if "data_intact" in expect and "data_intact" in obs:
        out.append(Check("data", "unchanged" if expect["data_intact"] else "changed",
                         "unchanged" if obs["data_intact"] else "changed",
                         obs["data_intact"] == expect["data_intact"], key="data_intact"))
    if "io" in expect and "io" in obs:
        io = obs["io"] or {}
        if io.get("corrupt"):
            out.append(failed("in-flight O_DIRECT", "no corruption of reported bytes",
                              io.get("detail", "corrupt"), key="io"))
        elif expect["io"] == "full":
            out.append(Check("in-flight O_DIRECT", "completes in full",
                             io.get("detail", "failed"), bool(io.get("full")), key="io"))
        else:
            out.append(Check("in-flight O_DIRECT", "completes in full or fails, never corrupt",
                             io.get("detail", "?"), True, key="io"))
    if "umount" in expect and "umount" in obs:
        u = obs["umount"] or {}
        out.append(result("umount", expect["umount"], "succeeds", bool(u.get("ok")),
                          u.get("errno"), _status_text(u)
                          + (f": {u['stderr'][-200:]}" if u.get("stderr") else ""),
                          key="umount"))
    rel = obs.get("release")
    if rel is not None:
        # Always, without a key: the mapping or pin can be let go afterwards.
        out.append(Check("releasing the mapping/pin afterwards",
                         f"done within {rel.get('deadline_s', '?')}s",
                         "done" if rel.get("exited") else
                         f"the process is stuck in state {rel.get('state') or '?'}:\n"
                         f"{rel.get('stacks', '')[:2000]}", bool(rel.get("exited"))))
    return out + unobserved(expect, out, "remove.yaml")


# Where a thread of nvh-odirect waits while its O_DIRECT read is in flight (block/fops.c).
IN_FLIGHT_STACK = "blkdev_direct_IO"


def require_in_flight(obs: dict[str, Any], held_s: float) -> None:
    """Raise PreconditionNotMet (the test is `error`, nothing was tested) unless the
    O_DIRECT was seen in flight before the removal and still was when it returned."""
    seen = obs.get("in_flight") or {}
    if not seen.get("before_removal"):
        raise PreconditionNotMet(
            "precondition not met: the O_DIRECT read was not seen in flight (no thread in "
            f"{IN_FLIGHT_STACK} within {held_s:.0f}s) before the removal")
    if not seen.get("after_removal"):
        raise PreconditionNotMet(
            "precondition not met: the O_DIRECT read had finished when the removal returned "
            f"(the removal took {obs.get('action_s')}s, dm-delay holds the read "
            f"{held_s:.0f}s)")


def inflight_result(result: CommandResult | None, command: str) -> dict[str, Any]:
    """The in-flight O_DIRECT's outcome for removal_checks' `io` (None: never finished).
    Only bytes the kernel reported as moved count: a full transfer whose bytes differ,
    read without SIGBUS, is corruption; a SIGBUS on the compare means the mapping was
    revoked."""
    if result is None:
        return {"full": False, "detail": "the O_DIRECT never finished"}
    try:
        data = parse_output(result.stdout, command)
    except WorkloadOutputError:
        return {"full": False, "detail": f"nvh-odirect exit {result.status}: "
                                         f"{result.stderr.strip()[-300:]}"}
    t = data.get("transfer") or {}
    c = data.get("compare") or {}
    full = t.get("ret") == data.get("size")
    corrupt = full and c.get("mismatch_offset", -1) not in (-1, None) \
        and not data.get("sigbus_count")
    detail = (f"transfer ret {t.get('ret')} {t.get('errno_name') or ''}".strip()
              + (f", compare mismatch at {c.get('mismatch_offset')}" if corrupt else "")
              + (f", SIGBUS x{data['sigbus_count']}" if data.get("sigbus_count") else ""))
    return {"full": full, "corrupt": corrupt, "detail": detail}


def restore_namespace(ndctl: Ndctl, ns: str = NAMESPACE) -> None:
    """Whatever the removal left (a disabled region or namespace, a destroyed namespace,
    an unbound driver), bring `ns` back in raw mode over the whole region."""
    reset_namespace(ndctl, ns, check=True)


# ------------------------------------------------------------------ steps of a removal test

def act(guest: Runner, artifacts: TestArtifacts, command: str, deadline_s: float) -> dict[str, Any]:
    """Run a removal (or truncation) under its deadline: {"command_line", "command":
    command_result(), "action_s"}. A hang dumps the blocked tasks' stacks into the test's
    dmesg and raises GuestCommandTimeout: the test is `timeout`, the guest restarted."""
    started = time.monotonic()
    try:
        r = guest.run(command, timeout_s=deadline_s)
    except GuestCommandTimeout:
        guest.dump_blocked_tasks()
        artifacts.attach("removal.txt", f"$ {command}\nstill running after {deadline_s:.0f}s: "
                                        "hung (see dmesg.txt)\n")
        raise
    return {"command_line": command, "command": command_result(r),
            "action_s": round(time.monotonic() - started, 1)}


NAMESPACE_USABLE = "namespace usable again"


def owe_namespace_check(guest: Runner, ndctl: Ndctl, artifacts: TestArtifacts) -> None:
    """A removal test owes namespace_usable(): if the test crashes or wedges the guest
    first, the frame runs it on the restarted guest (TestArtifacts.after_restart)."""
    artifacts.after_restart = lambda: [namespace_usable(guest, ndctl)]


def namespace_check_now(guest: Runner, ndctl: Ndctl, artifacts: TestArtifacts) -> Check:
    """The owed check, made by the test itself: nothing left for a restarted guest."""
    artifacts.after_restart = None
    return namespace_usable(guest, ndctl)


def namespace_usable(guest: Runner, ndctl: Ndctl) -> Check:
    """After any removal: the namespace can be recreated and moves data again (a guest the
    removal crashed is checked after its restart: TestArtifacts.after_restart)."""
    expected = "recreated as devdax 2M, a 64 KiB O_DIRECT round trip byte-exact"
    if not guest.is_alive():
        return Check(NAMESPACE_USABLE, expected, "not checked: the guest is gone", False)
    try:
        restore_namespace(ndctl)
        with dax.devdax(ndctl, align="2M", map="mem") as ns:
            observed = run_odirect(guest, odirect_command(f"devdax:{ns.device_path}",
                                                          SCRATCH_DISK_IN_GUEST,
                                                          "read-untouched", 64 * 1024))
    except (AssertionError, HarnessError, GuestCommandTimeout) as e:
        return Check(NAMESPACE_USABLE, expected, f"{type(e).__name__}: {str(e)[:500]}", False)
    problems = format_failures(odirect_checks(observed, {"transfer": "full",
                                                         "compare": "exact"}))
    return Check(NAMESPACE_USABLE, expected, problems or "recreated, byte-exact", not problems)
