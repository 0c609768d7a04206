"""harness.console: the markers and boot banners in the console log, cutting a test's slice
out of it, and the kernel findings outside every test's frame (summary.json run_findings).

The consoles are assembled from the real logs in tests/data/kmsg/ the way a run writes
results/console.log: a boot banner per boot, then that boot's serial console with the
harness's begin/end markers around each test.
"""

from __future__ import annotations

from pathlib import Path

from kmsg_data import body

from harness import console, kmsg
from harness.console import (
    BOOT_BANNER,
    MARK_PREFIX,
    boot_banner,
    findings_outside_tests,
    mark_text,
    slice_between_marks,
)

WARNING = "WARNING in dax_iomap_rw"
OOPS = "BUG: unable to handle kernel paging request in dax_disassociate_entry"
PANIC = "kernel panic: sysrq triggered crash"




def mark(label: str, t: str = "[   20.000000]") -> str:
    return f"{t} {mark_text(label)}"


def test_the_vocabulary_is_what_the_guest_writes_and_the_logs_show():
    assert mark_text("begin t::x") == "nvh-mark: begin t::x"
    assert MARK_PREFIX == "nvh-mark: "
    # A real console: the harness's marker, as the kernel printed it.
    real = body("clean-boot-debian-6.1.log")
    assert real[-1].endswith(mark_text("end testcases/test_odirect.py::test_odirect_read"))
    assert boot_banner(2, "distro", "tcg") == \
        "===== nvdimm-harness: boot 2 (distro kernel, tcg) =====\n"
    assert boot_banner(1, "tree", "kvm").startswith(BOOT_BANNER)


def test_guest_uses_the_console_vocabulary():
    """harness.guest writes the markers and banners with console's helpers (one spelling)."""
    from harness import guest
    assert guest.slice_between_marks is console.slice_between_marks
    source = Path(guest.__file__).read_text()
    assert "nvh-mark" not in source and "=====" not in source


def test_slice_between_marks_on_a_real_console():
    log = "\n".join(body("clean-boot-debian-6.1.log")) + "\n"
    test = "testcases/test_odirect.py::test_odirect_read"
    got = slice_between_marks(log, f"begin {test}", f"end {test}")
    lines = got.splitlines()
    assert len(lines) == 4 and got.endswith("\n")
    assert not any(MARK_PREFIX in ln for ln in lines)
    assert "Linux version" not in got  # the boot before the test is not part of it


def test_slice_takes_the_last_begin_before_the_end():
    """The same id twice in one log (dmesg of a guest that ran a test twice): the last run."""
    log = "\n".join([mark("begin t"), "first run", mark("end t"),
                     mark("begin t"), "second run", mark("end t")])
    assert slice_between_marks(log, "begin t", "end t") == "second run\n"


def test_slice_of_a_test_that_crashed_before_its_end_mark_runs_to_the_end():
    panic = body("real-6.1-panic-sysrq-c.log")
    log = "\n".join([*body("clean-boot-debian-6.1.log"), mark("begin crash"), *panic])
    got = slice_between_marks(log, "begin crash", "end crash")
    assert got.splitlines() == panic
    assert [f.title for f in kmsg.scan_kernel_log(got)] == [PANIC]


def test_slice_without_a_begin_mark_starts_at_the_top_and_empty_is_empty():
    assert slice_between_marks("a\nb\n" + mark("end t"), "begin t", "end t") == "a\nb\n"
    assert slice_between_marks(mark("begin t") + "\n" + mark("end t"), "begin t", "end t") == ""
    # A marker must end the line: another test whose id starts with this one's is not it.
    log = "\n".join([mark("begin t[a]"), "x", mark("end t[a]")])
    assert slice_between_marks(log, "begin t", "end t") == log + "\n"


def run_console() -> tuple[str, dict[str, int]]:
    """A two-boot console.log: a WARN during boot 1, an oops inside test A, a WARN between
    tests A and B, test B panics (no end mark), boot 2 WARNs again before test C runs
    clean. Returns the text and the line (1-based) of each WARN's report."""
    warn = body("warning-dax_iomap_rw.log")
    lines: list[str] = []
    where: dict[str, int] = {}

    def add(*chunk: str, name: str | None = None) -> None:
        if name:
            where[name] = len(lines) + 1 + next(i for i, ln in enumerate(chunk)
                                                if "WARNING: CPU:" in ln)
        lines.extend(chunk)

    add(boot_banner(1, "distro", "tcg").rstrip("\n"))
    boot = body("clean-boot-debian-6.1.log")
    first_mark = next(i for i, ln in enumerate(boot) if MARK_PREFIX in ln)
    add(*boot[:first_mark])
    add(*warn, name="during boot 1")
    add(mark("begin A"), *body("real-6.1-oops-dax_disassociate_entry-ext4-unbind.log"),
        mark("end A"))
    add(*warn, name="between tests")
    add(mark("begin B"), *body("real-6.1-panic-sysrq-c.log"))
    add(boot_banner(2, "distro", "tcg").rstrip("\n"), *body("real-clean-boot-own-6.1.192.log"))
    add(*warn, name="during boot 2")
    add(mark("begin C"), "[   30.000000] nothing", mark("end C"))
    return "\n".join(lines) + "\n", where


def test_findings_outside_tests_are_boot_and_between_tests_only():
    text, where = run_console()
    every = kmsg.scan_kernel_log(text)
    assert {f.title for f in every} >= {WARNING, OOPS, PANIC}  # the scanner sees them all
    outside = findings_outside_tests(text)
    assert [f.title for f in outside] == [WARNING, WARNING, WARNING]
    assert [f.line for f in outside] == [where["during boot 1"], where["between tests"],
                                         where["during boot 2"]]


def test_a_boot_banner_closes_the_frame_of_a_test_that_crashed():
    """Without the banner rule, boot 2's WARN would count as test B's (B never ended)."""
    text, _ = run_console()
    without_banner = text.replace(BOOT_BANNER, "===== something else")
    assert len(findings_outside_tests(without_banner)) == 2


def test_findings_outside_tests_of_a_clean_console_and_crlf():
    clean = "\n".join(body("clean-boot-debian-6.1.log"))
    assert findings_outside_tests(clean) == []
    assert findings_outside_tests("") == []
    # Line numbers stay the console's own with CRLF line ends.
    text, where = run_console()
    crlf = findings_outside_tests(text.replace("\n", "\r\n"))
    assert [f.line for f in crlf] == [where["during boot 1"], where["between tests"],
                                      where["during boot 2"]]
