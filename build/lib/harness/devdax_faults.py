"""Which page-table level device-dax faults map: an observable for "devdax-2M maps PMDs".

drivers/dax/device.c dev_dax_huge_fault(vmf, pe_size) (Debian's 6.1, read in
linux-source-6.1) logs every fault on a device-dax mapping with dev_dbg():

    dax0.0: nvh-odirect: write (0x7f2a00000000 - 0x7f2a00200000) size = 1

before it dispatches on pe_size to __dev_dax_pte_fault() (PE_SIZE_PTE = 0),
__dev_dax_pmd_fault() (PE_SIZE_PMD = 1) or __dev_dax_pud_fault() (PE_SIZE_PUD = 2). The core
mm (mm/memory.c __handle_mm_fault(): create_huge_pmd() -> vm_ops->huge_fault) asks for a
PMD first where the VMA allows one; only a VM_FAULT_FALLBACK leads to a PTE-size call. A
mapping whose faults are all logged with size = 1 is mapped by PMDs; __dev_dax_pmd_fault()
either installs the PMD (vmf_insert_pfn_pmd) or fails the fault. The line is off unless
dynamic debug enables it (CONFIG_DYNAMIC_DEBUG, which Debian's kernel has).

From v6.6 (the huge_fault callback takes an `order`; 6.12's drivers/dax/device.c) the line
is

    dax0.0: nvh-odirect: op=write addr=0x7f9527600000 order=9

with the fault address aligned down to the fault's size rather than the VMA's range; order
0 is a PTE, PMD_ORDER (9) a PMD, PUD_ORDER (18) a PUD.

Only the faults of the mapping the workload reports are counted (`map_addr` and its length,
from nvh-odirect's "case mapping" line in the kernel log: the VMA start in a 6.1 line, the
address inside the mapping in a 6.6+ line): seeding through a temporary mapping faults
too, possibly at the same address.
"""

from __future__ import annotations

import contextlib
import re
import shlex
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .checks import Check
from .console import mark_text
from .expectations import parse_count_rule
from .trace import MOUNT_DEBUGFS

if TYPE_CHECKING:
    from .ssh import Runner

DEBUG_QUERY = "func dev_dax_huge_fault"
CONTROL_FILES = ("/proc/dynamic_debug/control", "/sys/kernel/debug/dynamic_debug/control")
LEVELS = {0: "pte", 1: "pmd", 2: "pud"}           # enum page_entry_size, up to v6.5
ORDER_LEVELS = {0: "pte", 9: "pmd", 18: "pud"}     # fault order on x86-64, v6.6+

_LINE_RE = re.compile(r"dax\d+\.\d+: (?P<comm>.+?): (?P<access>read|write) "
                      r"\((?P<start>0x[0-9a-f]+) - (?P<end>0x[0-9a-f]+)\) size = (?P<size>\d+)")
_ORDER_LINE_RE = re.compile(r"dax\d+\.\d+: (?P<comm>.+?): op=(?P<access>read|write) "
                            r"addr=(?P<addr>0x[0-9a-f]+) order=(?P<order>\d+)")
_MAPPED_LEN_RE = re.compile(r" len (\d+)")


# The expectation keys judged here (odirect.yaml); a cell without them is not captured.
KEYS = {"devdax_pmd_faults", "devdax_pte_faults"}


def case_mapping_line(vma_start: int, what: str) -> str:
    """What nvh-odirect writes to /dev/kmsg about the case's mapping: `what` is
    "len N" once it is mapped, "unmapped" when it is gone before the run ends."""
    return f"nvh-odirect: case mapping {vma_start:#x} {what}"


