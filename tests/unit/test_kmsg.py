"""harness.kmsg: kernel log scanning.

Each tests/data/kmsg/*.log starts with "# expect: kind=<kind> title=<title>" lines (none for a
clean log) and a "# source:" line; the rest is the log. The loader blanks those header lines, so
line numbers in findings are the file's own.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from harness import kmsg
from harness.kmsg import Finding, dedupe, scan_kernel_log, split_expected

DATA = Path(__file__).resolve().parents[1] / "data" / "kmsg"
LOGS = sorted(DATA.glob("*.log"))
EXPECT = re.compile(r"# expect: kind=(?P<kind>\S+) title=(?P<title>.+)$")


def load(path: Path) -> tuple[str, list[tuple[str, str]]]:
    """The log text (header lines blanked) and its expected (kind, title) pairs."""
    lines = path.read_bytes().decode("utf-8").split("\n")  # bytes: keep the \r of CRLF logs
    expected = []
    header = True
    for i, line in enumerate(lines):
        header = header and line.startswith("# ")
        if header:
            if m := EXPECT.match(line.rstrip("\r")):
                expected.append((m["kind"], m["title"]))
            lines[i] = ""
    return "\n".join(lines), expected


def test_data_files_are_there():
    assert len(LOGS) >= 20
    for path in LOGS:
        assert path.read_text(encoding="utf-8").startswith("# "), f"{path.name}: no header"
        assert "# source: " in path.read_text(encoding="utf-8"), f"{path.name}: no source"


@pytest.mark.parametrize("path", LOGS, ids=[p.stem for p in LOGS])
def test_log_file(path: Path):
    text, expected = load(path)
    findings = scan_kernel_log(text)
    assert [(f.kind, f.title) for f in findings] == expected
    raw = text.split("\n")
    for f in findings:
        header = f.text.split("\n")[0]
        assert header and header in raw[f.line - 1], "line must point at the report's header"


def test_every_kind_has_a_log_file():
    kinds = {kind for path in LOGS for kind, _title in load(path)[1]}
    assert set(kmsg.KINDS) <= kinds
    assert kinds <= set(kmsg.KINDS)


def test_there_are_clean_logs():
    assert any(not load(p)[1] for p in LOGS if p.name.startswith("clean-boot"))
    assert any(not load(p)[1] for p in LOGS if "sysrq" in p.name)


UNSTABLE = re.compile(
    r"0x[0-9a-f]|\+0x|\b[0-9a-f]{8,}\b|\[\s*\d+\.\d+\]|\[[TC]\d+\]|\bpid\b|CPU#?\s*\d|(?<![\w.])\d"
)


@pytest.mark.parametrize("path", LOGS, ids=[p.stem for p in LOGS])
def test_titles_are_stable(path: Path):
    for f in scan_kernel_log(load(path)[0]):
        assert not UNSTABLE.search(f.title), f.title
        assert not re.search(r"\.(?:cold|isra|constprop|part)\b|\[\w+\]$", f.title), f.title


def test_the_two_target_bugs():
    text, _ = load(DATA / "oops-unpin_user_page_range_dirty_lock.log")
    (f,) = scan_kernel_log(text)
    assert f.to_json() == {
        "kind": "oops",
        "title": "BUG: unable to handle kernel paging request in unpin_user_page_range_dirty_lock",
        "frame": "unpin_user_page_range_dirty_lock",
        "line": 5,
        "log_line": "BUG: unable to handle page fault for address: ffffea0004000034",
    }
    assert "ib_umem_release+0x3c/0xb0 [ib_uverbs]" in f.text
    assert f.text.endswith("---[ end trace 0000000000000000 ]---")
    text, _ = load(DATA / "oops-dax_disassociate_entry-umount.log")
    oops, panic = scan_kernel_log(text)
    assert oops.title == \
        "BUG: unable to handle kernel NULL pointer dereference in dax_disassociate_entry"
    assert "deactivate_locked_super" in oops.text
    assert (panic.kind, panic.title) == ("panic", "kernel panic: Fatal exception")


def test_report_text_is_prefix_stripped_and_bounded():
    text, _ = load(DATA / "kasan-uaf-pmem_submit_bio.log")
    (f,) = scan_kernel_log(text)
    lines = f.text.split("\n")
    assert lines[0] == "BUG: KASAN: use-after-free in pmem_submit_bio+0x2a1/0x2c0 [nd_pmem]"
    assert lines[-1].startswith("=====")  # ends at the closing ruler
    assert "Freed by task 1403:" in lines
    assert not any(line.startswith(("<3>", "[")) for line in lines)


def test_other_printk_contexts_are_left_out():
    text, _ = load(DATA / "lockdep-circular-printk-caller.log")
    (f,) = scan_kernel_log(text)
    assert "hrtimer: interrupt took" not in f.text  # [C0]
    assert "error count since last fsck" not in f.text  # [T88]
    assert f.text.endswith(" </TASK>")


def test_userspace_lines_are_left_out():
    text, _ = load(DATA / "warning-interleaved-userspace-crlf-ansi.log")
    (f,) = scan_kernel_log(text)
    assert "nvh-init" not in f.text
    assert "\r" not in f.text and "\x1b" not in f.text
    assert f.text.endswith("---[ end trace 0000000000000000 ]---")  # glued to "login: "


# -- small inline logs -------------------------------------------------------------------------
WARN = """\
------------[ cut here ]------------
WARNING: CPU: 1 PID: 612 at fs/dax.c:1456 dax_iomap_rw.cold+0x1f3/0x220 [foo]
RIP: 0010:dax_iomap_rw.cold+0x1f3/0x220 [foo]
Call Trace:
 <TASK>
 ? __warn+0x7d/0xc0
 ext4_file_read_iter.isra.0+0x5a/0x1a0 [ext4]
 </TASK>
