"""tracefs capture over SSH: enable events for the duration of a `with` block, then parse.

    with trace.capture(guest, ["fs_dax:dax_pmd_fault_done"]) as cap:
        guest.succeed("nvh-odirect ...")
    cap.counts()   # {"fs_dax:dax_pmd_fault_done": 32, "fs_dax:dax_pmd_fault_done:NOPAGE": 32}

On entry the buffer is cleared and sized, on exit tracing stops, the events are disabled
(also when the block raised) and /sys/kernel/tracing/trace is read once. The parser is pure
and unit-tested on lines captured in the guest (tests/data/trace/).

Trace line format (kernel/trace/trace_output.c, the default `nop` tracer):

    TASK-PID [CPU] FLAGS TIMESTAMP: EVENT: BODY

and the fs_dax fault events print (include/trace/events/fs_dax.h, v4.11+):

    dev MAJ:MIN ino 0xN shared|private FAULT_FLAGS address 0x.. [vm_start 0x.. vm_end 0x..]
        pgoff 0x.. [max_pgoff 0x..] RESULT

where RESULT is VM_FAULT_* names joined by "|" (NOPAGE, FALLBACK, SIGBUS, ...), empty for
the *_fault (start) events.
"""

from __future__ import annotations

import contextlib
import re
import shlex
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from .checks import Check
from .expectations import parse_count_rule
from .ssh import SucceedingRunner

TRACEFS = "/sys/kernel/tracing"
# debugfs (gup_test, dynamic debug's fallback control file), mounted where it is not yet.
MOUNT_DEBUGFS = "mountpoint -q /sys/kernel/debug || mount -t debugfs none /sys/kernel/debug"
PMD_DONE = "fs_dax:dax_pmd_fault_done"
PTE_DONE = "fs_dax:dax_pte_fault_done"
# What every fsdax test records: PMD fault outcomes, and PTE faults (the fallback path).
FSDAX_FAULT_EVENTS = (PMD_DONE, PTE_DONE)
LOST_KEY = "trace:lost_events"

_EVENT_RE = re.compile(r"^[A-Za-z0-9_]+:(?:\*|[A-Za-z0-9_]+)$")
_LINE_RE = re.compile(
    r"^\s*(?P<task>.+?)-(?P<pid>\d+)\s+"
    r"(?:\(\s*[-\d]+\)\s+)?"           # optional tgid column (options/record-tgid)
    r"\[(?P<cpu>\d+)\]\s+"
    r"(?:(?P<flags>[^\s\d][^\s]*)\s+)?"  # irqs-off/need-resched/... column, absent on old kernels
    r"(?P<ts>\d+\.\d+):\s+"
    r"(?P<event>[A-Za-z0-9_]+):\s?(?P<body>.*)$"
)
_DAX_FAULT_RE = re.compile(
    r"^dev (?P<dev>\d+:\d+) ino (?P<ino>\S+) (?P<sharing>shared|private) "
    r"(?P<fault_flags>\S*)\s*address (?P<address>\S+)"
    r"(?: vm_start (?P<vm_start>\S+) vm_end (?P<vm_end>\S+))?"
    r" pgoff (?P<pgoff>\S+)(?: max_pgoff (?P<max_pgoff>\S+))?"
    r"\s*(?P<result>\S*)\s*$"
)
_KV_RE = re.compile(r"(\w+)=(\S+)")
_HEADER_RE = re.compile(r"entries-in-buffer/entries-written:\s*(\d+)/(\d+)")


@dataclass(frozen=True)
class TraceRecord:
    task: str
    pid: int
    cpu: int
    timestamp: float
    event: str                 # "system:name" when the system is known, else "name"
    body: str
    fields: dict[str, str] = field(default_factory=dict)

    @property
    def result(self) -> str:
        """The VM_FAULT_* result string of a fault-done event ("" when none)."""
        return self.fields.get("result", "")

    @property
    def result_flags(self) -> list[str]:
        return [f for f in self.result.split("|") if f]


def validate_event(event: str) -> str:
    """'system:name' or 'system:*'; anything else (e.g. shell metacharacters) is refused."""
    if not _EVENT_RE.match(event):
        raise ValueError(f"bad trace event {event!r}: use system:name or system:*")
    return event


def event_enable_path(event: str, tracefs: str = TRACEFS) -> str:
    system, name = validate_event(event).split(":")
    return f"{tracefs}/events/{system}/enable" if name == "*" \
        else f"{tracefs}/events/{system}/{name}/enable"


def parse_fields(body: str) -> dict[str, str]:
    """Fields of an event body: the fs_dax fault layout, else key=value pairs."""
    m = _DAX_FAULT_RE.match(body)
    if m:
        return {k: v for k, v in m.groupdict().items() if v is not None}
    return dict(_KV_RE.findall(body))


def parse_trace(text: str, events: Iterable[str] = ()) -> list[TraceRecord]:
    """Records of a tracefs `trace` file; comment and unparseable lines are skipped.

    `events` ("system:name") lets bare names in the trace be reported with their system.
    """
    systems = {}
    for ev in events:
        system, _, name = ev.partition(":")
        if name and name != "*":
            systems[name] = system
    records = []
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        m = _LINE_RE.match(line)
        if not m:
            continue
        name = m.group("event")
        full = f"{systems[name]}:{name}" if name in systems else name
        body = m.group("body").rstrip()
        records.append(TraceRecord(
            task=m.group("task").strip(), pid=int(m.group("pid")), cpu=int(m.group("cpu")),
            timestamp=float(m.group("ts")), event=full, body=body, fields=parse_fields(body),
        ))
    return records