def count_faults(log: str, vma_start: int | None = None) -> dict[str, int]:
    """{"pte": n, "pmd": n, "pud": n, "lines": all lines seen} from kernel-log text; with
    `vma_start`, only the faults of the VMA that starts there, while nvh-odirect had it
    announced as the case's mapping, are counted by level."""
    counts = {"pte": 0, "pmd": 0, "pud": 0, "lines": 0}
    vma_end = None
    if vma_start is not None:
        mapped = case_mapping_line(vma_start, "len ")
        _, _, log = log.rpartition(mapped) if mapped in log else ("", "", "")
        length = _MAPPED_LEN_RE.match(" len " + log)
        vma_end = vma_start + int(length.group(1)) if length else vma_start + 1
        # a verification mapping may get the same address once the case's is gone
        log = log.split(case_mapping_line(vma_start, "unmapped"), 1)[0]
    for m in _LINE_RE.finditer(log):
        counts["lines"] += 1
        if vma_start is not None and int(m.group("start"), 16) != vma_start:
            continue
        level = LEVELS.get(int(m.group("size")))
        if level:
            counts[level] += 1
    for m in _ORDER_LINE_RE.finditer(log):
        counts["lines"] += 1
        addr = int(m.group("addr"), 16)
        if vma_start is not None and not vma_start <= addr < (vma_end or 0):
            continue
        level = ORDER_LEVELS.get(int(m.group("order")))
        if level:
            counts[level] += 1
    return counts


def _vma_start(observed: dict[str, Any]) -> int | None:
    start = observed.get("map_addr")
    return int(start, 16) if isinstance(start, str) else None


@dataclass
class FaultCapture:
    log: str = ""       # the kernel log after the capture's marker
    enabled: bool = False
    error: str = ""

    def counts_for(self, observed: dict[str, Any]) -> dict[str, int]:
        """count_faults() for the mapping the workload reported."""
        return count_faults(self.log, _vma_start(observed))


@contextlib.contextmanager
def capture(guest: Runner, label: str) -> Iterator[FaultCapture]:
    """dev_dax_huge_fault()'s debug line on around the block; the capture keeps the kernel
    log after the block's marker (the last one with this label), not the whole log, which
    grows over a run. One guest round trip before the block, one after."""
    cap = FaultCapture()
    marker = mark_text(f"devdax-faults {label}")
    controls = " ".join(CONTROL_FILES)
    enable = (f"{MOUNT_DEBUGFS} 2>/dev/null; echo '{marker}' > /dev/kmsg; "
              f"for f in {controls}; do [ -w $f ] && echo '{DEBUG_QUERY} +p' > $f && exit 0; "
              "done; exit 1")
    r = guest.run(enable, timeout_s=30)
    cap.enabled = r.status == 0
    if not cap.enabled:
        cap.error = ("cannot enable dev_dax_huge_fault's debug line (no dynamic debug "
                     f"control, or device_dax not loaded): {r.stderr.strip()[-200:]}")
    try:
        yield cap
    finally:
        with contextlib.suppress(ConnectionError):
            r = guest.run(f"for f in {controls}; do [ -w $f ] && echo '{DEBUG_QUERY} -p' > $f;"
                          f" done; dmesg | awk -v m={shlex.quote(marker)} "
                          "'index($0, m) {f = 1; n = 0; next} f {a[++n] = $0} "
                          "END {for (i = 1; i <= n; i++) print a[i]}'", timeout_s=60)
            cap.log = r.stdout


def fault_checks(cap: FaultCapture, observed: dict[str, Any],
                 expect: dict[str, Any]) -> list[Check]:
    """devdax_pmd_faults / devdax_pte_faults: count rules on the workload mapping's
    dev_dax_huge_fault() calls by size."""
    counts = cap.counts_for(observed)
    out = []
    for key in sorted(KEYS & expect.keys()):  # pmd, then pte
        rule = parse_count_rule(expect[key])
        level = key.split("_")[1]
        name = f"dev_dax_huge_fault {level.upper()}-size faults"
        if not cap.enabled or counts["lines"] == 0 or _vma_start(observed) is None:
            why = cap.error or ("the workload reported no mapping"
                                if _vma_start(observed) is None else
                                "no dev_dax_huge_fault debug lines in the kernel log")
            out.append(Check(name, rule.text, f"not observable: {why}", False, key=key))
            continue
        out.append(Check(name, rule.text,
                         f"{counts[level]} (of the mapping at {observed.get('map_addr')}; "
                         f"PTE {counts['pte']}, PMD {counts['pmd']}, PUD {counts['pud']})",
                         rule.holds(counts[level]), key=key))
    return out