---[ end trace 0000000000000000 ]---
"""

OOPS = """\
BUG: kernel NULL pointer dereference, address: 0000000000000008
#PF: supervisor read access in kernel mode
Oops: 0000 [#1] PREEMPT SMP NOPTI
RIP: 0010:pmem_do_read.constprop.0+0x5e/0xb0 [nd_pmem]
Call Trace:
 <TASK>
 ? __die+0x23/0x70
 pmem_submit_bio+0x14e/0x2a0 [nd_pmem]
 </TASK>
---[ end trace 0000000000000000 ]---
"""


NULL_DEREF = "BUG: unable to handle kernel NULL pointer dereference in pmem_do_read"


def titles(text: str, **kw) -> list[str]:
    return [f.title for f in scan_kernel_log(text, **kw)]


def test_suffixes_and_module_tags_are_stripped():
    assert titles(WARN) == ["WARNING in dax_iomap_rw"]
    assert titles(OOPS) == [NULL_DEREF]


def test_two_reports_and_the_same_report_twice():
    findings = scan_kernel_log("boot\n" + WARN + "noise\n" + OOPS + WARN)
    assert [(f.kind, f.line) for f in findings] == [("warning", 3), ("oops", 12), ("warning", 23)]
    assert [f.title for f in dedupe(findings)] == [
        "WARNING in dax_iomap_rw", NULL_DEREF]
    assert dedupe(findings)[0] is findings[0]


@pytest.mark.parametrize("prefix", [
    "",
    "[   12.345678] ",
    "[   12.345678][  T612] ",
    "<4>[   12.345678] ",
    "<4>",
    "kern  :warn  : [   12.345678] ",
    "Nov 22 10:00:00 debian kernel: ",
    "2024-11-22T10:00:00.123456+0000 debian kernel: ",
    "4,1234,12345678,-;",
    "\x1b[0m[   12.345678] ",
])
def test_line_prefixes(prefix: str):
    text = "\r\n".join(prefix + line for line in OOPS.splitlines()) + "\r\n"
    (f,) = scan_kernel_log(text)
    assert (f.kind, f.title, f.line) == (
        "oops", NULL_DEREF, 1)
    assert f.text.split("\n")[0] == OOPS.split("\n")[0]


def test_unprefixed_lines_in_a_timestamped_log_are_userspace():
    log = "[    1.000000] Run /init as init process\nBUG: from a shell script\n" \
          "WARNING: CPU: 0 PID: 1 at fs/dax.c:1 fake+0x1/0x2\n"
    assert titles(log) == []
    assert titles(log.split("\n", 1)[1]) == ["BUG: from a shell script", "WARNING in fake"]


def test_other_journal_idents_are_userspace():
    log = "Nov 22 10:00:00 debian sshd[1]: BUG: not the kernel\n" \
          "Nov 22 10:00:01 debian kernel: BUG: workqueue lockup - pool cpus=0 node=0 stuck for 31s!"
    assert titles(log) == ["BUG: workqueue lockup"]


def test_refcount_message_after_the_warning_header_refines_it():
    log = ("WARNING: CPU: 0 PID: 1 at lib/refcount.c:28 refcount_warn_saturate+0xba/0x110\n"
           "refcount_t: addition on 0; use-after-free.\n"
           "RIP: 0010:refcount_warn_saturate+0xba/0x110\nCall Trace:\n"
           " nd_btt_release+0x1a/0x30 [nd_btt]\n---[ end trace 0000000000000000 ]---\n")
    (f,) = scan_kernel_log(log)
    assert (f.kind, f.title, f.line) == ("refcount", "WARNING: refcount bug in nd_btt_release", 1)


def test_list_corruption_as_a_warning():
    log = ("------------[ cut here ]------------\n"
           "list_add corruption. prev->next should be next (ffff888004a0c010), but was "
           "ffff888004a0c020. (prev=ffff888004a0c030).\n"
           "WARNING: CPU: 1 PID: 9 at lib/list_debug.c:30 __list_add_valid+0x5a/0xa0\n"
           "RIP: 0010:__list_add_valid+0x5a/0xa0\nCall Trace:\n <TASK>\n"
           " nvdimm_badblocks_populate+0x9a/0x140 [libnvdimm]\n </TASK>\n"
           "---[ end trace 0000000000000000 ]---\n")
    # syzbot's title for a list check that WARNs: the list helper is skipped, the caller named
    assert titles(log) == ["WARNING in nvdimm_badblocks_populate"]
    assert scan_kernel_log(log)[0].kind == "list_corruption"


def test_kernel_bug_without_trace_falls_back_to_the_file():
    assert titles("kernel BUG at fs/dax.c:123!\ninvalid opcode: 0000 [#1] SMP\n") == [
        "kernel BUG in fs/dax.c"]


def test_ubsan_without_trace_falls_back_to_the_file():
    log = "UBSAN: array-index-out-of-bounds in drivers/nvdimm/label.c:117:9\n" \
          "index 4 is out of range for type 'u8 [4]'\n" + "=" * 80 + "\n"
    assert titles(log) == ["UBSAN: array-index-out-of-bounds in drivers/nvdimm/label.c"]
    # numbers in paths are not free text: "fs/9p" stays
    assert titles(log.replace("drivers/nvdimm/label.c", "fs/9p/vfs_inode.c")) == [
        "UBSAN: array-index-out-of-bounds in fs/9p/vfs_inode.c"]


def test_kasan_invalid_free_names_the_caller_of_kfree():
    log = ("BUG: KASAN: double-free in kfree+0x8a/0x130\n\nFree of addr ffff888003f1a000 "
           "by task ndctl/15\n\nCall Trace:\n <TASK>\n dump_stack_lvl+0x5b/0x77\n"
           " kasan_report_invalid_free+0x7a/0xa0\n kfree+0x8a/0x130\n"
           " nd_label_free+0x1a/0x30 [libnvdimm]\n </TASK>\n" + "=" * 66 + "\n")
    assert titles(log) == ["KASAN: invalid-free in nd_label_free"]


def test_kmemleak_debugfs_format():
    log = ('unreferenced object 0xffff888101bd9e00 (size 256):\n'
           '  comm "swapper/0", pid 1, jiffies 4294893330 (age 1412.924s)\n'
           "  backtrace (crc 5a8b0a7a):\n    kmalloc_trace+0x25/0x90\n"
           "    nd_region_activate+0x9c/0x2e0 [libnvdimm]\n")
    assert titles(log) == ["memory leak in nd_region_activate"]


def test_panic_numbers_are_normalised():
    assert titles("Kernel panic - not syncing: Attempted to kill init! exitcode=0x0000000b\n") \
        == ["kernel panic: Attempted to kill init!"]
    assert titles("Kernel panic - not syncing: Watchdog detected hard LOCKUP on cpu 3\n") \
        == ["kernel panic: Watchdog detected hard LOCKUP on cpu NUM"]


def test_rcu_stall_detected_by_another_cpu_takes_its_nmi_backtrace():
    lines = [
        ("C0", "rcu: INFO: rcu_preempt detected stalls on CPUs/tasks:"),
        ("C0", "rcu: \t1-....: (20999 ticks this GP) idle=b4c/1/0x4000000000000000 fqs=5249"),
        ("C0", "\t(detected by 0, t=21002 jiffies, g=1234, q=56 ncpus=2)"),
        ("C0", "Sending NMI from CPU 0 to CPUs 1:"),
        ("T1", "nvh-init: still waiting"),
        ("C1", "NMI backtrace for cpu 1"),
        ("C1", "CPU: 1 PID: 1733 Comm: dd Not tainted 6.1.0-13-amd64 #1"),
        ("C1", "RIP: 0010:btt_log_read+0x5a/0x90 [nd_btt]"),
        ("C1", "Call Trace:"), ("C1", " <TASK>"), ("C1", " btt_write_pg+0x2e1/0x490 [nd_btt]"),
        ("C1", " </TASK>"),
    ]
    log = "\n".join(f"[  {i}.000000][{c:>6}] {t}" for i, (c, t) in enumerate(lines, 100))
    (f,) = scan_kernel_log(log)
    assert (f.kind, f.title) == ("rcu_stall", "INFO: rcu detected stall in btt_log_read")
    assert "nvh-init" not in f.text and f.text.endswith(" </TASK>")


def test_recursive_locking_names_the_lock_site():
    log = ("============================================\n"
           "WARNING: possible recursive locking detected\n"
           "6.1.0-nvh-lockdep #1 Not tainted\n"
           "--------------------------------------------\n"
           "ndctl/1512 is trying to acquire lock:\n"
           "ffff888004c7d0a8 (&nvdimm_bus->reconfig_mutex){+.+.}-{3:3}, at: "
           "nvdimm_bus_lock+0x1b/0x30 [libnvdimm]\n\nbut task is already holding lock:\n")
    assert titles(log) == ["possible deadlock in nvdimm_bus_lock"]


def test_call_trace_alone_is_not_a_finding():
    log = ("task:kworker/0:1 state:D stack:0 pid:12 ppid:2 flags:0x00004000\n"
           "Call Trace:\n <TASK>\n __schedule+0x34d/0x9e0\n schedule+0x5a/0xd0\n </TASK>\n"
           "CPU: 0 PID: 1 Comm: swapper/0 Not tainted 6.1.0 #1\n"
           "RIP: 0010:default_idle+0xe/0x20\n")
    assert titles(log) == []


# -- ignore, IGNORE, split_expected ------------------------------------------------------------
def test_builtin_ignore_table():
    log = "[ 3.100000] WARNING: The mand mount option has been deprecated and\n" \
          "[ 3.100001]          and is ignored by this kernel. Remove the mand\n"
    assert titles(log) == []
    for regex, why in kmsg.IGNORE:
        re.compile(regex)
        assert len(why) > 20, "every IGNORE entry says why"


def test_ignore_argument():
    assert titles(WARN + OOPS, ignore=[r"^WARNING in dax_"]) == [
        NULL_DEREF]
    assert titles(WARN + OOPS, ignore=["nothing matches"]) == [
        "WARNING in dax_iomap_rw", NULL_DEREF]


def test_split_expected():
    findings = scan_kernel_log(WARN + OOPS + WARN)
    unexpected, expected = split_expected(findings, ["WARNING in dax_iomap_rw"])
    assert [f.kind for f in expected] == ["warning", "warning"]
    assert [f.kind for f in unexpected] == ["oops"]
    unexpected, expected = split_expected(findings, [r"BUG: .* in pmem_\w+"])
    assert [f.kind for f in expected] == ["oops"]
    # A regex must match the whole title, an exact title needs no escaping.
    assert split_expected(findings, ["WARNING"])[1] == []
    f = Finding("bug", "BUG: using smp_processor_id() in preemptible code in foo", 1, "")
    assert split_expected([f], [f.title]) == ([], [f])
    assert split_expected([f], ["(["]) == ([f], [])  # not a regex: exact match only


def test_finding_json():
    f = Finding("warning", "WARNING in f", 3, "text")
    assert f.to_json() == {"kind": "warning", "title": "WARNING in f", "frame": "", "line": 3,
                           "log_line": "text"}


def test_table_is_consistent():
    names = {p.name for p in kmsg.PATTERNS}
    for p in kmsg.PATTERNS:
        assert p.kind in kmsg.KINDS, p
        assert set(p.absorbs) <= names and set(p.refines) <= names, p
        assert ("{func}" in p.title) == (p.frames is not None or p.fallback == "func"), p
        assert all("{func}" in t or "{" not in t for _rx, t in p.title_if), p

