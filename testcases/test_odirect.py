"""DAX mappings as the buffer of O_DIRECT I/O: the use case of the DAX-GUP series (issue 4).

The kernel must fault in and get_user_pages() the DAX pages of a mapping (mm/gup.c devmap
PTE/PMD handling, get_dev_pagemap(); v4.5+) and move every byte, to and from a non-DAX peer
(the scratch virtio disk), in every namespace mode. Expected results, each with the kernel
source that promises it, are data: testcases/expectations/odirect.yaml.

Modes (10): fsdax on ext4 and xfs (mount -o dax, 2 MiB-aligned allocation, harness/dax.py)
and devdax with align 2M and 4K, each with the memmap in RAM (map=mem) or in pmem
(map=dev, the vmem_altmap of the seed series); controls: anonymous memory and a page-cache
file on the guest's root ext4.

Cells per mode, and why these and not every case x every size:

- write-untouched-{4K,2M}, read-untouched-{4K,2M}: GUP has to fault a never-touched range,
  read faults (write()) and write faults (FOLL_WRITE, pread()), one page and one PMD.
- read-untouched-64M: 32 PMDs in one call: GUP's fault loop over many huge entries and a
  multi-bio transfer. (write-untouched-64M would add the same loop with read faults only.)
- read-untouched-2M-unaligned: buffer at offset 4096+512 inside the mapping: the transfer
  starts mid-page and straddles two PMDs.
- write-prefaulted-64M: GUP-fast over present devmap entries, and for fsdax the main
  huge-page check: fs_dax:dax_pmd_fault_done must give 32 NOPAGE and no FALLBACK (the
  mapping is a fallocated, never-written file: only the CPU stores fault it in).
- fork-2M: the child re-faults the shared mapping, sees the data and O_DIRECTs from it.
- read-readonly-2M (not anon): pread() into a PROT_READ mapping must fail with EFAULT and
  change nothing (generic/462); 2M covers a read-only PMD (fsdax, devdax-2M) and read-only
  PTEs (devdax-4K, page cache).
- collision-2M (fsdax, page cache): O_DIRECT reads into the mapping race punch-hole and
  truncate of the file (generic/503): no corruption, no SIGBUS in the reader.

Sizes: 4K and 2M are the PTE and PMD granules; 64M is only spent where it adds a path
(many PMDs, GUP-fast over present entries), since it is the slowest under TCG.

Every fsdax cell records the fs_dax PMD/PTE fault-done tracepoints (trace.txt,
trace_counts in the report); the 2M and 64M cells must map PMDs: NOPAGE only, no FALLBACK
(not judged: 4K and -unaligned, whose partial writes split the fallocated extents, and
collision, which punches the file under the faults).

`-k odirect` selects the whole matrix; one cell is e.g.
`-k "test_odirect[fsdax-ext4-mem-read-untouched-4K]"`.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass

import pytest

from harness import dax, devdax_faults, trace
from harness.checks import failures, format_failures, unobserved, with_sources
from harness.odirect import (
    describe_details,
    describe_observation,
    odirect_checks,
    odirect_command,
    run_odirect,
    stall_checks,
    stall_finding,
)
from harness.qemu import SCRATCH_DISK_IN_GUEST as SCRATCH_DISK
from harness.sizes import KiB, MiB, format_size

# Whatever O_DIRECT takes on the DAX pages (references on 6.1, FOLL_PIN on newer kernels)
# must be given back.
pytestmark = pytest.mark.foll_counters_balanced

TIMEOUT_S = 300
COLLISION_MS = 1000
# The collision program runs COLLISION_MS plus a final clean read; past this it is stalled.
COLLISION_STALL_S = 10


@dataclass(frozen=True)
class Cell:
    case: str          # nvh-odirect --case
    size: int
    offset: int = 0
    suffix: str = ""
    kinds: tuple[str, ...] = ("fsdax", "devdax", "anon", "pagecache")

    @property
    def id(self) -> str:
        return f"{self.case}-{format_size(self.size)}{self.suffix}"


CELLS = [
    Cell("write-untouched", 4 * KiB),
    Cell("write-untouched", 2 * MiB),
    Cell("read-untouched", 4 * KiB),
    Cell("read-untouched", 2 * MiB),
    Cell("read-untouched", 64 * MiB),
    Cell("read-untouched", 2 * MiB, offset=4 * KiB + 512, suffix="-unaligned"),
    Cell("write-prefaulted", 64 * MiB),
    Cell("fork", 2 * MiB),
    Cell("read-readonly", 2 * MiB, kinds=("fsdax", "devdax", "pagecache")),
    Cell("collision", 2 * MiB, kinds=("fsdax", "pagecache")),
]
MATRIX = [(mode, cell) for mode in dax.buffer_modes() for cell in CELLS
          if mode.kind in cell.kinds]


def run_cell(guest, ndctl, artifacts, table, mode: dax.BufferMode, cell: Cell) -> None:
    """One matrix cell: namespace, workload (+ trace for fsdax), judgement, report."""
    expect = table.lookup(mode.name, cell.id, guest.kernel_release)
    extra: dict[str, int] = {}
    watch = {}
    if cell.case == "collision":
        extra["duration_ms"] = COLLISION_MS
        watch["stall_after_s"] = COLLISION_STALL_S
    capture = None
    with dax.buffer_in_mode(ndctl, mode) as buffer:
        command = odirect_command(buffer, SCRATCH_DISK, cell.case, cell.size, cell.offset,
                                  **extra)
        tracing = trace.capture(guest, trace.FSDAX_FAULT_EVENTS) if mode.kind == "fsdax" \
            else contextlib.nullcontext()
        # devdax: which page-table level its faults map, where the table asks
        faults = devdax_faults.capture(guest, cell.id) \
            if devdax_faults.KEYS & expect.values.keys() else contextlib.nullcontext()
        with tracing as capture, faults as fault_log:
            observed = run_odirect(guest, command, timeout_s=TIMEOUT_S, **watch)
    observed.setdefault("case", cell.case)
    observed.setdefault("buffer_kind", mode.kind)
    artifacts.attach("workload.json",
                     json.dumps({"command": command, **observed}, indent=2) + "\n")

    checks = odirect_checks(observed, expect.values) + stall_checks(observed, expect.values)
    details = [describe_details(observed)]
    if fault_log is not None:
        checks += devdax_faults.fault_checks(fault_log, observed, expect.values)
        faults = fault_log.counts_for(observed)
        details.append(f"devdax faults of the mapping: PMD {faults['pmd']}, "
                       f"PTE {faults['pte']}")
        artifacts.trace_counts = {f"dev_dax_huge_fault:{k.upper()}": v
                                  for k, v in faults.items() if k != "lines"}
    wd = observed.get("watchdog") or {}
    if wd.get("stalled"):
        artifacts.attach("stall-stacks.txt", wd.get("stacks", "") + "\n"
                         + wd.get("stacks_after_nudge", ""))
        # A stall is a kernel deviation of its own, titled like a kernel finding, so that a
        # known one is recorded in known_failures.yaml and a kernel without it is `fixed`.
        artifacts.add_finding(stall_finding(observed))
    excerpt = ""
    if capture is not None:
        artifacts.attach("trace.txt", capture.text)
        counts = capture.counts()
        artifacts.trace_counts = counts
        pmd = trace.pmd_checks(counts, expect.values)
        checks += pmd
        details.append(f"PMD faults {counts.get(trace.PMD_DONE, 0)} (NOPAGE "
                       f"{counts.get(trace.PMD_DONE + ':NOPAGE', 0)}, FALLBACK "
                       f"{counts.get(trace.PMD_DONE + ':FALLBACK', 0)}), PTE faults "
                       f"{counts.get(trace.PTE_DONE, 0)}")
        if failures(pmd):
            excerpt = capture.excerpt(trace.PMD_DONE, exclude_result="NOPAGE") \
                or "(no fs_dax:dax_pmd_fault_done events at all)"
    artifacts.expectation(expect.describe(), "; ".join(
        x for x in [describe_observation(observed), *details] if x))
    checks = with_sources(checks + unobserved(expect.values, checks, "odirect.yaml"),
                          expect.sources)
    artifacts.add_checks(checks)
    message = format_failures(checks)
    if excerpt:
        message += "\ntrace.txt excerpt (PMD faults that did not map a PMD):\n" + excerpt
    assert not failures(checks), message


@pytest.mark.parametrize(("mode", "cell"), MATRIX,
                         ids=[f"{m.name}-{c.id}" for m, c in MATRIX])
def test_odirect(guest, ndctl, artifacts, expectations, mode, cell):
    run_cell(guest, ndctl, artifacts, expectations["odirect"], mode, cell)


# The first suite test, kept as the quick smoke test that `-k untouched_mapping` selects
# (tests/e2e use it): 4 MiB through a never-touched fsdax mapping on ext4, both directions.
@pytest.mark.parametrize("case", ["write-untouched", "read-untouched"])
def test_odirect_fsdax_ext4_untouched_mapping(guest, ndctl, artifacts, expectations,
                                              case):
    mode = next(m for m in dax.buffer_modes() if m.name == "fsdax-ext4-dev")
    run_cell(guest, ndctl, artifacts, expectations["odirect"], mode, Cell(case, 4 * MiB))
