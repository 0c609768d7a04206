"""The serial console log's vocabulary: what the harness writes into it and how it is cut.

The console log is the authoritative kernel log (it survives panics and a dead network).
The harness writes two things into it, and reads them back when it judges a run:

- a marker line per test boundary, `nvh-mark: begin <test id>` / `nvh-mark: end <test id>`,
  written to /dev/kmsg by harness.guest.Guest.mark();
- a banner before every boot's console in results/console.log,
  `===== nvdimm-harness: boot N (<source> kernel, <accel>) =====`.

Pure: text in, text or findings out.
"""

from __future__ import annotations

from . import kmsg

MARK_PREFIX = "nvh-mark: "
BOOT_BANNER = "===== nvdimm-harness: boot"


def mark_text(label: str) -> str:
    """The marker the guest writes into its kernel log for `label` ("begin <test id>")."""
    return f"{MARK_PREFIX}{label}"


def boot_banner(boots: int, kernel_source: str, accel: str) -> str:
    """The line before boot number `boots`'s console in results/console.log."""
    return f"{BOOT_BANNER} {boots} ({kernel_source} kernel, {accel}) =====\n"


def slice_between_marks(log: str, begin: str, end: str) -> str:
    """The lines strictly between the `begin` and `end` markers (the last begin before end).

    No begin marker: from the start; no end marker (the guest crashed first): to the end."""
    lines = log.splitlines()
    b = next((i for i in range(len(lines) - 1, -1, -1)
              if lines[i].endswith(mark_text(begin))), None)
    start = 0 if b is None else b + 1
    e = next((i for i in range(start, len(lines)) if lines[i].endswith(mark_text(end))),
             len(lines))
    return "\n".join(lines[start:e]) + ("\n" if e > start else "")


def findings_outside_tests(console_text: str) -> list[kmsg.Finding]:
    """Kernel findings in a run's console outside every test's begin..end frame: during a
    boot, between tests, or after the last one. A boot banner closes an open frame (the
    guest of a test that crashed before its end marker was replaced)."""
    lines = console_text.splitlines()
    inside: list[bool] = []
    depth = False
    for line in lines:
        if f"{MARK_PREFIX}begin " in line:
            depth = True
        inside.append(depth)
        if f"{MARK_PREFIX}end " in line or line.startswith(BOOT_BANNER):
            depth = False
    findings = kmsg.scan_kernel_log("\n".join(lines))
    return [f for f in findings if not inside[f.line - 1]]
