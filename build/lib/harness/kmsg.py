"""Find kernel bug reports (oopses, WARNINGs, sanitizer, lockdep, hang and memory reports) in a log.

``scan_kernel_log(text)`` reads console output, ``dmesg`` output or a journal excerpt and returns
one :class:`Finding` per kernel report, in log order. The recognised reports are the rows of
``PATTERNS`` below, one table for every caller (the suite's verdicts, the boot-failure message,
the report's log excerpts, ``nvdimm-harness scan``).

Report classes
--------------
sanitizers (KASAN, KFENCE, KMSAN, KCSAN, UBSAN); oopses of x86, arm, arm64, powerpc and riscv
(page faults and NULL dereferences, general protection and stack segment faults, invalid
opcode, divide error, double fault, ``kernel BUG at``, arm's ``Internal error:`` and
``Unhandled fault:``); ``WARNING:`` splats of every format since 2.6 (with refcount, list,
ODEBUG, kobject, usercopy and lockdep-internal variants); lockdep (circular, recursive, irq
inversion, safe->unsafe, inconsistent lock state, bad unlock balance, held lock freed, locks
held at exit or on return to user space, suspicious RCU usage, non-static keys, invalid wait
context), in the bracketed headers of 4.x and the current ones; hung tasks (``blocked for
more than``, ``blocked in I/O wait for more than``, ``can't die``), soft and hard lockups
(with or without the ``NMI watchdog:`` prefix), RCU stalls, workqueue lockups; sleeping in
atomic context, preemption and spinlock debugging; memory (kmemleak, SLUB's ``BUG <cache>``
reports, bad page state/map, rss counters, busy inodes, dentries in use, ``VFS: Close: file
count is 0``, ``unregister_netdevice: waiting``); and ``Kernel panic - not syncing``.

Titles
------
Titles follow the convention syzbot and lore use (syzkaller's pkg/report/linux.go), so a title
can be pasted into their search: ``KASAN: use-after-free Read in FUNC``, ``WARNING in FUNC``,
``BUG: unable to handle kernel paging request in FUNC``, ``general protection fault in FUNC``,
``kernel BUG in FUNC``, ``possible deadlock in FUNC``, ``INFO: task hung in FUNC``,
``BUG: soft lockup in FUNC``, ``INFO: rcu detected stall in FUNC``, ``memory leak in FUNC``,
``kernel panic: MESSAGE``. How FUNC is found is :mod:`harness.kmsg_frames`. A title never holds
addresses, offsets, pids, CPU numbers or line numbers (numbers left in free text become NUM),
so known_failures.yaml and ``compare`` can key on it across boots and kernels. When no function
is found the title ends before " in".

Report boundaries
-----------------
A report starts at its header line (``Finding.line``, 1-based) and runs to the row's ``end``
marker, or else to the end of its call trace (plus trailers such as ``---[ end trace ... ]---``,
register dumps and ``Modules linked in:``), or to the next report's header, whichever is first.
Headers a row ``absorbs`` continue it instead (the ``Oops:`` line after ``BUG: unable to
handle...``; the ``WARNING:`` that ``refcount_t:`` and list corruption are printed with), and a
row that ``refines`` another takes over that report when its line turns up inside it. A
``Kernel panic`` line is always a finding of its own, even inside another report: a panic ends
the guest and callers look for ``kind == "panic"`` to name the crash. A plain printk that starts
with ``WARNING:`` or ``INFO:`` is not a report unless a stack trace follows it (a ``WARN()``
prints ``WARNING: CPU: N PID: M at file:line function`` and a trace).

Log formats: timestamps ``[   12.345678]``, printk caller ids ``[T123]``/``[C0]``, syslog ``<4>``,
``dmesg -x`` (``kern  :warn  : ``), journal (``Nov 22 10:00:00 host kernel: ``), ``/dev/kmsg``
records, ``\\r`` and ANSI escapes, two printks merged on one console line. In a log where some
lines carry a kernel prefix, lines without one are userspace chatter: they never start a report
and are left out of reports. With caller ids, a report only takes lines from its own printk
context (any CPU context, for RCU stalls and hard lockups whose backtraces come from NMIs on
other CPUs). Dumps that are not bug reports (sysrq ``w``/``t``/``l``, "Showing all locks held")
have no header in ``PATTERNS`` and give nothing.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from .kmsg_frames import AT, CALL_TRACE, HEADER, PC_FUNC, RIP, TRACE, WARN_RIP, Frames, words

__all__ = [
    "IGNORE",
    "KINDS",
    "PATTERNS",
    "Finding",
    "Pattern",
    "dedupe",
    "scan_kernel_log",
    "split_expected",
]

KINDS = (
    "panic", "oops", "gpf", "bug", "warning", "kasan", "ubsan", "kmsan", "kfence", "kcsan",
    "lockdep", "hung_task", "soft_lockup", "hard_lockup", "rcu_stall", "refcount", "bad_page",
    "list_corruption", "kmemleak", "sleep_in_atomic", "slab",
)


@dataclass(frozen=True)
class Finding:
    kind: str  # one of KINDS
    title: str  # stable across boots, see the module docstring
    line: int  # 1-based line of the report's header in the scanned text
    text: str  # the report's lines, prefixes stripped
    frame: str = ""  # the function the title names, "" when it names none

    @property
    def header(self) -> str:
        return self.text.split("\n", 1)[0]

    def to_json(self) -> dict:
        return {"kind": self.kind, "title": self.title, "frame": self.frame, "line": self.line,
                "log_line": self.header}


@dataclass(frozen=True)
class Pattern:
    """One row of PATTERNS: how to recognise a report, where it ends and how to title it."""

    name: str  # report type; variants of one type share it; used by absorbs/refines
    kind: str
    start: re.Pattern[str]  # re.match-ed against the prefix-stripped line
    title: str  # str.format template: start's named groups, details, {func}
    title_if: tuple[tuple[re.Pattern[str], str], ...] = ()  # (line in the report, title) first
    frames: Frames | None = None  # where {func} comes from
    details: tuple[re.Pattern[str], ...] = ()  # one named group each, searched in the report
    fallback: str = ""  # start group for {func} when no function is found (a source file)
    end: re.Pattern[str] | None = None  # the report's last line
    end_after: re.Pattern[str] | None = None  # `end` only counts once this line was seen
    multi_trace: bool = False  # several traces (sanitizers): only `end` closes the report
    cross_cpu: bool = False  # takes lines from every CPU context (NMI backtraces)
    needs_trace: bool = False  # a report only with a stack trace (plain printks look alike)
    absorbs: tuple[str, ...] = ()  # pattern names that continue this report
    refines: tuple[str, ...] = ()  # pattern names whose report this row takes over
    max_lines: int = 300


_FUNC = r"(?P<func>[A-Za-z_][\w.]*)(?:\+0x[0-9a-f]+/0x[0-9a-f]+)?"
_EQ = r"^={20,}\s*$"  # sanitizers print a ruler of '=' before and after a report
_END_TRACE = r"^---\[ end trace"  # print_oops_end_marker()


def _pat(name: str, kind: str, start: str, title: str, *, details: Sequence[str] = (),
         end: str = "", end_after: str = "", title_if: Sequence[tuple[str, str]] = (),
         **kw) -> Pattern:
    return Pattern(
        name=name, kind=kind, start=re.compile(start.replace("{FUNC}", _FUNC)), title=title,
        title_if=tuple((re.compile(rx, re.M), t) for rx, t in title_if),
        details=tuple(re.compile(d, re.M) for d in details),
        end=re.compile(end) if end else None,
        end_after=re.compile(end_after, re.M) if end_after else None, **kw)


# Frame recipes shared by several rows (see harness.kmsg_frames).
_RIP_TRACE = Frames((RIP, CALL_TRACE, TRACE))
_RIP_ONLY = Frames((RIP,))
_CALLS = Frames((CALL_TRACE, TRACE))
_STALL = Frames((RIP, CALL_TRACE, TRACE), pick="stall")


def _warn(*skip: str) -> Frames:
    """WARN(): the function on the RIP line, else the first one in the call trace."""
    return Frames((WARN_RIP, TRACE), fallbacks=((CALL_TRACE, TRACE),),
                  skip=words(*skip) if skip else None)


def _lock_site(*markers: str, at: re.Pattern[str] = AT) -> Frames:
    """The lock site lockdep printed after the last marker, as printed (generic or not)."""
    return Frames((*(re.compile(m) for m in markers), at), generic=False)


_LOCKS = words("lock_sock", "release_sock")
# kmemleak: the caller of the allocation, below every allocator.
_LEAK = Frames((re.compile(r"backtrace(?: \(crc [0-9a-f]*\))?:"), TRACE), skip=words(
    "kmemleak", "mmap", "kmem", "slab", "alloc", "create_object", "idr_get", "list_lru_init",
    "kasprintf", "kvasprintf", "pcpu_create", "strdup", "strndup", "memdup"))
_SLAB_INFO = r"INFO: (?P<what>Allocated|Freed) in {FUNC}"
_WARN_HEAD = r"(?:\[ )?WARNING: "

PATTERNS: tuple[Pattern, ...] = (
    # -- sanitizers: '====' ruler, then several traces (access, alloc, free), then '===='
    _pat("kasan", "kasan", r"BUG: KASAN: (?:double-free or invalid-free|double-free|invalid-free)"
         r" in {FUNC}", "KASAN: invalid-free in {func}",
         frames=Frames((HEADER, CALL_TRACE, TRACE),
                       skip=words("slab_", "kfree", "vunmap", "vfree")),
         end=_EQ, end_after=r"Call Trace|Memory state around", multi_trace=True,
         absorbs=("slab", "slab_info", "info_text")),
    _pat("kasan", "kasan", r"BUG: KASAN: (?P<type>[\w-]+) in {FUNC}",
         "KASAN: {type} {access} in {func}",
         frames=Frames((HEADER, CALL_TRACE, TRACE), skip=words(
             "kernel_fault", "tag_check", "mem_abort", "^el1_", "^el1h_")),
         details=[r"^(?P<access>Read|Write) (?:of size|at addr)"], end=_EQ,
         end_after=r"Call Trace|Memory state around", multi_trace=True,
         absorbs=("slab", "slab_info", "info_text")),
    _pat("kasan", "kasan", r"BUG: KASAN: (?P<type>[\w-]+) on address", "KASAN: {type} {access}",
         details=[r"^(?P<access>Read|Write) of size"], end=_EQ,
         end_after=r"Call Trace|Memory state around", multi_trace=True,
         absorbs=("slab", "slab_info", "info_text")),
    _pat("kfence", "kfence",
         r"BUG: KFENCE: (?P<type>use-after-free (?:read|write)|out-of-bounds (?:read|write)|"
         r"invalid (?:read|write)|invalid free|memory corruption) in {FUNC}",
         "KFENCE: {type} in {func}", frames=Frames((HEADER, TRACE)), end=_EQ, multi_trace=True),
    _pat("kmsan", "kmsan", r"BUG: KMSAN: (?P<type>[\w -]+?) in {FUNC}", "KMSAN: {type} in {func}",
         frames=Frames((TRACE, re.compile(r"Local variable .* created at:|Uninit was created at:"),
                        TRACE), fallbacks=((CALL_TRACE, TRACE),),
                       skip=words("alloc_skb", "netlink_ack", "netlink_rcv_skb", "_encrypt$",
                                  "^(?:crypto|cipher|drbg|rng)_")),
         end=_EQ, multi_trace=True),
    # KCSAN names both racing functions in its header, already in a stable order.
    _pat("kcsan", "kcsan", r"BUG: KCSAN: (?P<msg>.+)", "KCSAN: {msg}", end=_EQ, multi_trace=True),
    _pat("ubsan", "ubsan", r"UBSAN: Undefined behaviour in (?P<src>\S+)",
         "UBSAN: undefined-behaviour in {func}", frames=Frames(
             (CALL_TRACE, TRACE), skip=words("ubsan", "overflow")),
         fallback="src", end=_EQ, multi_trace=True),
    _pat("ubsan", "ubsan", r"UBSAN: (?P<type>[\w -]+?) in (?P<src>\S+)", "UBSAN: {type} in {func}",
         frames=Frames((CALL_TRACE, TRACE), skip=words("ubsan", "overflow")), fallback="src",
         end=_EQ, multi_trace=True),
    # -- oopses. x86 (arch/x86/mm/fault.c, traps.c): an "Oops: ... [#1]" line follows BUG:;
    # powerpc says "Unable to handle kernel data access"; arm and arm64 print "Unable to handle
    # kernel ..." then "Internal error: Oops: ..." (arch/arm*/mm/fault.c, kernel/traps.c).
    _pat("page_fault", "oops",
         r"BUG: (?:unable to handle kernel NULL pointer dereference|kernel NULL pointer "
         r"dereference|Kernel NULL pointer dereference)",
         "BUG: unable to handle kernel NULL pointer dereference in {func}", frames=_RIP_TRACE,
         absorbs=("oops_marker", "internal_error"), end=_END_TRACE),
    _pat("page_fault", "oops",
         r"BUG: (?:unable to handle (?:kernel paging request|page fault for address)|"
         r"Unable to handle kernel data access)",
         "BUG: unable to handle kernel paging request in {func}", frames=_RIP_TRACE,
         absorbs=("oops_marker", "internal_error"), end=_END_TRACE),
    _pat("page_fault", "oops",
         r"Unable to handle kernel (?P<what>paging request|NULL pointer dereference|access to "
         r"user memory)", "BUG: unable to handle kernel {what} in {func}", frames=_RIP_TRACE,
         absorbs=("oops_marker", "internal_error"), end=_END_TRACE),
    _pat("page_fault", "oops", r"Unable to handle kernel (?P<msg>.+)", "Unable to handle kernel "
         "{msg}", absorbs=("oops_marker", "internal_error"), end=_END_TRACE),
    _pat("stack_guard", "oops", r"BUG: (?:TASK )?stack guard page was hit at",
         "BUG: stack guard page was hit in {func}", frames=_STALL,
         absorbs=("oops_marker",), end=_END_TRACE),
    _pat("gpf", "gpf", r"(?:Oops: )?general protection fault\b.*:",
         "general protection fault in {func}", frames=_RIP_TRACE, absorbs=("oops_marker",),
         end=_END_TRACE),
    _pat("gpf", "gpf", r"(?:Oops: )?stack segment: \w+ \[#\d+\]",
         "stack segment fault in {func}", frames=_RIP_TRACE, end=_END_TRACE),
    _pat("invalid_opcode", "oops", r"(?:Oops: )?invalid opcode: \w+ \[#\d+\]",
         "invalid opcode in {func}", frames=_RIP_ONLY, end=_END_TRACE),
    _pat("divide_error", "oops", r"(?:Oops: )?divide[ _]error: \w+ \[#\d+\]",
         "divide error in {func}", frames=_RIP_ONLY, end=_END_TRACE),
    _pat("double_fault", "oops", r"PANIC: double fault", "PANIC: double fault in {func}",
         frames=_RIP_ONLY, end=_END_TRACE),
    _pat("unhandled_fault", "oops", r"Unhandled fault: ", "Unhandled fault in {func}",
         frames=_RIP_TRACE, absorbs=("oops_marker", "internal_error"), end=_END_TRACE),
    _pat("internal_error", "oops", r"Internal error: ", "Internal error in {func}",
         frames=_RIP_TRACE, end=_END_TRACE),
    _pat("oops_marker", "oops", r"Oops: .*\[#\d+\]", "Oops in {func}", frames=_RIP_TRACE,
         end=_END_TRACE),
    # BUG() prints "kernel BUG at", then traps as "invalid opcode" (arm: "Internal error").
    _pat("kernel_bug", "list_corruption", r"kernel BUG at lib/list_debug\.c",
         "BUG: corrupted list in {func}", frames=_CALLS,
         absorbs=("invalid_opcode", "oops_marker", "internal_error"), end=_END_TRACE),
    _pat("kernel_bug", "bug", r"kernel BUG at mm/usercopy\.c", "BUG: bad usercopy in {func}",
         frames=Frames((CALL_TRACE, TRACE), skip=words("usercopy", "__check")),
         absorbs=("invalid_opcode", "oops_marker", "internal_error"), end=_END_TRACE),
    _pat("kernel_bug", "bug", r"kernel BUG at (?P<src>\S+?):\d+!?", "kernel BUG in {func}",
         frames=Frames((RIP, CALL_TRACE, TRACE), skip=words("^skb_")), fallback="src",
         absorbs=("invalid_opcode", "oops_marker", "internal_error"), end=_END_TRACE),
    # -- WARN(): by the file that warned (syzkaller's variants), then any file. Formats:
    # "WARNING: CPU: 0 PID: 1 at file:line func+0x.." (3.x-6.x), "WARNING: file:line at func,
    # CPU#0" and "WARNING: file:line at 0x.., CPU#0" (newer), "WARNING: at file:line func()" (2.6).
    _pat("warning", "warning", _WARN_HEAD + r".*lib/debugobjects\.c",
         "WARNING: ODEBUG bug in {func}",
         frames=_warn("debug_", "rcu", "hrtimer_", "timer_", "work_", "percpu_", "vunmap",
                      "vfree", "__free_", "debug_check", "kobject_"), end=_END_TRACE),
    _pat("warning", "warning", _WARN_HEAD + r".*mm/usercopy\.c", "WARNING: bad usercopy in {func}",
         frames=_warn("usercopy", "__check"), end=_END_TRACE),
    _pat("warning", "warning", _WARN_HEAD + r".*lib/kobject\.c", "WARNING: kobject bug in {func}",
         frames=_warn("kobject_"), end=_END_TRACE),
    _pat("warning", "warning", _WARN_HEAD + r".*fs/proc/generic\.c",
         "WARNING: proc registration bug in {func}", frames=_warn("proc_"), end=_END_TRACE),
    _pat("warning", "refcount", _WARN_HEAD + r".*lib/refcount\.c",
         "WARNING: refcount bug in {func}",
         frames=_warn("refcount", "kobject_"), end=_END_TRACE),
    _pat("warning", "lockdep", _WARN_HEAD + r".*kernel/locking/lockdep\.c.*lock_",
         "WARNING: locking bug in {func}", frames=_warn("lock_sock", "release_sock"),
         end=_END_TRACE),
    _pat("warning", "list_corruption", _WARN_HEAD + r".*lib/list_debug\.c", "WARNING in {func}",
         frames=_warn(), end=_END_TRACE),
    _pat("warning", "warning", _WARN_HEAD + r".*mm/vmalloc\.c.*__vmalloc_node",
         "WARNING: zero-size vmalloc in {func}", frames=_warn(), end=_END_TRACE),
    _pat("warning", "warning", _WARN_HEAD + r".*mm/.*\.c.* k?.?malloc",
         "WARNING: kmalloc bug in {func}",
         frames=_warn("kmalloc", "krealloc", "slab", "kmem"), end=_END_TRACE),
    _pat("warning", "warning", r"WARNING: CPU: \d+ PID: \d+ at (?:(?P<src>\S+):\d+ )?{FUNC}",
         "WARNING in {func}", frames=_warn(), fallback="func", end=_END_TRACE),
    _pat("warning", "warning", r"WARNING: (?P<src>\S+):\d+ at (?:0x[0-9a-f]+|{FUNC}),? ",
         "WARNING in {func}", frames=_warn(), fallback="func", end=_END_TRACE),
    _pat("warning", "warning", r"WARNING: at (?:(?P<src>\S+):\d+ )?{FUNC}", "WARNING in {func}",
         frames=_warn(), fallback="func", end=_END_TRACE),
    _pat("warning", "warning", r"WARNING: \[.*\] (?P<src>\S+):\d+ at {FUNC}", "WARNING in {func}",
         frames=_warn(), fallback="func", end=_END_TRACE),
    # Reports printed as the message of a WARN() or BUG(): the message names the bug, the
    # WARNING:/kernel BUG lines around it belong to the same report.
    _pat("refcount", "refcount", r"refcount_t: (?P<msg>[^.]+)", "WARNING: refcount bug in {func}",
         frames=_warn("refcount", "kobject_"), absorbs=("warning",), refines=("warning",),
         end=_END_TRACE),
    _pat("list_corruption", "list_corruption",
         r"(?P<op>list_add|list_del|list_replace|list_move)\s*(?:corruption|double add)",
         "BUG: corrupted list in {func}", title_if=[(r"^WARNING: ", "WARNING in {func}")],
         frames=_CALLS,
         absorbs=("warning", "kernel_bug", "invalid_opcode", "oops_marker", "internal_error"),
         refines=("warning", "kernel_bug"), end=_END_TRACE),
    _pat("busy_inodes", "bug", r"VFS: Busy inodes after unmount",
         "VFS: Busy inodes after unmount (use-after-free)",
         absorbs=("warning", "kernel_bug", "invalid_opcode", "oops_marker"), refines=("warning",),
         end=_END_TRACE),
    _pat("vfs_close", "bug", r"VFS: Close: file count is 0",
         "VFS: Close: file count is zero (use-after-free)", max_lines=1),
    _pat("dentry_in_use", "bug", r"BUG: Dentry .* still in use \(\d+\) \[(?P<op>unmount) of",
         "BUG: Dentry still in use in {op}", absorbs=("warning",), refines=("warning",),
         end=_END_TRACE),
    _pat("netdev_wait", "bug", r"unregister_netdevice: waiting for .* to become free",
         "unregister_netdevice: waiting for DEV to become free", max_lines=1),
    # -- lockdep (kernel/locking/lockdep.c; 4.x prints the header as "[ INFO: ... ]"/"[ BUG: ]")
    _pat("lockdep", "lockdep", r"WARNING: possible circular locking dependency detected",
         "possible deadlock in {func}", frames=Frames((AT, AT, TRACE), skip=words(
             "process_one_work", "flush_workqueue", "drain_workqueue", "destroy_workqueue"))),
    _pat("lockdep", "lockdep", r"INFO: possible circular locking dependency detected",
         "possible deadlock in {func}", frames=_lock_site("is trying to acquire lock")),
    _pat("lockdep", "lockdep", r"(?:WARNING|INFO): possible irq lock inversion dependency detected",
         "possible deadlock in {func}", frames=_lock_site("just changed the state of lock")),
    _pat("lockdep", "lockdep", r"WARNING: .*-safe -> .*-unsafe lock order detected",
         "possible deadlock in {func}",
         frames=Frames((re.compile(r"which became .* at:"), TRACE))),
    _pat("lockdep", "lockdep", r"INFO: .*-safe -> .*-unsafe lock order detected",
         "possible deadlock in {func}", frames=_lock_site("is trying to acquire")),
    _pat("lockdep", "lockdep", r"(?:WARNING|INFO): possible recursive locking detected",
         "possible deadlock in {func}", frames=_lock_site("is trying to acquire lock")),
    _pat("lockdep", "lockdep", r"WARNING: inconsistent lock state",
         "inconsistent lock state in {func}",
         frames=Frames((re.compile("takes"), AT), fallbacks=((CALL_TRACE, TRACE),))),
    _pat("lockdep", "lockdep", r"INFO: inconsistent lock state",
         "inconsistent lock state in {func}",
         frames=_lock_site("takes")),
    _pat("lockdep", "lockdep", r"(?P<level>BUG|WARNING): bad unlock balance detected!",
         "{level}: bad unlock balance in {func}", frames=Frames((PC_FUNC, CALL_TRACE, TRACE))),
    _pat("lockdep", "lockdep", r"BUG: held lock freed!", "BUG: held lock freed in {func}",
         frames=_lock_site(at=PC_FUNC)),
    _pat("lockdep", "lockdep", r"WARNING: held lock freed!", "WARNING: held lock freed in {func}",
         frames=_lock_site()),
    _pat("lockdep", "lockdep", r"BUG: .*still has locks held!",
         "BUG: still has locks held in {func}",
         frames=_lock_site(at=PC_FUNC)),
    _pat("lockdep", "lockdep", r"WARNING: .*still has locks held!",
         "WARNING: still has locks held in {func}", frames=_lock_site()),
    _pat("lockdep", "lockdep", r"(?P<level>BUG|WARNING): lock held when returning to user space",
         "{level}: lock held when returning to user space in {func}",
         frames=_lock_site("leaving the kernel with locks still held")),
    _pat("lockdep", "lockdep", r"(?P<level>WARNING|INFO): suspicious RCU usage",
         "{level}: suspicious RCU usage in {func}",
         frames=Frames((CALL_TRACE, TRACE), skip=words("rcu", "kmem", "slab"))),
    _pat("lockdep", "lockdep", r"INFO: trying to register non-static key",
         "INFO: trying to register non-static key in {func}",
         frames=Frames((CALL_TRACE, TRACE), skip=words("stack", "lock", "IRQ"))),
    _pat("lockdep", "lockdep", r"BUG: Invalid wait context", "WARNING: locking bug in {func}",
         frames=Frames((CALL_TRACE, TRACE), skip=_LOCKS)),
    _pat("lockdep", "lockdep", r"WARNING: Nested lock was not taken",
         "WARNING: nested lock was not taken in {func}", frames=_warn()),
    # -- sleeping in atomic context, preemption and spinlock debugging
    _pat("sleep_in_atomic", "sleep_in_atomic",
         r"BUG: sleeping function called from invalid context",
         "BUG: sleeping function called from invalid context in {func}", frames=_CALLS),
    _pat("sleep_in_atomic", "sleep_in_atomic", r"BUG: scheduling while atomic",
         "BUG: scheduling while atomic in {func}",
         frames=Frames((CALL_TRACE, TRACE), skip=words("schedule"))),
    _pat("preemptible", "bug", r"BUG: using (?P<op>[a-z_]+)\(\) in preemptible",
         "BUG: using {op}() in preemptible code in {func}",
         frames=Frames((CALL_TRACE, TRACE), skip=words(
             "dump_stack", "preemption", "preempt", "debug_", "processor_id", "this_cpu"))),
    _pat("spinlock", "bug",
         r"BUG: (?P<lock>spinlock|rwlock) (?P<what>lockup suspected|already unlocked|recursion|"
         r"cpu recursion|bad magic|wrong owner|wrong CPU|trylock failure on UP)",
         "BUG: {lock} {what} in {func}",
         frames=Frames((CALL_TRACE, TRACE), skip=words("spin_", "_lock", "_unlock"))),
    # -- hangs and stalls (kernel/hung_task.c, kernel/watchdog*.c, kernel/rcu/tree_stall.h)
    _pat("hung_task", "hung_task",
         r"INFO: task .*blocked (?:in I/O wait )?for more than \d+ seconds",
         "INFO: task hung in {func}", frames=Frames((CALL_TRACE, TRACE), pick="hang")),
    _pat("hung_task", "hung_task", r"INFO: task .* can't die for more than .* seconds",
         "INFO: task can't die in {func}", frames=Frames((CALL_TRACE, TRACE),
                                                         skip=words("schedule"))),
    _pat("soft_lockup", "soft_lockup", r"BUG: soft lockup", "BUG: soft lockup in {func}",
         frames=_STALL),
    _pat("hard_lockup", "hard_lockup", r"Watchdog detected hard LOCKUP on cpu \d+",
         "BUG: hard lockup in {func}", frames=_STALL, cross_cpu=True),
    _pat("rcu_stall", "rcu_stall",
         r"INFO: rcu_\w+ (?:self-)?detected (?:expedited )?stalls?\b",
         "INFO: rcu detected stall in {func}",
         frames=Frames((re.compile("apic_timer_interrupt"), RIP, TRACE),
                       fallbacks=((re.compile("apic_timer_interrupt|Exception stack|el1h_64_irq"),
                                   TRACE), (RIP, CALL_TRACE, TRACE)),
                       skip=words("apic_timer_interrupt", "rcu"), pick="stall"),
         cross_cpu=True, max_lines=400),
    _pat("workqueue_lockup", "bug", r"BUG: workqueue lockup\b", "BUG: workqueue lockup"),
    _pat("workqueue_leak", "bug", r"BUG: workqueue leaked lock or atomic",
         "BUG: workqueue leaked lock or atomic in {lastfn}",
         details=[r"last function: (?P<lastfn>\w+)"]),
    # -- memory management (mm/page_alloc.c, mm/memory.c, mm/kmemleak.c, mm/slub.c)
    _pat("bad_page", "bad_page", r"BUG: Bad page (?P<what>state|cache)",
         "BUG: Bad page {what} in {func}",
         frames=Frames((re.compile("page last allocated"), TRACE), fallbacks=((CALL_TRACE, TRACE),),
                       skip=words("(?:free|put|get|update|release)_page", "free_unref",
                                  "^_*folio", "truncate_inode_pages", "page_frag_free", "alloc",
                                  "vmap", "page_owner", "bad_page", "dump_page", "free_pages",
                                  "free_pcp", "free_tail"))),
    _pat("bad_page", "bad_page", r"BUG: Bad page map", "BUG: Bad page map"),
    # One line per counter, no trace.
    _pat("rss_counter", "bug", r"BUG: Bad rss-counter state", "BUG: Bad rss-counter state",
         max_lines=1),
    _pat("nr_ptes", "bug", r"BUG: non-zero (?P<what>nr_ptes|nr_pmds) on freeing mm",
         "BUG: non-zero {what} on freeing mm", max_lines=1),
    _pat("kmemleak", "kmemleak", r"unreferenced object 0x[0-9a-f]+ \(size \d+\):",
         "memory leak in {func}",
         frames=_LEAK),
    _pat("kmemleak", "kmemleak", r"BUG: memory leak", "memory leak in {func}",
         frames=_LEAK),
    # SLUB's slab_bug(): "BUG <cache> (<taint>): <what>", a '---' ruler, INFO: lines, dumps and
    # a stack. Old KASAN reports print one as their second part ("kasan: bad access detected").
    _pat("slab", "slab",
         r"BUG (?P<cache>\S+) \((?:Not tainted|Tainted:[^)]*)\): (?!kasan: )(?P<msg>.+)",
         "BUG: {msg}", absorbs=("slab_info", "info_text")),
    _pat("slab_info", "slab", _SLAB_INFO, "INFO: {what} in {func}", frames=Frames((HEADER,)),
         absorbs=("slab_info", "info_text")),
    _pat("panic", "panic",
         r"Kernel panic - not syncing: stack-protector: Kernel stack is corrupted in: {FUNC}",
         "kernel panic: stack is corrupted in {func}",
         frames=Frames((HEADER,), fallbacks=((CALL_TRACE, TRACE),), skip=words("stack_chk")),
         end=r"^---\[ end Kernel panic"),
    _pat("panic", "panic", r"Kernel panic - not syncing: corrupted stack end",
         "kernel panic: corrupted stack end in {func}",
         frames=Frames((CALL_TRACE, TRACE), skip=words("schedule", "retint_kernel"),
                       pick="stall"), end=r"^---\[ end Kernel panic"),
    _pat("panic", "panic", r"Kernel panic - not syncing: kernel stack overflow",
         "kernel stack overflow in {func}",
         frames=Frames((CALL_TRACE, TRACE), skip=words("bad_stack"), pick="stall"),
         end=r"^---\[ end Kernel panic"),
    _pat("panic", "panic", r"Kernel panic - not syncing: Attempted to kill init!",
         "kernel panic: Attempted to kill init!", end=r"^---\[ end Kernel panic"),
    _pat("panic", "panic", r"Kernel panic - not syncing: Couldn't open N_TTY ldisc",
         "kernel panic: Couldn't open N_TTY ldisc", end=r"^---\[ end Kernel panic"),
    # "Fatal exception" and "Fatal exception in interrupt" end an oops: one title for both.
    _pat("panic", "panic", r"Kernel panic - not syncing: Fatal exception",
         "kernel panic: Fatal exception", end=r"^---\[ end Kernel panic"),
    _pat("panic", "panic", r"Kernel panic - not syncing: (?P<msg>.*)", "kernel panic: {msg}",
         end=r"^---\[ end Kernel panic"),
    # The unwinder's own complaints (arch/x86/kernel/unwind_frame.c): no trace follows.
    _pat("unwinder", "warning",
         r"WARNING: kernel stack regs at \w+ in \S* has bad '(?P<reg>[^']+)' value",
         "WARNING: kernel stack regs has bad '{reg}' value", max_lines=1),
    _pat("unwinder", "warning", r"WARNING: kernel stack frame pointer at \w+ in \S* has bad value",
         "WARNING: kernel stack frame pointer has bad value", max_lines=1),
    # -- catch-alls (LKP's "^BUG: .*" and "WARNING: .*"), after every specific row; a WARNING:
    # or INFO: line is only a report with a stack trace after it.
    _pat("lockdep", "lockdep", r"WARNING: (?P<msg>.*\b(?:locks?|locking|RCU)\b.*)",
         "WARNING: {msg}", needs_trace=True),
    _pat("warning_text", "warning", r"WARNING: (?P<msg>\S.*)", "WARNING: {msg}", needs_trace=True),
    _pat("info_text", "bug", r"INFO: (?P<msg>\S.*)", "INFO: {msg}", needs_trace=True),
    _pat("bug_text", "bug", r"BUG: (?P<msg>\S.*)", "BUG: {msg}"),
)

# Benign lines that a row would report. Matched (re.search) against titles, like the `ignore`
# argument of scan_kernel_log. Each entry needs a reason.
IGNORE: tuple[tuple[str, str], ...] = (
    (r"^WARNING: The mand mount option has been deprecated",
     "fs/namespace.c: a deprecation notice printed when userspace mounts with -o mand; the "
     "option is ignored, nothing is wrong in the kernel"),
    (r"^WARNING: fbcon: Driver '.*' missed to adjust virtual screen size",
     "drivers/video/fbdev/core/fbcon.c: a pr_warn() about a display driver, no WARN()"),
    (r"^WARNING: (?:Unprivileged eBPF is enabled|See https|kernel not compiled with CPU_SRSO)",
     "arch/x86/kernel/cpu/bugs.c: mitigation notices printed with pr_warn(), no WARN()"),
    (r"^INFO: (?:lockdep is turned off|Stall ended before state dump start|NMI handler)",
     "lockdep and the NMI code: notices, the report they follow (if any) is its own finding"),
)

# -- log line prefixes ----------------------------------------------------------------------------
# ANSI escape sequences (colour, cursor) and other control characters but tab.
_CTRL = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[()]\w|\x1b[=>78cDEHM]|[\x00-\x08\x0b-\x1f\x7f]")
# journalctl: "Nov 22 10:00:00 host ident[pid]: " or "2024-11-22T10:00:00+0000 host ident: "
_JOURNAL = re.compile(
    r"^(?:[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d(?:\.\d+)?"
    r"|\d{4}-\d\d-\d\dT[\d:.]+(?:[+-]\d\d:?\d\d|Z)?) \S+ (?P<ident>[^\s:\[]+)(?:\[\d+\])?: ")
_DEVKMSG = re.compile(r"^(?P<pri>\d+),\d+,\d+,[^;]*;")  # /dev/kmsg record: "6,1234,5678,-;"
_DMESG_X = re.compile(  # dmesg -x: "kern  :warn  : "
    r"^(?P<fac>kern|user|mail|daemon|auth|syslog|lpr|news|uucp|cron|authpriv|ftp|local\d)\s*:"
    r"(?:emerg|alert|crit|err|warn|notice|info|debug)\s*: ")
_SYSLOG_PRI = re.compile(r"^<(?P<pri>\d{1,3})>")
_DROPPED = re.compile(r"^\*\* \d+ printk messages dropped \*\*\s*")
# The first kernel timestamp on the line: text before it is userspace output that had no
# newline yet (a "login:" prompt), as syzkaller's consoleOutputRe allows.
_TIMESTAMP = re.compile(r"\[\s*\d+\.\d{6}\](?:\[\s*(?P<ctx>[TC]\d+)\])?\s?|^\[\s*\d+\.\d+\]\s?")
_LATE_TIMESTAMP = re.compile(r"\[\s*\d+\.\d{6}\]")
_CALLER = re.compile(r"^\[\s*(?P<ctx>[TC]\d+)\]\s?")
# kmemleak.verbose=1 prints its reports through pr_notice(), every line with this prefix.
_KMEMLEAK = re.compile(r"^kmemleak: (?=\s|unreferenced object)")
# Words some kernels print before a report header: lockdep's 4.x brackets, the pr_fmt prefixes
# of the watchdog, RCU and x86 traps ("traps: PANIC: double fault").
_HEADER_PREFIX = re.compile(r"\[ +|(?:NMI )?watchdog: |rcu: |traps: ")

# -- report anatomy -------------------------------------------------------------------------------
_FRAME = re.compile(
    r"^\s*(?:\[<?[0-9a-f]+>?\]\s*)*(?P<q>\?\s+)?(?:\[<?[0-9a-f]+>?\]\s*)*"
    r"(?P<func>[A-Za-z_][\w.]*)"
    r"(?:\+0x[0-9a-f]+/0x[0-9a-f]+(?:\s+\[[\w-]+\])?(?:\s+\S+:(?:\d+|\?))?(?:\s+\[inline\])?"
    r"|\s+[\w./-]+\.[chS]:\d+(?:\s+\[inline\])?)\s*$"
    r"|^\s*\[<?[0-9a-f]+>?\] \([\w.]+\) from ")
_TRACE_START = re.compile(r"^\s*(?:Call [Tt]race:|Backtrace:|(?:stack )?backtrace"
                          r"(?: \(crc [0-9a-f]+\))?:)")
# Lines that keep a finished call trace's report open: more frames, stack markers, register
# dumps, end markers, and another CPU's backtrace header.
_TRACEISH = re.compile("|".join(f"(?:{r})" for r in (
    r"^\s*</?(?:TASK|IRQ|NMI|SOFTIRQ)>\s*$", r"^\s*<EOI>",
    r"^(?:RIP|EIP|RSP|ESP|RAX|EAX|RBX|RCX|RDX|RSI|RDI|RBP|R\d\d?|FS|GS|CS|DS|ES|CR\d|DR\d|PKRU|"
    r"Code)\s*:",
    r"^---\[ end ", r"^Modules linked in:", r"^Kernel Offset:", r"^note: ",
    r"^NMI backtrace for cpu", r"^Sending NMI from CPU", r"^CPU: \d+ PID: ", r"^Hardware name: ",
)))
_NOISE = 3  # foreign lines tolerated inside a call trace before the report is over
_RIPISH = re.compile(r"^(?:RIP|EIP|NIP|pc|PC is at|epc)\s*:?\s")

# -- titles (syzkaller's pkg/report dynamic replacements: nothing that changes between boots) ---
_SANITIZE = (
    (re.compile(r"(?<![a-zA-Z0-9])(?:0x)?[0-9a-f]{6,}"), "ADDR"),
    (re.compile(r"\b\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}\b"), "IP"),
    (re.compile(r"(\.\w+)(?::\d+)+"), r"\1:LINE"),
    (re.compile(r"([a-zA-Z][a-zA-Z0-9_.]+)\+0x[0-9a-z]+/0x[0-9a-z]+"), r"\1"),
    (re.compile(r"CPU#\d+"), "CPU"),
    (re.compile(r"(?<=\W)\d+(?=\W|$)|^\d+(?=\W|$)"), "NUM"),
    (re.compile(r"\d{7,}"), "NUM"),
)
_SRC_LINE = re.compile(r"(?::\d+)+$")
_SUFFIX = re.compile(r"(?<=\w)(?:\.(?:cold|isra|constprop|part|lto_priv|llvm|localalias|"
                     r"specialized|clone)(?:\.\d+)?)+")


def _header_regex() -> re.Pattern[str]:
    """All start regexes in one: most lines are rejected with one match() call."""
    parts = [re.sub(r"\(\?P<\w+>", "(?:", p.start.pattern) for p in PATTERNS]
    return re.compile(f"(?:{_HEADER_PREFIX.pattern})?(?:" + "|".join(f"(?:{p})" for p in parts)
                      + ")")


_ANY_HEADER = _header_regex()
# Reports that interrupt another one without ending it (syzkaller's reportStartIgnores).
_INTERJECTIONS = {"panic", "double_fault", "invalid_opcode", "netdev_wait"}
_EMBEDDED_HEADER = re.compile(r"general protection fault|BUG: (?:KASAN|KMSAN|KFENCE|unable|kernel "
                              r"NULL|soft lockup)|Kernel panic - not syncing|kernel BUG at|"
                              r"WARNING: CPU: \d+ PID: |Unable to handle kernel|divide error: |"
                              r"invalid opcode: ")
_IGNORE_RES = tuple(re.compile(rx) for rx, _why in IGNORE)


@dataclass
class _Line:
    no: int  # 1-based line number in the scanned text
    text: str  # prefixes stripped
    origin: str  # "kernel", "user" or "" (unknown)
    ctx: str  # printk caller id ("T123", "C0") or ""


def _strip_prefixes(raw: str) -> list[tuple[str, str, str]]:
    """(text, origin, ctx) of each printk on a console line: usually one; two printks that
    reached the console as one line ("...persistence[   12.000002] general protection...")
    are split at the second one's timestamp."""
    s = raw.rstrip("\r")
    if "\r" in s:  # a terminal shows what follows the last carriage return
        s = s.rsplit("\r", 1)[1]
    s = _CTRL.sub("", s)
    origin = ""
    if m := _JOURNAL.match(s):
        origin = "kernel" if m["ident"] == "kernel" else "user"
        s = s[m.end():]
    if m := _DEVKMSG.match(s):
        origin = origin or ("kernel" if int(m["pri"]) < 8 else "user")
        s = s[m.end():]
    if m := _DMESG_X.match(s):
        origin = origin or ("kernel" if m["fac"] == "kern" else "user")
        s = s[m.end():]
    if m := _SYSLOG_PRI.match(s):
        origin = origin or ("kernel" if int(m["pri"]) < 8 else "user")
        s = s[m.end():]
    s = _DROPPED.sub("", s)
    ctx = ""
    if m := _TIMESTAMP.search(s):
        origin = origin or "kernel"
        ctx = m["ctx"] or ""
        s = s[m.end():]
        if (found := _LATE_TIMESTAMP.search(s)) is not None:
            parts = [(s[:found.start()], origin, ctx)]
            stamps = list(_TIMESTAMP.finditer(s, found.start()))
            for i, m in enumerate(stamps):
                end = stamps[i + 1].start() if i + 1 < len(stamps) else len(s)
                parts.append((s[m.end():end], origin, m["ctx"] or ctx))
            return [(_KMEMLEAK.sub("", t), o, c) for t, o, c in parts]
    if not ctx and (m := _CALLER.match(s)):
        origin = origin or "kernel"
        ctx = m["ctx"]
        s = s[m.end():]
    return [(_KMEMLEAK.sub("", s), origin, ctx)]


