"""The O_DIRECT family (workload family 1): a DAX mapping as the buffer of direct I/O.

nvh-odirect (guest-images/workloads/nvh-odirect.c) moves bytes between a DAX mapping and a
non-DAX peer and prints what it saw; this module builds its command lines, runs it in the
guest (with a watchdog for the truncate/punch-hole collision cases), and judges observations
against testcases/expectations/odirect.yaml, whose keys are VOCABULARY. The judging and
parsing functions are pure.
"""

from __future__ import annotations

import re
import shlex
import time
from typing import TYPE_CHECKING, Any

from .checks import Check, completed, failed, result
from .expectations import Vocabulary, v_bool, v_exact, v_result, v_rule
from .guest_process import GuestProcess
from .kmsg import Finding
from .workload import debug_hooks_prefix, run_workload, workload_result

if TYPE_CHECKING:
    from .ssh import Runner


def _v_count(v: Any) -> None:
    if isinstance(v, bool) or not isinstance(v, int) or v < 0:
        raise ValueError(f"reader_sigbus must be a count (0, 1, ...), not {v!r}")


def _v_stall(v: Any) -> None:
    # The only value: the kernel's promise. A kernel that stalls anyway has a bug, recorded
    # in known_failures.yaml with the `stall` finding of stall_finding(), never tolerated.
    if v != "forbidden":
        raise ValueError(f"mutator_stall must be forbidden, not {v!r}")


# Keys of testcases/expectations/odirect.yaml, judged by odirect_checks / stall_checks,
# harness.trace.pmd_checks and harness.devdax_faults.fault_checks.
VOCABULARY: Vocabulary = {
    "transfer": v_result("transfer", "full"),
    "compare": v_exact("compare"),
    "file_compare": v_exact("file_compare"),
    "content_changed": v_bool("content_changed"),
    "child_saw_parent_data": v_bool("child_saw_parent_data"),
    "reader_sigbus": _v_count,
    "pmd_nopage": v_rule("pmd_nopage"),
    "pmd_fallback": v_rule("pmd_fallback"),
    "mutator_stall": _v_stall,
    # harness.devdax_faults.fault_checks: dev_dax_huge_fault() calls by size, for the
    # workload's mapping
    "devdax_pmd_faults": v_rule("devdax_pmd_faults"),
    "devdax_pte_faults": v_rule("devdax_pte_faults"),
}


def odirect_command(buffer: str, peer: str, case: str, size: int, offset: int = 0,
                    peer_offset: int = 0, **extra: int | str) -> str:
    args = [*debug_hooks_prefix(), "nvh-odirect", "--buffer", buffer, "--peer", peer,
            "--case", case, "--size", str(size), "--offset", str(offset),
            "--peer-offset", str(peer_offset)]
    for key, value in extra.items():
        args += [f"--{key.replace('_', '-')}", str(value)]
    return shlex.join(args)


def _transfer_text(t: dict[str, Any] | None) -> str:
    if not t:
        return "no transfer"
    if t.get("ret", -1) < 0:
        return f"ret -1 errno {t.get('errno_name')}"
    return f"ret {t.get('ret')}"


def odirect_checks(observed: dict[str, Any], expect: dict[str, Any]) -> list[Check]:
    """Every comparison of `observed` (nvh-odirect JSON) with `expect`, held or not.

    expect keys: transfer ("full" or {"errno": NAME}), compare / file_compare ("exact"),
    content_changed (bool), child_saw_parent_data (bool), reader_sigbus (int).
    """
    out: list[Check] = [completed(observed)]
    transfer = observed.get("transfer") or {}
    if "transfer" in expect:
        ret = transfer.get("ret")
        out.append(result("O_DIRECT transfer", expect["transfer"],
                          f"ret {observed.get('size')} (all bytes)",
                          ret is not None and ret == observed.get("size"),
                          transfer.get("errno_name") if ret == -1 else None,
                          _transfer_text(observed.get("transfer")), key="transfer",
                          refusal="ret -1 errno {errno}"))
    for key in ("compare", "file_compare"):
        if expect.get(key) == "exact":
            cmp = observed.get(key)
            if not cmp:
                out.append(failed(key, "a byte comparison", "none was made", key=key))
                continue
            expected = f"{cmp.get('bytes')} bytes identical to {cmp.get('expected')}"
            if cmp.get("mismatch_offset", -1) != -1:
                out.append(failed(
                    key, expected,
                    f"{cmp.get('mismatch_count')} bytes differ, first at offset "
                    f"{cmp.get('mismatch_offset')} (crc {cmp.get('actual_crc32')} vs "
                    f"{cmp.get('expected_crc32')})", key=key))
            else:
                out.append(Check(key, expected, "identical", True, key=key))
    if "content_changed" in expect:
        ro = observed.get("readonly") or {}
        changed = ro.get("content_changed")
        out.append(Check("content under the read-only mapping",
                         "changed" if expect["content_changed"] else "unchanged",
                         "changed" if changed else "unchanged",
                         changed == expect["content_changed"], key="content_changed"))
    if "child_saw_parent_data" in expect:
        child = observed.get("child") or {}
        saw = bool(child.get("saw_parent_data"))
        out.append(Check("child after fork",
                         "sees the parent's data" if expect["child_saw_parent_data"]
                         else "does not see the parent's data",
                         f"saw_parent_data={child.get('saw_parent_data')}, "
                         f"exit {child.get('exit_status')} signal {child.get('signal')}",
                         saw == expect["child_saw_parent_data"], key="child_saw_parent_data"))
    if "reader_sigbus" in expect:
        reader = (observed.get("collision") or {}).get("reader") or {}
        out.append(Check("SIGBUS in the O_DIRECT reader", str(expect["reader_sigbus"]),
                         str(reader.get("sigbus")),
                         reader.get("sigbus", 0) == expect["reader_sigbus"],
                         key="reader_sigbus"))
    return out