def lost_events(text: str) -> int:
    """Events the ring buffer overwrote (entries-written minus entries-in-buffer)."""
    m = _HEADER_RE.search(text)
    return max(0, int(m.group(2)) - int(m.group(1))) if m else 0


def count_events(records: Iterable[TraceRecord]) -> dict[str, int]:
    """Per event, and per event and result flag for events that carry a result:
    {"fs_dax:dax_pmd_fault_done": 32, "fs_dax:dax_pmd_fault_done:NOPAGE": 32}."""
    counts: dict[str, int] = {}
    for r in records:
        counts[r.event] = counts.get(r.event, 0) + 1
        for flag in r.result_flags:
            key = f"{r.event}:{flag}"
            counts[key] = counts.get(key, 0) + 1
    return counts


@dataclass
class TraceCapture:
    events: tuple[str, ...]
    text: str = ""
    records: list[TraceRecord] = field(default_factory=list)
    collected: bool = False

    @classmethod
    def from_text(cls, text: str, events: Sequence[str] = ()) -> TraceCapture:
        cap = cls(tuple(events))
        cap._set_text(text)
        return cap

    def _set_text(self, text: str) -> None:
        self.text = text
        self.records = parse_trace(text, self.events)
        self.collected = True

    @property
    def lost(self) -> int:
        return lost_events(self.text)

    def counts(self) -> dict[str, int]:
        """count_events() of the records, every enabled event present (0 when none fired),
        plus trace:lost_events when the buffer overflowed."""
        counts = {ev: 0 for ev in self.events if not ev.endswith(":*")}
        counts.update(count_events(self.records))
        if self.lost:
            counts[LOST_KEY] = self.lost
        return counts

    def excerpt(self, event: str, exclude_result: str | None = None, limit: int = 5) -> str:
        """The first `limit` lines of `event` (without those whose result has the flag
        `exclude_result`), as they appear in trace.txt."""
        lines = []
        for r in self.records:
            if r.event != event or (exclude_result and exclude_result in r.result_flags):
                continue
            lines.append(f"{r.task}-{r.pid} [{r.cpu:03d}] {r.timestamp:.6f}: "
                         f"{r.event.split(':')[-1]}: {r.body}")
            if len(lines) >= limit:
                break
        return "\n".join(lines)


@contextlib.contextmanager
def capture(guest: SucceedingRunner, events: Sequence[str], buffer_size_kb: int | None = 8192,
            tracefs: str = TRACEFS) -> Iterator[TraceCapture]:
    """Enable `events` (system:name or system:*) around the block; the capture is filled on
    exit. buffer_size_kb (per CPU) is raised for the block and restored afterwards, so a
    64 MiB run that falls back to PTE faults (16384 events) still fits."""
    events = tuple(validate_event(e) for e in events)
    cap = TraceCapture(events)
    enables = [event_enable_path(e, tracefs) for e in events]
    old_size = guest.succeed(f"cat {tracefs}/buffer_size_kb", timeout_s=30).split()[0]
    setup = [f"echo 0 > {tracefs}/tracing_on"]
    if buffer_size_kb:
        setup.append(f"echo {int(buffer_size_kb)} > {tracefs}/buffer_size_kb")
    setup.append(f"echo > {tracefs}/trace")
    setup += [f"echo 1 > {shlex.quote(p)}" for p in enables]
    setup.append(f"echo 1 > {tracefs}/tracing_on")
    stop = [f"echo 0 > {tracefs}/tracing_on"] + [f"echo 0 > {shlex.quote(p)}" for p in enables]
    try:
        guest.succeed(" && ".join(setup), timeout_s=60)
        yield cap
    finally:
        with contextlib.suppress(ConnectionError):
            guest.run("; ".join(stop), timeout_s=60)
            result = guest.run(f"cat {tracefs}/trace", timeout_s=120)
            if result.status == 0:
                cap._set_text(result.stdout)
            if old_size.isdigit() and buffer_size_kb:
                guest.run(f"echo {old_size} > {tracefs}/buffer_size_kb; echo > {tracefs}/trace",
                          timeout_s=60)


def pmd_checks(counts: dict[str, int], expect: dict[str, Any]) -> list[Check]:
    """expect keys pmd_nopage / pmd_fallback: count rules (1, ">=32", 0) on the
    fs_dax:dax_pmd_fault_done events with result NOPAGE / FALLBACK; one check each."""
    out = []
    pte = counts.get(PTE_DONE)
    lost = counts.get(LOST_KEY, 0)
    context = [f"{counts.get(PMD_DONE, 0)} PMD faults: "
               f"NOPAGE {counts.get(PMD_DONE + ':NOPAGE', 0)}, "
               f"FALLBACK {counts.get(PMD_DONE + ':FALLBACK', 0)}"]
    if pte is not None:
        context.append(f"{pte} PTE faults")
    if lost:
        context.append(f"{lost} events lost to a full trace buffer")
    for key, flag in (("pmd_nopage", "NOPAGE"), ("pmd_fallback", "FALLBACK")):
        if key not in expect:
            continue
        rule = parse_count_rule(expect[key])
        n = counts.get(f"{PMD_DONE}:{flag}", 0)
        out.append(Check(f"{PMD_DONE} with result {flag}", rule.text,
                         f"{n} ({'; '.join(context)})", rule.holds(n), key=key))
    return out