def _prepare(text: str) -> list[_Line]:
    out = []
    for no, raw in enumerate(text.split("\n"), 1):
        out.extend(_Line(no, s, origin, ctx) for s, origin, ctx in _strip_prefixes(raw))
    return out


def _match_header(text: str) -> tuple[Pattern, re.Match[str]] | None:
    if _ANY_HEADER.match(text):
        candidates = [text]
        if m := _HEADER_PREFIX.match(text):
            candidates.insert(0, text[m.end():])
        for body in candidates:
            for pat in PATTERNS:
                if m := pat.start.match(body):
                    return pat, m
    # A header glued to the end of another printk without its own timestamp ("...user
    # memory accessgeneral protection fault: 0000 [#1]"): only the unmistakable ones, and
    # not in the end marker that repeats a panic's message.
    if text.startswith("---[ end"):
        return None
    for found in _EMBEDDED_HEADER.finditer(text, 1):
        body = text[found.start():]
        for pat in PATTERNS:
            if m := pat.start.match(body):
                return pat, m
    return None


@dataclass
class _Report:
    pat: Pattern
    match: re.Match[str]
    lines: list[_Line]
    pending: list[_Line] = field(default_factory=list)  # foreign-looking lines after a trace
    in_trace: bool = False
    frames: int = 0  # frames seen since the last "Call Trace:"
    armed: bool = True  # the row's `end` counts (after its `end_after` line)

    def __post_init__(self) -> None:
        self.armed = self.pat.end_after is None

    @property
    def ctx(self) -> str:
        return self.lines[0].ctx

    def takes_context(self, ln: _Line) -> bool:
        if not self.ctx or not ln.ctx or ln.ctx == self.ctx:
            return True
        return self.pat.cross_cpu and self.ctx[0] == ln.ctx[0] == "C"

    def add(self, ln: _Line) -> None:
        self.lines.extend(self.pending)
        self.pending.clear()
        self.lines.append(ln)

    def feed(self, ln: _Line) -> bool:
        """Add a non-header line; False when the report ended before it."""
        if len(self.lines) + len(self.pending) >= self.pat.max_lines:
            return False
        text = ln.text
        if not self.armed and self.pat.end_after.search(text):
            self.armed = True
        if self.armed and self.pat.end and self.pat.end.search(text):
            self.add(ln)
            return False
        if self.pat.multi_trace:
            self.add(ln)
            return True
        if _TRACE_START.match(text):
            self.in_trace, self.frames = True, 0
            self.add(ln)
            return True
        if self.in_trace and self.frames:
            if _FRAME.match(text) or _TRACEISH.search(text):
                self.frames += 1
                self.add(ln)
                return True
            # Maybe another CPU's line inside our trace: keep it aside until the trace resumes.
            self.pending.append(ln)
            return len(self.pending) <= _NOISE
        if self.in_trace and _FRAME.match(text):
            self.frames += 1
        self.add(ln)
        return True

    def refine(self, pat: Pattern, m: re.Match[str], ln: _Line) -> None:
        self.pat, self.match = pat, m
        self.add(ln)

    def has_trace(self) -> bool:
        return any(_TRACE_START.match(ln.text) or _RIPISH.match(ln.text) for ln in self.lines)

    def finding(self, continued_by: _Report | None = None) -> Finding:
        """`continued_by`: a report that interrupted this one right after its header (4.x's
        panic_on_warn panics before the WARN's trace; another CPU's double fault): the
        lines after it hold this report's stack too."""
        lines = [ln.text for ln in self.lines]
        if continued_by is not None and continued_by.pat.name in _INTERJECTIONS and \
                continued_by.lines[0].no - self.lines[-1].no <= 3:
            lines += [ln.text for ln in continued_by.lines]
        title, func = _title(self.pat, self.match, lines)
        return Finding(self.pat.kind, title, self.lines[0].no,
                       "\n".join(ln.text for ln in self.lines), func)