def describe_observation(observed: dict[str, Any]) -> str:
    """One line for the report: what the workload saw."""
    parts = [f"{observed.get('case')} on {observed.get('buffer_kind')}",
             _transfer_text(observed.get("transfer"))]
    cmp = observed.get("compare")
    if cmp:
        off = cmp.get("mismatch_offset", -1)
        parts.append("byte-exact" if off == -1 else f"first mismatch at {off}")
    ro = observed.get("readonly")
    if ro:
        parts.append("content " + ("changed" if ro.get("content_changed") else "unchanged"))
    if observed.get("error"):
        parts.append(f"error: {observed['error']}")
    return ", ".join(parts)


# --------------------------------------------------------------------------------------------
# Running nvh-odirect in the guest, and judging what odirect_checks() does not cover.

def run_odirect(guest: Runner, command: str, timeout_s: float = 300,
                stall_after_s: float | None = None, nudge_wait_s: float = 30,
                poll_s: float = 0.5) -> dict[str, Any]:
    """Run an nvh-odirect command in the guest and return its JSON observation.

    Exit 0 and 1 both carry the JSON (1: a step could not run); anything else raises
    WorkloadOutputError with the whole command result.

    With `stall_after_s`, the program runs in the background and is watched: if it has not
    finished after that many seconds, the kernel stacks of its threads are recorded, it is
    sent SIGSTOP+SIGCONT (which makes a thread sleeping interruptibly in the kernel re-check
    its wait condition), and given `nudge_wait_s` more before SIGKILL. What happened is
    added to the observation as "watchdog" (see stall_checks()).
    """
    if stall_after_s is None:
        return run_workload(guest, command, timeout_s)
    return _run_watched(guest, command, timeout_s, stall_after_s, nudge_wait_s, poll_s)


def _run_watched(guest: Runner, command: str, timeout_s: float, stall_after_s: float,
                 nudge_wait_s: float, poll_s: float) -> dict[str, Any]:
    proc = GuestProcess(guest, command, tag="nvh-odirect", poll_s=poll_s).start()
    watchdog: dict[str, Any] = {"stalled": False, "stall_after_s": stall_after_s}
    try:
        if not proc.wait(min(stall_after_s, timeout_s)):
            dump = proc.stacks()
            watchdog.update(stalled=True, stacks=dump, stalled_in=stalled_functions(dump),
                            nudge="SIGSTOP+SIGCONT")
            nudged = time.monotonic()
            guest.run(f"pid=$(cat {proc.dir}/pid); kill -STOP $pid; sleep 0.2; kill -CONT $pid",
                      timeout_s=30)
            recovered = proc.wait(min(nudge_wait_s, max(1.0, timeout_s - proc.elapsed_s())))
            watchdog["recovered"] = recovered
            watchdog["recovered_after_s"] = round(time.monotonic() - nudged, 1) \
                if recovered else None
            if not recovered:
                watchdog["stacks_after_nudge"] = proc.stacks()
                proc.signal("KILL")
                proc.wait(min(10.0, nudge_wait_s))
        result = proc.result()
    finally:
        proc.cleanup()
    watchdog["elapsed_s"] = round(proc.elapsed_s(), 1)
    if watchdog["stalled"] and not watchdog["recovered"]:
        # Killed: there is no JSON; report the hang itself as the observation.
        return {"tool": "nvh-odirect", "completed": False, "watchdog": watchdog,
                "error": "hung: still running after SIGSTOP+SIGCONT, killed"
                         f" (threads waiting in {', '.join(watchdog['stalled_in']) or '?'})",
                "transfer": None, "compare": None}
    observed = workload_result(result, command)
    observed["watchdog"] = watchdog
    return observed


