"""Find kernel bug reports (oopses, WARNINGs, sanitizer reports, lockups, panics) in a kernel log.

``scan_kernel_log(text)`` reads console output, ``dmesg`` output or a journal excerpt and returns
one :class:`Finding` per kernel report, in log order. The recognised reports are rows of
``PATTERNS`` below, modelled on syzkaller's pkg/report/linux.go and LKP's etc/oops-pattern, with
formats checked against the kernel's own documentation (dev-tools/kasan, kfence, kcsan, kmsan,
ubsan; locking/lockdep-design; RCU/stallwarn).

Title rules
-----------
A title is "<report type> in <first meaningful function>" and must be stable across boots: it
never holds addresses, ``+0x1f/0x40`` offsets, pids, CPU numbers or timestamps.

* FUNC, the first meaningful function, is looked for in the places a row lists, in order:
  ``header`` (the function printed in the report's first line: WARNING, KASAN, KFENCE, KMSAN),
  ``rip`` (``RIP: 0010:func+0x1f/0x40 [mod]``), ``at`` (the lock site printed after a lockdep
  marker such as "is trying to acquire lock:") and ``trace`` (the frames after "Call Trace:").
  Generic frames are passed over (``_SKIP``: dump_stack, __warn, report_bug, kasan_*, ubsan_*,
  panic, lock_acquire, schedule, mutex_lock*, wait_for_completion*, memcpy, ... plus a row's own
  ``skip``), and so are unreliable ``? func`` frames. Module tags (``[nd_pmem]``) and compiler
  suffixes (``.cold``, ``.isra.0``, ``.constprop.0``, ``.part.0``) are dropped. When no function
  is found the title simply ends before " in".
* Oopses: "<the header's own words, up to its address or error code> in FUNC", FUNC from RIP:
    ``BUG: unable to handle page fault for address: ffffea0004000034``
        -> ``BUG: unable to handle page fault in unpin_user_page_range_dirty_lock``
    ``BUG: kernel NULL pointer dereference, address: 0000000000000008``
        -> ``BUG: kernel NULL pointer dereference in dax_disassociate_entry``
    ``general protection fault, probably for non-canonical address 0x...: 0000 [#1] ...``
        -> ``general protection fault in FUNC`` (kind ``gpf``)
    ``kernel BUG at mm/filemap.c:1616!`` -> ``BUG: kernel BUG in FUNC`` (kind ``bug``)
    ``Oops: 0000 [#1] ...`` with no ``BUG:`` line before it -> ``Oops in FUNC``
* Other kinds, by example:
    ``WARNING in FUNC``                       ``refcount_t: underflow; use-after-free in FUNC``
    ``KASAN: use-after-free Read in FUNC``    ``KFENCE: use-after-free read in FUNC``
    ``KMSAN: uninit-value in FUNC``           ``KCSAN: data-race in FUNC1 / FUNC2``
    ``UBSAN: shift-out-of-bounds in FUNC`` (or in the source file when no trace names one)
    ``possible circular locking dependency in FUNC`` and the other lockdep reports, FUNC being
    the lock site lockdep prints    ``INFO: task hung in FUNC``    ``BUG: soft lockup in FUNC``
    ``BUG: hard lockup in FUNC``    ``INFO: rcu detected stall in FUNC``
    ``BUG: sleeping function called from invalid context in FUNC``    ``list_del corruption in
    FUNC``    ``memory leak in FUNC``    ``BUG: Bad page state (nonzero mapcount)``
* Free text (panic messages, unknown ``BUG:``/``WARNING:`` lines, KCSAN's function list) is
  normalised: hex numbers (``0x...`` or 8+ hex digits) become ``ADDR``, other numbers ``NUM``:
    ``Kernel panic - not syncing: VFS: Unable to mount root fs on unknown-block(0,0)``
        -> ``panic: VFS: Unable to mount root fs on unknown-block(NUM,NUM)``
  Fixed kernel wording keeps its digits ("refcount_t: addition on 0", "fs/9p/..."), and any
  title still holding a hex number gets ``ADDR`` as a last safety net.

Report boundaries
-----------------
A report starts at its header line (``Finding.line``, 1-based) and runs to the row's ``end``
marker, or else to the end of its call trace (plus trailers such as ``---[ end trace ... ]---``,
register dumps and ``Modules linked in:``), or to the next report's header, whichever is first.
Headers a row ``absorbs`` continue it instead (the ``Oops:`` line after ``BUG: unable to
handle...``; the ``WARNING:`` that ``refcount_t:`` and list corruption are printed with), and a
row that ``refines`` another takes over that report when its line turns up inside it, so a
refcount warning is one ``refcount`` finding, not a ``warning`` too. A ``Kernel panic`` line is
always a finding of its own, even inside another report: a panic ends the guest and callers look
for ``kind == "panic"`` to name the crash.

Log formats: timestamps ``[   12.345678]``, printk caller ids ``[T123]``/``[C0]``, syslog ``<4>``,
``dmesg -x`` (``kern  :warn  : ``), journal (``Nov 22 10:00:00 host kernel: ``), ``/dev/kmsg``
records, ``\\r`` and ANSI escapes. In a log where some lines carry a kernel prefix, lines without
one are userspace chatter: they never start a report and are left out of reports. With caller ids,
a report only takes lines from its own printk context (any CPU context, for RCU stalls and hard
lockups whose backtraces come from NMIs on other CPUs). Dumps that are not bug reports (sysrq
``w``/``t``/``l``, "Showing all locks held") have no header in ``PATTERNS`` and give nothing.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

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
    "list_corruption", "kmemleak", "sleep_in_atomic",
)


@dataclass(frozen=True)
class Finding:
    kind: str  # one of KINDS
    title: str  # stable across boots, see the module docstring
    line: int  # 1-based line of the report's header in the scanned text
    text: str  # the report's lines, prefixes stripped

    def to_json(self) -> dict:
        return {"kind": self.kind, "title": self.title, "line": self.line}


@dataclass(frozen=True)
class Pattern:
    """One row of PATTERNS: how to recognise a report, where it ends and how to title it."""

    name: str  # report type; variants of one type share it; used by absorbs/refines
    kind: str
    start: re.Pattern[str]  # re.match-ed against the prefix-stripped line
    title: str  # str.format template: start's named groups, details, {func}
    funcs: tuple[str, ...] = ("rip", "trace")  # where {func} comes from, see the docstring
    skip: re.Pattern[str] | None = None  # frames to pass over besides _SKIP
    at: re.Pattern[str] | None = None  # lockdep marker whose next lines hold the lock site
    details: tuple[re.Pattern[str], ...] = ()  # one named group each, searched in the report
    fallback: str = ""  # start group for {func} when no function is found (a source file)
    end: re.Pattern[str] | None = None  # the report's last line
    multi_trace: bool = False  # several traces (sanitizers): only `end` closes the report
    bare_frames: bool = False  # frames follow the header without a "Call Trace:" line
    cross_cpu: bool = False  # takes lines from every CPU context (NMI backtraces)
    free_text: tuple[str, ...] = ()  # start groups holding arbitrary text: numbers -> NUM
    absorbs: tuple[str, ...] = ()  # pattern names that continue this report
    refines: tuple[str, ...] = ()  # pattern names whose report this row takes over
    max_lines: int = 300


_FUNC = r"(?P<func>[A-Za-z_][\w.]*)(?:\+0x[0-9a-f]+/0x[0-9a-f]+)?"
_EQ = r"^={20,}\s*$"  # sanitizers print a ruler of '=' before and after a report
_END_TRACE = r"^---\[ end trace"  # print_oops_end_marker()


def _alt(*regexes: str) -> str:
    return "|".join(f"(?:{r})" for r in regexes)


def _pat(name: str, kind: str, start: str, title: str, *, skip: str = "", at: str = "",
         details: Sequence[str] = (), end: str = "", **kw) -> Pattern:
    return Pattern(
        name=name, kind=kind, start=re.compile(start.replace("{FUNC}", _FUNC)), title=title,
        skip=re.compile(skip) if skip else None, at=re.compile(at) if at else None,
        details=tuple(re.compile(d, re.M) for d in details),
        end=re.compile(end) if end else None, **kw)


# Frames to pass over, per report type (the generic list is _SKIP, after the table).
_FREE = _alt(r"k?v?free\w*", r"_*kmem_cache_free\w*", r"_*slab_free\w*", r"do_slab_free",
             r"vunmap\w*", r"kfree_\w+", r"__free_\w+")
_ALLOC = _alt(r"_*k[mzc]alloc\w*", r"krealloc\w*", r"_*kv[mz]alloc\w*", r"_*v[mz]?alloc\w*",
              r"_*kmem_cache_alloc\w*", r"_*slab_\w+", r"_*kmemleak_\w+", r"create_object\w*",
              r"kstrn?dup\w*", r"kmemdup\w*", r"kv?asprintf", r"_*alloc_pages\w*",
              r"__get_free_pages", r"mempool_alloc\w*", r"_*alloc_percpu\w*", r"pcpu_alloc",
              r"might_alloc")
_IRQ = _alt(r"_*nmi_\w+", r"\w+_nmi", r"\w*hrtimer\w*", r"tick_\w+", r"update_process_times",
            r"watchdog_\w+", r"_*irq_\w+", r"handle_\w*irq\w*", r"do_idle", r"cpu_startup_entry",
            r"default_idle\w*", r"arch_cpu_idle\w*", r"cpuidle_\w+", r"native_safe_halt",
            r"start_secondary", r"secondary_startup\w*", r"smp_call_function\w*")
_RCU = _alt(r"_*rcu_\w+", _IRQ)
_LOCKDEP_AT = r"(?:(?:is trying to acquire|just changed the state of) lock:|takes:)\s*$"

PATTERNS: tuple[Pattern, ...] = (
    # -- sanitizers: '====' ruler, then several traces (access, alloc, free), then '===='
    _pat("kasan", "kasan", r"BUG: KASAN: (?P<type>[\w-]+) in {FUNC}",
         "KASAN: {type} {access} in {func}", funcs=("header", "trace"), skip=_FREE,
         details=[r"^(?P<access>Read|Write) of size"], end=_EQ, multi_trace=True),
    _pat("kfence", "kfence", r"BUG: KFENCE: (?P<type>[\w -]+?) in {FUNC}",
         "KFENCE: {type} in {func}", funcs=("header", "trace"), bare_frames=True, end=_EQ,
         multi_trace=True),
    _pat("kmsan", "kmsan", r"BUG: KMSAN: (?P<type>[\w-]+) in {FUNC}", "KMSAN: {type} in {func}",
         funcs=("header", "trace"), bare_frames=True, end=_EQ, multi_trace=True),
    # KCSAN names both racing functions in its header, already in a stable order.
    _pat("kcsan", "kcsan", r"BUG: KCSAN: (?P<msg>.+)", "KCSAN: {msg}", funcs=(), end=_EQ,
         multi_trace=True, free_text=("msg",)),
    _pat("ubsan", "ubsan", r"UBSAN: (?P<type>[\w -]+?) in (?P<src>\S+)", "UBSAN: {type} in {func}",
         funcs=("trace",), fallback="src", end=_EQ, multi_trace=True),
    # -- oopses (arch/x86/mm/fault.c, traps.c); an "Oops: ... [#1]" line follows the BUG: line
    _pat("page_fault", "oops",
         r"BUG: (?P<msg>unable to handle (?:page fault|kernel paging request|kernel NULL pointer "
         r"dereference)|kernel NULL pointer dereference|kernel tried to execute NX-protected page"
         r"|(?:TASK )?stack guard page was hit)\b",
         "BUG: {msg} in {func}", absorbs=("oops_marker",), end=_END_TRACE),
    _pat("gpf", "gpf", r"(?:Oops: )?general protection fault\b",
         "general protection fault in {func}", absorbs=("oops_marker",), end=_END_TRACE),
    _pat("gpf", "gpf", r"(?:Oops: )?stack segment: \w+ \[#\d+\]",
         "stack segment fault in {func}", end=_END_TRACE),
    _pat("invalid_opcode", "oops", r"(?:Oops: )?invalid opcode: \w+ \[#\d+\]",
         "invalid opcode in {func}", end=_END_TRACE),
    _pat("divide_error", "oops", r"(?:Oops: )?divide error: \w+ \[#\d+\]",
         "divide error in {func}", end=_END_TRACE),
    _pat("double_fault", "oops", r"PANIC: double fault", "PANIC: double fault in {func}",
         end=_END_TRACE),
    _pat("oops_marker", "oops", r"Oops: .*\[#\d+\]", "Oops in {func}", end=_END_TRACE),
    # BUG() prints "kernel BUG at", then traps as "invalid opcode".
    _pat("kernel_bug", "bug", r"kernel BUG at (?P<src>\S+?):\d+!?", "BUG: kernel BUG in {func}",
         fallback="src", absorbs=("invalid_opcode", "oops_marker"), end=_END_TRACE),
    # -- WARN(): 6.1 format, 6.12+ format, pre-4.x format
    _pat("warning", "warning", r"WARNING: CPU: \d+ PID: \d+ at (?:(?P<src>\S+):\d+ )?{FUNC}",
         "WARNING in {func}", funcs=("header", "rip", "trace"), end=_END_TRACE),
    _pat("warning", "warning", r"WARNING: (?P<src>\S+):\d+ at {FUNC}, CPU#\d+",
         "WARNING in {func}", funcs=("header", "rip", "trace"), end=_END_TRACE),
    _pat("warning", "warning", r"WARNING: at (?:(?P<src>\S+):\d+ )?{FUNC}",
         "WARNING in {func}", funcs=("header", "rip", "trace"), end=_END_TRACE),
    # Reports printed as the message of a WARN() or BUG(): the message names the bug, the
    # WARNING:/kernel BUG lines around it belong to the same report.
    _pat("refcount", "refcount", r"refcount_t: (?P<msg>[^.]+)", "refcount_t: {msg} in {func}",
         skip=r"_*refcount_\w+", absorbs=("warning",), refines=("warning",), end=_END_TRACE),
    _pat("list_corruption", "list_corruption",
         r"(?P<op>list_add|list_del|list_replace|list_move)\s*(?P<what>corruption|double add)",
         "{op} {what} in {func}", skip=r"_*list_\w+",
         absorbs=("warning", "kernel_bug", "invalid_opcode", "oops_marker"),
         refines=("warning", "kernel_bug"), end=_END_TRACE),
    _pat("busy_inodes", "bug",
         r"VFS: Busy inodes after unmount of [^\s.(]+\.?(?: \((?P<fs>[^)\s]+)\))?",
         "VFS: Busy inodes after unmount ({fs})", funcs=(),
         absorbs=("warning", "kernel_bug", "invalid_opcode", "oops_marker"), refines=("warning",),
         end=_END_TRACE),
    _pat("dentry_in_use", "bug",
         r"BUG: Dentry .* still in use \(\d+\) \[unmount of (?P<fs>\S+) \S+\]",
         "BUG: Dentry still in use [unmount of {fs}]", funcs=(), absorbs=("warning",),
         refines=("warning",), end=_END_TRACE),
    # -- lockdep (Documentation/locking/lockdep-design.rst): FUNC is the lock site it prints
    _pat("lockdep", "lockdep", r"WARNING: possible circular locking dependency detected",
         "possible circular locking dependency in {func}", funcs=("at", "trace"), at=_LOCKDEP_AT),
    _pat("lockdep", "lockdep", r"WARNING: possible recursive locking detected",
         "possible recursive locking in {func}", funcs=("at", "trace"), at=_LOCKDEP_AT),
    _pat("lockdep", "lockdep", r"WARNING: inconsistent lock state",
         "inconsistent lock state in {func}", funcs=("at", "trace"), at=_LOCKDEP_AT),
    _pat("lockdep", "lockdep", r"WARNING: possible irq lock inversion dependency detected",
         "possible irq lock inversion in {func}", funcs=("at", "trace"), at=_LOCKDEP_AT),
    _pat("lockdep", "lockdep", r"WARNING: (?P<a>\w+)-safe -> (?P<b>\w+)-unsafe lock order detected",
         "{a}-safe -> {b}-unsafe lock order in {func}", funcs=("at", "trace"),
         at=r"is trying to acquire:\s*$"),
    _pat("lockdep", "lockdep", r"WARNING: bad unlock balance detected!",
         "bad unlock balance in {func}", funcs=("at", "trace"), at=r"is trying to release lock"),
    _pat("lockdep", "lockdep", r"WARNING: held lock freed!", "held lock freed in {func}",
         funcs=("at", "trace"), at=r"with a lock still held there!"),
    _pat("lockdep", "lockdep", r"WARNING: lock held when returning to user space!",
         "lock held when returning to user space in {func}", funcs=("at",),
         at=r"leaving the kernel with locks still held"),
    _pat("lockdep", "lockdep", r"WARNING: \S+ still has locks held!",
         "still has locks held in {func}", funcs=("at", "trace"), at=r"\blocks? held by\b"),
    _pat("lockdep", "lockdep", r"WARNING: suspicious RCU usage", "suspicious RCU usage in {func}",
         funcs=("trace",), skip=r"_*rcu_\w+"),
    _pat("lockdep", "lockdep", r"INFO: trying to register non-static key",
         "INFO: trying to register non-static key in {func}", funcs=("trace",),
         skip=r"register_lock_class"),
    # -- sleeping in atomic context, preemption and spinlock debugging
    _pat("sleep_in_atomic", "sleep_in_atomic",
         r"BUG: sleeping function called from invalid context",
         "BUG: sleeping function called from invalid context in {func}", funcs=("trace",),
         skip=_ALLOC),
    _pat("sleep_in_atomic", "sleep_in_atomic", r"BUG: scheduling while atomic",
         "BUG: scheduling while atomic in {func}", funcs=("trace",), skip=r"__schedule_bug"),
    _pat("preemptible", "bug",
         r"BUG: using (?P<op>smp_processor_id|_*this_cpu_\w+)\(\) in preemptible",
         "BUG: using {op}() in preemptible code in {func}", funcs=("trace",),
         skip=r"check_preemption_disabled|debug_smp_processor_id|__this_cpu_preempt_check"),
    _pat("spinlock", "bug",
         r"BUG: spinlock (?P<what>lockup suspected|already unlocked|recursion|bad magic|"
         r"wrong owner|wrong CPU)",
         "BUG: spinlock {what} in {func}", funcs=("trace",), skip=r"spin_\w+"),
    # -- hangs and stalls
    _pat("hung_task", "hung_task", r"INFO: task .+:\d+ blocked for more than \d+ seconds",
         "INFO: task hung in {func}", funcs=("trace",)),
    _pat("soft_lockup", "soft_lockup", r"(?:watchdog: )?BUG: soft lockup - CPU#\d+ stuck for",
         "BUG: soft lockup in {func}", skip=_IRQ),
    _pat("hard_lockup", "hard_lockup",
         r"(?:NMI watchdog: )?Watchdog detected hard LOCKUP on cpu \d+",
         "BUG: hard lockup in {func}", skip=_IRQ, cross_cpu=True),
    _pat("rcu_stall", "rcu_stall",
         r"(?:rcu: )?INFO: rcu_\w+ (?:self-)?detected (?:expedited )?stalls?\b",
         "INFO: rcu detected stall in {func}", skip=_RCU, cross_cpu=True, max_lines=400),
    _pat("workqueue_lockup", "bug", r"BUG: workqueue lockup\b", "BUG: workqueue lockup",
         funcs=()),
    _pat("workqueue_leak", "bug", r"BUG: workqueue leaked lock or atomic",
         "BUG: workqueue leaked lock or atomic in {lastfn}", funcs=(),
         details=[r"last function: (?P<lastfn>\w+)"]),
    # -- memory management
    _pat("bad_page", "bad_page", r"BUG: Bad page state in process",
         "BUG: Bad page state ({reason})", funcs=(),
         details=[r"^page dumped because: (?P<reason>.+?)\s*$"]),
    _pat("bad_page", "bad_page", r"BUG: Bad page map in process", "BUG: Bad page map", funcs=()),
    # One line per counter, no trace.
    _pat("rss_counter", "bug", r"BUG: Bad rss-counter state", "BUG: Bad rss-counter state",
         funcs=(), max_lines=1),
    _pat("kmemleak", "kmemleak", r"unreferenced object 0x[0-9a-f]+ \(size \d+\):",
         "memory leak in {func}", funcs=("trace",), skip=_ALLOC),
    _pat("panic", "panic", r"Kernel panic - not syncing: (?P<msg>.*)", "panic: {msg}", funcs=(),
         free_text=("msg",), end=r"^---\[ end Kernel panic"),
    # -- catch-alls (LKP's "^BUG: .*" and "WARNING: .*"), after every specific row
    _pat("lockdep", "lockdep", r"WARNING: (?P<msg>.*\b(?:locks?|locking|RCU)\b.*)",
         "WARNING: {msg}", funcs=(), free_text=("msg",)),
    _pat("warning_text", "warning", r"WARNING: (?P<msg>\S.*)", "WARNING: {msg}", funcs=(),
         free_text=("msg",)),
    _pat("bug_text", "bug", r"BUG: (?P<msg>\S.*)", "BUG: {msg}", funcs=(), free_text=("msg",)),
)

# Benign lines that a row would report. Matched (re.search) against titles, like the `ignore`
# argument of scan_kernel_log. Each entry needs a reason.
IGNORE: tuple[tuple[str, str], ...] = (
    (r"^WARNING: The mand mount option has been deprecated",
     "fs/namespace.c: a deprecation notice printed when userspace mounts with -o mand; the "
     "option is ignored, nothing is wrong in the kernel"),
)

# Generic frames: report machinery, sanitizer runtimes, locking, sleeping, string/copy helpers,
# interrupt and syscall entry. None of them tells which code is at fault.
_SKIP = re.compile(_alt(
    r"_*dump_stack(?:_lvl)?", r"show_stack", r"show_trace_log_lvl", r"show_regs",
    r"sched_show_task",
    r"__warn", r"__warn_printk", r"warn_slowpath_\w+", r"report_bug", r"handle_bug",
    r"fixup_bug", r"(?:asm_)?exc_\w+", r"do_error_trap", r"do_trap", r"die", r"__die\w*",
    r"oops_\w+", r"page_fault_oops", r"kernelmode_fixup_or_oops",
    r"(?:do_)?(?:user|kern)_addr_fault", r"handle_page_fault", r"do_page_fault", r"__?bad_area\w*",
    r"panic", r"nmi_panic", r"check_panic_on_warn",
    r"_*kasan_\w+", r"__asan_\w+", r"__hwasan_\w+", r"print_report",
    r"print_address_description\w*", r"check_region_inline", r"check_memory_region\w*",
    r"_*kmsan_\w+", r"__msan_\w+", r"_*kcsan_\w+", r"__tsan_\w+", r"_*kfence_\w+",
    r"_*ubsan_\w+", r"instrument_\w+",
    r"_*lock_acquire\w*", r"lock_release", r"lock_acquired", r"lock_contended", r"_*lockdep_\w+",
    r"_raw_\w+", r"do_raw_\w+", r"__raw_\w+", r"(?:native_)?queued_\w+_slowpath",
    r"__pv_queued_\w+", r"__mutex_lock\w*", r"mutex_lock\w*", r"rwsem_down_\w+",
    r"down_read\w*", r"down_write\w*", r"down", r"__down\w*", r"down_(?:interruptible|killable|"
    r"timeout|trylock)", r"_*percpu_down_\w+", r"percpu_rwsem_wait", r"_*rt_mutex\w*",
    r"rtlock\w*", r"refcount_warn_saturate",
    r"_*might_sleep", r"__might_resched", r"_*might_fault",
    r"schedule", r"__schedule", r"schedule_(?:timeout\w*|preempt_disabled|hrtimeout\w*|idle)",
    r"preempt_schedule\w*", r"io_schedule\w*", r"wait_for_completion\w*", r"_*wait_for_common\w*",
    r"do_wait_for_common", r"bit_wait\w*", r"__wait_on_bit\w*", r"out_of_line_wait_on_bit\w*",
    r"wait_on_page_bit\w*", r"folio_wait_\w+", r"__folio_lock\w*", r"__wait_on_buffer",
    r"wait_woken", r"prepare_to_wait\w*", r"finish_wait",
    r"_*mem(?:cpy|move|set|cmp|chr)(?:_erms|_orig)?", r"str(?:n?len|n?cmp|n?cpy|scpy|lcpy|r?chr)",
    r"_?copy_(?:to|from)_user\w*", r"copy_user_\w+", r"rep_movs_alternative",
    r"asm_sysvec_\w+", r"_*sysvec_\w+", r"asm_common_interrupt", r"common_interrupt",
    r"entry_SYSCALL\w*", r"do_syscall_\w+", r"ret_from_fork\w*", r"kthread",
))

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
_CALLER = re.compile(r"^\[\s*(?P<ctx>[TC]\d+)\]\s?")
# kmemleak.verbose=1 prints its reports through pr_notice(), every line with this prefix.
_KMEMLEAK = re.compile(r"^kmemleak: (?=\s|unreferenced object)")

# -- report anatomy -------------------------------------------------------------------------------
_FRAME = re.compile(
    r"^\s*(?:\[<?[0-9a-f]+>?\]\s*)*(?P<q>\?\s+)?(?:\[<?[0-9a-f]+>?\]\s*)*"
    r"(?P<func>[A-Za-z_][\w.]*)"
    r"(?:\+0x[0-9a-f]+/0x[0-9a-f]+(?:\s+\[[\w-]+\])?(?:\s+\S+:(?:\d+|\?))?(?:\s+\[inline\])?"
    r"|\s+[\w./-]+\.[chS]:\d+(?:\s+\[inline\])?)\s*$")
_RIP = re.compile(r"^(?:RIP|EIP|IP|pc)\s*:\s*(?:[0-9a-f]{4}:)?(?:\[<[0-9a-f]+>\]\s*)*"
                  r"(?P<func>[A-Za-z_][\w.]*)\+0x[0-9a-f]+/0x[0-9a-f]+")
_AT_FUNC = re.compile(r"(?:\bat:\s*|^\s*)(?:\[<?[0-9a-f]+>?\]\s*)?"
                      r"(?P<func>[A-Za-z_][\w.]*)\+0x[0-9a-f]+/0x[0-9a-f]+")
_TRACE_START = re.compile(r"^\s*(?:Call [Tt]race:|(?:stack )?backtrace(?: \(crc [0-9a-f]+\))?:)")
# Lines that keep a finished call trace's report open: more frames, stack markers, register
# dumps, end markers, and another CPU's backtrace header.
_TRACEISH = re.compile(_alt(
    r"^\s*</?(?:TASK|IRQ|NMI|SOFTIRQ)>\s*$", r"^\s*<EOI>",
    r"^(?:RIP|EIP|RSP|ESP|RAX|EAX|RBX|RCX|RDX|RSI|RDI|RBP|R\d\d?|FS|GS|CS|DS|ES|CR\d|DR\d|PKRU|"
    r"Code)\s*:",
    r"^---\[ end ", r"^Modules linked in:", r"^Kernel Offset:", r"^note: ",
    r"^NMI backtrace for cpu", r"^Sending NMI from CPU", r"^CPU: \d+ PID: ", r"^Hardware name: ",
))
# Secondary sections whose frames are not the report's own stack (allocation/free stacks,
# lockdep's dependency chain, KCSAN's other access, "Preemption disabled at:").
_SECONDARY = re.compile(_alt(
    r"^(?:Allocated|Freed|allocated|freed) by task", r"^Uninit was (?:created|stored)",
    r"^Local variable", r"^(?:Second to )?[Ll]ast potentially related", r"^The buggy address",
    r"^Memory state around", r"^kfence-#\d+", r"^(?:read|write)(?: \(marked\))? to 0x",
    r"^other info that might help", r"^the existing dependency chain", r"^-> #\d+",
    r"state was registered at:", r"^irq event stamp:", r"^Preemption disabled at:",
))
_NOISE = 3  # foreign lines tolerated inside a call trace before the report is over

# -- title normalisation --------------------------------------------------------------------------
_OFFSET = re.compile(r"\+0x[0-9a-f]+/0x[0-9a-f]+(?:\s+\[[\w-]+\])?")
_SUFFIX = re.compile(r"(?<=\w)(?:\.(?:cold|isra|constprop|part|lto_priv|llvm|localalias|"
                     r"specialized|clone)(?:\.\d+)?)+")
_HEXNUM = re.compile(r"\b0x[0-9a-fA-F]+\b|\b(?=[0-9a-f]*\d)[0-9a-f]{8,}\b")
_DECNUM = re.compile(r"(?<![\w.])\d+(?:\.\d+)*")
_SRC_LINE = re.compile(r"(?::\d+)+$")


def _header_regex() -> re.Pattern[str]:
    """All start regexes in one: most lines are rejected with one match() call."""
    parts = [re.sub(r"\(\?P<\w+>", "(?:", p.start.pattern) for p in PATTERNS]
    return re.compile(_alt(*parts))


_ANY_HEADER = _header_regex()
_IGNORE_RES = tuple(re.compile(rx) for rx, _why in IGNORE)


@dataclass
class _Line:
    no: int  # 1-based line number in the scanned text
    text: str  # prefixes stripped
    origin: str  # "kernel", "user" or "" (unknown)
    ctx: str  # printk caller id ("T123", "C0") or ""


def _strip_prefixes(raw: str) -> tuple[str, str, str]:
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
    if not ctx and (m := _CALLER.match(s)):
        origin = origin or "kernel"
        ctx = m["ctx"]
        s = s[m.end():]
    return _KMEMLEAK.sub("", s), origin, ctx


def _prepare(text: str) -> list[_Line]:
    out = []
    for no, raw in enumerate(text.split("\n"), 1):
        s, origin, ctx = _strip_prefixes(raw)
        out.append(_Line(no, s, origin, ctx))
    return out


def _match_header(text: str) -> tuple[Pattern, re.Match[str]] | None:
    if not _ANY_HEADER.match(text):
        return None
    for pat in PATTERNS:
        if m := pat.start.match(text):
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
        if self.pat.end and self.pat.end.search(text):
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

    def finding(self) -> Finding:
        return Finding(self.pat.kind, _title(self.pat, self.match, self.lines),
                       self.lines[0].no, "\n".join(ln.text for ln in self.lines))


def _collect(lines: list[_Line]) -> list[_Report]:
    prefixed = any(ln.origin == "kernel" for ln in lines)
    reports: list[_Report] = []
    cur: _Report | None = None
    for ln in lines:
        if ln.origin == "user" or (prefixed and not ln.origin):
            continue  # userspace chatter
        hit = _match_header(ln.text)
        same = cur is not None and cur.takes_context(ln)
        if hit is None:
            if cur is not None and same and not cur.feed(ln):
                cur = None
            continue
        pat, m = hit
        if cur is not None and same and not cur.pending:  # pending: its trace looks finished
            if pat.name in cur.pat.absorbs:
                cur.add(ln)
                continue
            if cur.pat.name in pat.refines:
                cur.refine(pat, m, ln)
                continue
        cur = _Report(pat, m, [ln])
        reports.append(cur)
    return reports


# -- titles ---------------------------------------------------------------------------------------
def _trace_frames(lines: Sequence[_Line], bare: bool) -> Iterator[str]:
    active = bare
    for ln in lines[1:]:
        if _TRACE_START.match(ln.text):
            active = True
        elif _SECONDARY.search(ln.text):
            active = False
        elif active and (fm := _FRAME.match(ln.text)) and not fm["q"]:
            yield fm["func"]


def _at_frames(lines: Sequence[_Line], marker: re.Pattern[str] | None) -> Iterator[str]:
    if marker is None:
        return
    for i, ln in enumerate(lines):
        if m := marker.search(ln.text):
            rest = [ln.text[m.end():]] + [x.text for x in lines[i + 1:i + 5]]
            for text in rest:
                if fm := _AT_FUNC.search(text):
                    yield fm["func"]
                    return


def _candidates(pat: Pattern, m: re.Match[str], lines: Sequence[_Line]) -> Iterator[str]:
    for source in pat.funcs:
        if source == "header" and "func" in m.re.groupindex:
            yield m["func"]
        elif source == "rip":
            yield from (r["func"] for ln in lines if (r := _RIP.match(ln.text)))
        elif source == "at":
            yield from _at_frames(lines, pat.at)
        elif source == "trace":
            yield from _trace_frames(lines, pat.bare_frames)


def _first_function(pat: Pattern, m: re.Match[str], lines: Sequence[_Line]) -> str:
    for func in _candidates(pat, m, lines):
        name = func.split(".")[0]  # C names have no dots: ".isra.0", ".cold", ".llvm.123"
        if name and not _SKIP.fullmatch(name) and not (pat.skip and pat.skip.fullmatch(name)):
            return name
    return ""


def _tidy(title: str) -> str:
    title = _OFFSET.sub("", title)
    title = _SUFFIX.sub("", title)
    title = _HEXNUM.sub("ADDR", title)  # a safety net: no row should let an address through
    title = " ".join(title.replace(" ()", " ").split())  # " ()": an empty optional detail
    return re.sub(r"(?: in|:)$", "", title)


def _title(pat: Pattern, m: re.Match[str], lines: Sequence[_Line]) -> str:
    fields = {k: v or "" for k, v in m.groupdict().items()}
    for name in pat.free_text:
        fields[name] = _DECNUM.sub("NUM", _HEXNUM.sub("ADDR", fields[name]))
    text = "\n".join(ln.text for ln in lines)
    for rx in pat.details:
        found = rx.search(text)
        fields.update({k: (found[k] if found else "") or "" for k in rx.groupindex})
    func = _first_function(pat, m, lines)
    if not func and pat.fallback:
        func = _SRC_LINE.sub("", fields.get(pat.fallback, ""))
    fields["func"] = func
    return _tidy(pat.title.format(**fields))


# -- public API -----------------------------------------------------------------------------------
def scan_kernel_log(text: str, *, ignore: Iterable[str] = ()) -> list[Finding]:
    """Kernel reports in `text`, in log order; `ignore`: regexes (re.search) dropping titles."""
    extra = tuple(re.compile(rx) for rx in ignore)
    findings = []
    for report in _collect(_prepare(text)):
        f = report.finding()
        if not any(rx.search(f.title) for rx in _IGNORE_RES + extra):
            findings.append(f)
    return findings


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