def _collect(lines: list[_Line]) -> list[_Report]:
    prefixed = any(ln.origin == "kernel" for ln in lines)
    reports: list[_Report] = []
    # The report still taking lines in each printk context: with caller ids, two tasks'
    # reports printed at once are told apart ("" is the context of a log without them).
    open_: dict[str, _Report] = {}
    for ln in lines:
        if ln.origin == "user" or (prefixed and not ln.origin):
            continue  # userspace chatter
        hit = _match_header(ln.text)
        cur = open_.get(ln.ctx) or next(
            (r for r in open_.values() if r.takes_context(ln)), None)
        if hit is None:
            if cur is not None and not cur.feed(ln):
                del open_[cur.ctx]
            continue
        pat, m = hit
        if cur is not None and not cur.pending:  # pending: its trace looks finished
            if pat.name in cur.pat.absorbs:
                cur.add(ln)
                continue
            if cur.pat.name in pat.refines:
                cur.refine(pat, m, ln)
                continue
        if cur is not None and cur.ctx != ln.ctx:
            del open_[cur.ctx]  # a context-less report is over when a report with one starts
        report = _Report(pat, m, [ln])
        open_[ln.ctx] = report
        reports.append(report)
    return reports


# -- titles ---------------------------------------------------------------------------------------
def _sanitize(title: str) -> str:
    for rx, repl in _SANITIZE:
        title = rx.sub(repl, title)
    return title