_FRAME_RE = re.compile(r"^\[<[0-9a-f]+>\] ([A-Za-z0-9_.]+)\+0x", re.MULTILINE)
_WCHAN_RE = re.compile(r" wchan (\S+)")


def stalled_functions(stacks: str) -> list[str]:
    """The innermost kernel function of every thread in a /proc/PID/task/*/stack dump
    (futex waits of idle threads excluded), e.g. ["ext4_break_layouts"]."""
    out: list[str] = []
    for block in stacks.split("== thread ")[1:]:
        frames = _FRAME_RE.findall(block)
        name = frames[0] if frames else (_WCHAN_RE.findall(block) or ["?"])[0]
        if name.startswith("futex_") or name in ("0", "?"):
            continue
        if name not in out:
            out.append(name)
    return out


def stall_checks(observed: dict[str, Any], expect: dict[str, Any]) -> list[Check]:
    """The watchdog of run_odirect() (expect mutator_stall: forbidden): the mutator must
    proceed by itself; a stall that a SIGSTOP+SIGCONT resolved fails this check, and
    stall_finding() names it for known_failures.yaml. Returns the one check made (none when
    the program was not watched)."""
    wd = observed.get("watchdog")
    if not wd:
        return []
    name = "truncate/punch-hole vs in-flight O_DIRECT"
    promise = "the mutator proceeds once the I/O released the pages"
    after = wd.get("stall_after_s")
    if not wd.get("stalled"):
        return [Check(name, promise, f"finished within {after}s", True, key="mutator_stall")]
    where = ", ".join(wd.get("stalled_in") or []) or "unknown kernel functions"
    if not wd.get("recovered"):
        return [failed("workload", "finishes", f"hung in {where}: still running after "
                       f"{after}s and a SIGSTOP+SIGCONT nudge, killed", key="mutator_stall")]
    return [failed(name, promise, f"stalled in {where} for more than {after}s until "
                   f"SIGSTOP+SIGCONT (then finished in {wd.get('recovered_after_s')}s)",
                   key="mutator_stall")]


def stall_finding(observed: dict[str, Any]) -> Finding | None:
    """A `stall` finding for a workload whose threads slept in the kernel past the watchdog
    and needed a signal: titled by the function they slept in, the way kernel findings are
    titled ("stall in ext4_break_layouts"), so that known_failures.yaml can record it and a
    kernel that wakes the waiter turns the test `fixed`. None when nothing stalled."""
    wd = observed.get("watchdog") or {}
    if not wd.get("stalled"):
        return None
    where = (wd.get("stalled_in") or ["unknown function"])[0]
    how = "woke after SIGSTOP+SIGCONT" if wd.get("recovered") else "killed: never woke"
    return Finding("stall", f"stall in {where}", 0,
                   f"task of the workload asleep in {where} for more than "
                   f"{wd.get('stall_after_s')}s; {how}\n{wd.get('stacks', '')}")


def describe_details(observed: dict[str, Any]) -> str:
    """What describe_observation() leaves out: fork child, collision counts, the watchdog."""
    parts = []
    child = observed.get("child")
    if child:
        parts.append(f"child saw parent data {str(bool(child.get('saw_parent_data'))).lower()}"
                     f", child transfer ret {child.get('ret')}")
    fc = observed.get("file_compare")
    if fc:
        off = fc.get("mismatch_offset", -1)
        parts.append("fd view byte-exact" if off == -1 else f"fd view differs at {off}")
    coll = observed.get("collision")
    if coll:
        r, m = coll.get("reader") or {}, coll.get("mutator") or {}
        errors = ", ".join(f"{k} {v}" for k, v in (r.get("errors") or {}).items())
        parts.append(f"reader {r.get('iterations')} reads ({r.get('ok')} full"
                     f"{', ' + errors if errors else ''}), SIGBUS {r.get('sigbus')}; "
                     f"mutator {m.get('iterations')} punch/truncate rounds")
    wd = observed.get("watchdog") or {}
    if wd.get("stalled"):
        where = ", ".join(wd.get("stalled_in") or []) or "?"
        if wd.get("recovered"):
            parts.append(f"stalled in {where} > {wd.get('stall_after_s')}s, finished "
                         f"{wd.get('recovered_after_s')}s after SIGSTOP+SIGCONT")
        else:
            parts.append(f"hung in {where}, killed")
    return "; ".join(parts)

