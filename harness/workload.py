"""Judge what an in-guest workload observed against what the kernel is expected to do.

The workloads (guest-images/workloads/) only observe and print JSON; whether an observation
is right is decided here, against an expectation from a table in testcases/ that names its
kernel source. Pure functions, so a corrupted byte, a wrong errno or a missing event are
shown to be caught by unit tests without a guest.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Mismatch:
    what: str
    expected: str
    observed: str

    def __str__(self) -> str:
        return f"{self.what}: expected {self.expected}, observed {self.observed}"


class WorkloadOutputError(AssertionError):
    pass


def parse_output(stdout: str, command: str) -> dict[str, Any]:
    try:
        data = json.loads(stdout)
    except json.JSONDecodeError as e:
        raise WorkloadOutputError(f"{command}: output is not JSON ({e}):\n{stdout[:2000]}") \
            from None
    if not isinstance(data, dict):
        raise WorkloadOutputError(f"{command}: expected a JSON object, got {stdout[:200]}")
    return data


def odirect_command(buffer: str, peer: str, case: str, size: int, offset: int = 0,
                    peer_offset: int = 0, **extra: int | str) -> str:
    args = ["nvh-odirect", "--buffer", buffer, "--peer", peer, "--case", case,
            "--size", str(size), "--offset", str(offset), "--peer-offset", str(peer_offset)]
    for key, value in extra.items():
        args += [f"--{key.replace('_', '-')}", str(value)]
    return shlex.join(args)


def _transfer_text(t: dict[str, Any] | None) -> str:
    if not t:
        return "no transfer"
    if t.get("ret", -1) < 0:
        return f"ret -1 errno {t.get('errno_name')}"
    return f"ret {t.get('ret')}"


def check_odirect(observed: dict[str, Any], expect: dict[str, Any]) -> list[Mismatch]:
    """Every way `observed` (nvh-odirect JSON) differs from `expect`; empty means it matched.

    expect keys: transfer ("full" or {"errno": NAME}), compare / file_compare ("exact"),
    content_changed (bool), child_saw_parent_data (bool), reader_sigbus (int).
    """
    out: list[Mismatch] = []
    if not observed.get("completed"):
        out.append(Mismatch("workload", "all steps completed",
                            f"stopped: {observed.get('error') or 'unknown error'}"))
    size = observed.get("size")
    transfer = observed.get("transfer")
    want = expect.get("transfer")
    got = (transfer or {}).get("ret"), (transfer or {}).get("errno_name")
    if want == "full" and got[0] != size:
        out.append(Mismatch("O_DIRECT transfer", f"ret {size} (all bytes)",
                            _transfer_text(transfer)))
    elif isinstance(want, dict) and got != (-1, want["errno"]):
        out.append(Mismatch("O_DIRECT transfer", f"ret -1 errno {want['errno']}",
                            _transfer_text(transfer)))
    for key in ("compare", "file_compare"):
        if expect.get(key) == "exact":
            cmp = observed.get(key)
            if not cmp:
                out.append(Mismatch(key, "a byte comparison", "none was made"))
            elif cmp.get("mismatch_offset", -1) != -1:
                out.append(Mismatch(
                    key, f"{cmp.get('bytes')} bytes identical to {cmp.get('expected')}",
                    f"{cmp.get('mismatch_count')} bytes differ, first at offset "
                    f"{cmp.get('mismatch_offset')} (crc {cmp.get('actual_crc32')} vs "
                    f"{cmp.get('expected_crc32')})"))
    if "content_changed" in expect:
        ro = observed.get("readonly") or {}
        if ro.get("content_changed") != expect["content_changed"]:
            out.append(Mismatch("content under the read-only mapping",
                                "changed" if expect["content_changed"] else "unchanged",
                                "changed" if ro.get("content_changed") else "unchanged"))
    if "child_saw_parent_data" in expect:
        child = observed.get("child") or {}
        if bool(child.get("saw_parent_data")) != expect["child_saw_parent_data"]:
            out.append(Mismatch("child after fork", "sees the parent's data",
                                f"saw_parent_data={child.get('saw_parent_data')}, "
                                f"exit {child.get('exit_status')} signal {child.get('signal')}"))
    if "reader_sigbus" in expect:
        reader = (observed.get("collision") or {}).get("reader") or {}
        if reader.get("sigbus", 0) != expect["reader_sigbus"]:
            out.append(Mismatch("SIGBUS in the O_DIRECT reader", str(expect["reader_sigbus"]),
                                str(reader.get("sigbus"))))
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