def _title(pat: Pattern, m: re.Match[str], lines: Sequence[str]) -> tuple[str, str]:
    fields = {k: v or "" for k, v in m.groupdict().items()}
    text = "\n".join(lines)
    for rx in pat.details:
        found = rx.search(text)
        fields.update({k: (found[k] if found else "") or "" for k in rx.groupindex})
    func = pat.frames.function(lines, m) if pat.frames else ""
    if not func and pat.fallback == "func":
        func = _SUFFIX.sub("", fields.get("func", ""))
    fields["func"] = func or _SRC_LINE.sub("", fields.get(pat.fallback, ""))
    template = next((t for rx, t in pat.title_if if rx.search(text)), pat.title)
    title = template.format(**fields)
    title = _SUFFIX.sub("", title)
    title = " ".join(_sanitize(title).replace(" ()", " ").split())[:120]
    return re.sub(r"(?: in|:)$", "", title), func


# -- public API -----------------------------------------------------------------------------------
def scan_kernel_log(text: str, *, ignore: Iterable[str] = ()) -> list[Finding]:
    """Kernel reports in `text`, in log order; `ignore`: regexes (re.search) dropping titles."""
    extra = tuple(re.compile(rx) for rx in ignore)
    findings = []
    reports = _collect(_prepare(text))
    for i, report in enumerate(reports):
        if report.pat.needs_trace and not report.has_trace():
            continue
        f = report.finding(reports[i + 1] if i + 1 < len(reports) else None)
        if not any(rx.search(f.title) for rx in _IGNORE_RES + extra):
            findings.append(f)
    return findings


def first_panic(text: str) -> Finding | None:
    """The first ``Kernel panic - not syncing`` report in `text`: what ended the guest."""
    return next((f for f in scan_kernel_log(text) if f.kind == "panic"), None)


def split_expected(findings: Iterable[Finding],
                   expected_titles: Iterable[str]) -> tuple[list[Finding], list[Finding]]:
    """(unexpected, expected): a title is expected if it equals one of `expected_titles` or
    fullmatches it as a regex."""
    patterns = []
    for t in expected_titles:
        try:
            patterns.append((t, re.compile(t)))
        except re.error:
            patterns.append((t, None))
    unexpected: list[Finding] = []
    expected: list[Finding] = []
    for f in findings:
        hit = any(f.title == t or (rx is not None and rx.fullmatch(f.title)) for t, rx in patterns)
        (expected if hit else unexpected).append(f)
    return unexpected, expected


def dedupe(findings: Iterable[Finding]) -> list[Finding]:
    """The first finding of each (kind, title)."""
    seen: set[tuple[str, str]] = set()
    out = []
    for f in findings:
        if (f.kind, f.title) not in seen:
            seen.add((f.kind, f.title))
            out.append(f)
    return out
