"""Which function a kernel report is about: the "in FUNC" of its title.

Titles follow the convention of syzbot and lore (syzkaller's pkg/report/linux.go), so a title can
be pasted into syzbot's or lore's search: the function is the first *interesting* frame of the
report, found by a row-specific recipe (:class:`Frames`), e.g. "the function on the RIP line,
else the first frame after Call Trace". What counts as interesting:

* a frame is ``func+0x1f/0x40`` (optionally after ``[<ffffffff81234567>]`` addresses) or an ARM
  ``[<c0abc>] (func) from [<c0def>] (caller+0x18/0x30)`` pair; ``? func`` frames are unreliable,
  ``(unreliable)`` powerpc frames too, and symbolized inline frames (``func file.c:12 [inline]``,
  no offset) are not frames of their own;
* frames whose name *contains* a generic word are passed over (:data:`GENERIC`: the report
  machinery, sanitizer runtimes, locking, allocation, string and copy helpers, ...), plus a
  row's own ``skip`` words;
* syscall wrappers lose their prefixes: ``__x64_sys_ioctl`` -> ``sys_ioctl``,
  ``__do_sys_ioctl`` and ``ksys_ioctl`` -> ``ioctl``;
* stalls and lockups name the function just before the first dispatch point (a syscall entry,
  a workqueue callback, vfs_write, ...; :data:`_STALL_ANCHORS`), since the interrupted spot of a
  loop is random; hung tasks skip the waiting frames (schedule, locks, completions) and group
  every synchronize_rcu-like wait as ``synchronize_rcu``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["AT", "CALL_TRACE", "GENERIC", "HEADER", "RIP", "TRACE", "Frames", "words"]


def words(*patterns: str) -> re.Pattern[str]:
    """A skip list: a frame is skipped when any pattern is *found* in its name."""
    return re.compile("|".join(f"(?:{p})" for p in patterns))


class _Marker:
    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


HEADER = _Marker("HEADER")  # the function printed in the report's first line
TRACE = _Marker("TRACE")    # the frames from here to the next stack (Call Trace, Allocated by...)
_ADDR = r"\[<?(?:0x)?[0-9a-f]+>?\]"
_FUNC = r"(?P<func>[A-Za-z0-9_]+)(?:\.|\+)"
# The instruction pointer line of each architecture: x86 RIP/EIP/IP, powerpc NIP, arm64/riscv
# "pc :"/"epc :", arm "PC is at"; "RIP: 0033:0x7f..." (user mode) and a jump to NULL
# ("RIP: 0010:          (null)") match without a function.
RIP = re.compile(rf"(?:IP|NIP|pc |PC is at):? (?:(?:\d+:)?(?:{_ADDR} +){{0,2}}{_FUNC}"
                 rf"|(?:\d+:)?0x[0-9a-f]+|\d+: +\(null\)|(?:\d+:)?{_ADDR} +\[< *\(null\)>\] +"
                 r"\(null\))")
CALL_TRACE = re.compile(r"Call [Tt]race:|Backtrace:")
AT = re.compile(rf"at: (?:{_ADDR} +)?{_FUNC}")  # lockdep's lock sites
PC_FUNC = re.compile(rf"{_ADDR} +{_FUNC}")       # lockdep's print_ip_sym()
_FUNC2 = _FUNC.replace("func", "func2")  # a second candidate on the same line
# WARN()'s trap: the RIP line, or powerpc's "--- interrupt: 700 at func+0x../0x..".
WARN_RIP = re.compile(f"(?:{RIP.pattern}|--- interrupt: [0-9]+ at {_FUNC2})")

_FRAME = re.compile(rf"^ *(?:{_ADDR} ){{0,2}}{_FUNC}")
_ARM_FRAME = re.compile(rf"^ *{_ADDR} \((?P<func>[A-Za-z0-9_.]+)(?: \[[\w-]+\])?\) from {_ADDR} "
                        rf"\({_FUNC2}")
_STACK_START = re.compile(r"Call [Tt]race|Allocated:|Allocated by task \d+:|Freed:|"
                          r"Freed by task \d+:|(?<!stack )backtrace(?: \(crc [0-9a-f]*\))?:|"
                          r"Backtrace:|Uninit was stored to memory at")
_FAULT_INJECTION = re.compile(r"^ *(?:\[<?(?:0x)?[0-9a-f]+>?\] )?should_fail(?:slab)?[.+]")

# Generic frames: report machinery and sanitizer runtimes; locking; allocation; refcounts and
# atomics; string, copy and printk helpers; work, timer and device-model teardown that many
# subsystems share; arm64 fault entry. A frame is skipped when one of these is found in it.
GENERIC = words(
    "__sanitizer", "__asan", "kasan", "hwasan", "__msan", "kmsan", "kcsan_setup_watchpoint",
    "check_memory_region", "check_heap_object", "check_object", "read_word_at_a_time",
    "(?:read|write)_once_.*nocheck", "print_address_description", "panic", "invalid_op",
    "report_bug", "fixup_bug", "print_report", "print_usage_bug", "do_error", "_trap$|do_trap",
    "show_stack", "dump_stack", "walk_stack", "dump_backtrace", "warn_slowpath", "warn_alloc",
    "warn_bogus", "__warn", "print_tainted", "__fortify_report", "assertfail", "^get_taint$",
    # locking
    "print_unlock", "imbalance_bug", "lockdep", "bh_enable", "bh_disable", "perf_trace",
    "lock_acquire", "lock_release", "lock_class", "mark_lock", "(?:reacquire|mark)_held_locks",
    "raw_spin_rq", "spin_lock", "spin_trylock", "spin_unlock", "read_lock", "read_trylock",
    "write_lock", "write_trylock", "read_unlock", "write_unlock", "^down$", "down_read",
    "down_write", "down_trylock", "up_read", "up_write", "^mutex_", "^__mutex_", "^rt_mutex_",
    "owner_on_cpu", "osq_lock", "osq_unlock", "(?:trace|lockdep)_(?:hard|soft)irq",
    "^(?:un)?lock_page", "lock_timer_base",
    # allocation and the page cache's allocating lookups
    "alloc_page", "k?v?(?:m|z|c)alloc", "krealloc", "kmem_cache", "allocate_slab",
    "__alloc_frozen_pages_noprof", "folio_(?:alloc|unlock)", "filemap_alloc_folio",
    "__filemap_get_folio", "find_or_create_page", "do_read_cache_folio", "read_cache_page",
    "pagecache_get_page", "grab_cache_page_write_begin", "slab_", "^kv?free$", "kfree_skb",
    "__phys_addr", "__might_fault", "might_fault", "might_sleep", "__might_resched",
    # references, atomics, bits
    "atomic(?:64)?_(?:dec|inc|read|set|or|xor|and|add|sub|fetch|xchg|cmpxchg|try)",
    "(?:set|clear|change|test)_bit", "^refcount_", "^kref_", "ref_tracker", "seqprop_assert",
    "__wake_up", "^complete$", "wait_for_completion", "finish_wait",
    # strings, copies, formatting
    "memcpy", "memcmp", "memset", "memchr", "memmove", "memdup", "strcmp", "strncmp", "strcpy",
    "strlcpy", "strncpy", "strscpy", "strlen", "strstr", "strnstr", "strnlen", "strchr",
    "strdup", "strndup", "copy_to_user", "copy_from_user", "copy_to_iter", "copy_from_iter",
    "copy_page_to_iter", "copy_page_from_iter", "copy_folio_to_iter", "^copyin$", "^copyout$",
    "put_user", "get_user", "string", "pointer", "snprintf", "scnprintf", "kasprintf",
    "kvasprintf", "printk", "va_format", "dev_info", "dev_notice", "dev_warn", "dev_err",
    "dev_alert", "dev_crit", "dev_emerg", "hex_dump_to_buffer", "print_hex_dump",
    "stack_trace_consume_entry", "arch_stack_walk", "stack_trace_save", "^crc\\d+", "crc_itu_t",
    "_indirect_thunk_", "readb$", "readw$", "readl$", "readq$", "writeb$", "writew$", "writel$",
    "writeq$", "logic_in", "logic_out",
    # lists and trees
    "list_add", "list_del", "list_replace", "list_move", "list_splice", "^rb_", "^__rb_", "^klist_",
    "xas_(?:start|load|find)", "rhashtable_lookup",
    # work, timers, teardown shared by many subsystems
    "debug_object", "timer_is_static_object", "work_is_static_object", "del_timer", "flush_work",
    "__cancel_work_timer", "cancel_work_sync", "try_to_grab_pending", "flush_workqueue",
    "drain_workqueue", "destroy_workqueue", "queue_work", "insert_work", "__queue_delayed_work",
    "queue_delayed_work_on", "__timer_delete_sync", "sk_stop_timer_sync", "__mod_timer",
    "kthread_stop", "kobject_", "add_uevent_var", "get_device_parent", "device_add", "device_del",
    "device_unregister", "device_destroy", "device_release", "devres_release_all",
    "device_for_each_child", "device_remove_file", "^put_device$", "sysfs_remove",
    "hwrng_unregister", "i2c_del_adapter", "__unregister_client", "rollback_registered",
    "unregister_netdev", "tty_unregister_device", "dummy_urb_enqueue", "usb_kill_urb",
    "usb_kill_anchored_urbs", "usb_control_msg", "usb_hcd_submit_urb", "usb_submit_urb",
    "ida_free", "cleanup_srcu_struct", "^iput$", "^iput_final$", "^ihold$", "drop_nlink",
    "fast_dput", "dput", "find_lock_entries", "truncate_inode_pages_range",
    "extract_(?:user|iter)_to_sg", "program_check_exception", "program_check_common",
    # arm64 fault entry
    "do_(?:kernel|translation)_fault", "do_mem_abort", "el1_abort", "el1h_64_sync(?:_handler)?",
)

# Syscall wrappers: the shortest name left after removing one of these prefixes.
_SYSCALL_PREFIXES = ("SYSC_", "SyS_", "sys_", "__x64_", "__ia32_", "__arm64_", "____sys_",
                     "___sys_", "__sys_", "__se_", "__se_sys_", "__do_sys_", "compat_SYSC_",
                     "compat_SyS_", "ksys_")

# Where a looping kernel entered the code that loops: the frame before one of these.
_STALL_ANCHORS = words(
    "process_one_work", "do_syscall_", "do_fast_syscall_", "sysenter_dispatch", "tracesys_phase2",
    "el0_svc_handler", "invoke_syscall", "ret_fast_syscall", "netif_receive_skb", "do_softirq",
    "call_timer_fn", "_run_timers", "run_timer_softirq", "hrtimer_run", "run_ksoftirqd",
    "smpboot_thread_fn", "^kthread$", "start_secondary", "cpu_startup_entry", "ret_from_fork",
    "vfs_write", "vfs_read", "vfs_iter_read", "vfs_iter_write", "do_iter_read", "do_iter_write",
    "call_read_iter", "call_write_iter", "new_sync_read", "new_sync_write", "vfs_ioctl",
    "ksys_ioctl", "compat_ioctl", "compat_sys_ioctl", "blkdev_driver_ioctl", "blkdev_ioctl",
    "do_iter_readv_writev", "^call_mmap", "mmap_region", "do_mmap", "do_dentry_open", "vfs_open",
    "^sock_sendmsg", "^sock_recvmsg", "^sock_release", "^__sock_release", "^setsockopt$",
    "kernel_setsockopt", "sock_common_setsockopt", "^listen$", "kernel_listen",
    "sk_common_release", "^sock_mmap", "^accept$", "kernel_accept", "^sock_do_ioctl",
    "^sock_ioctl", "^compat_sock_ioctl", "^nfnetlink_rcv_msg", "^rtnetlink_rcv_msg",
    "^netlink_dump", "^(?:sys_)?(?:socketpair|connect|ioctl)", "__do_fault", "do_page_fault",
    "^page_fault$", "__fput", "task_work_run", "exit_to_usermode", "smp_call_function",
    "tasklet_action", "tasklet_hi_action",
)
# A hung task waits: these frames say how, not where.
_HANG_WAITS = words("sched", "_lock", "_slowlock", "down", "rwsem", "completion", "kthread", "wait",
                    "synchronize", "context_switch", "__switch_to", "cancel_delayed_work",
                    "rcu_barrier")
_HANG_BUCKETS = (("rtnl_lock", ""), ("synchronize_rcu", "synchronize_rcu"),
                 ("synchronize_srcu", "synchronize_rcu"), ("synchronize_net", "synchronize_rcu"),
                 ("synchronize_sched", "synchronize_rcu"))
_SUFFIX = re.compile(r"(?:\.(?:cold|isra|constprop|part|lto_priv|llvm|localalias|specialized|"
                     r"clone)(?:\.\d+)?)+$")

_HEX = re.compile(r"[0-9a-f]{8,}")  # an address printed where a symbol was expected
# The report printing itself: never the function a title names, even as a last resort.
_MACHINERY = words("dump_stack", "show_stack", "print_", "report", "__warn", "warn_slowpath",
                   "panic", "kasan", "kmsan", "do_error", "_trap$", "invalid_op")

Step = re.Pattern[str] | _Marker


@dataclass(frozen=True)
class Frames:
    """How a row finds its function: `steps` in order, each moving forward through the report.

    A regex step finds the next line it matches (its ``func`` group, if any, is a candidate);
    HEADER takes the header's ``func`` group; TRACE takes every frame up to the next stack
    (Call Trace, Allocated by task, backtrace:), or to the line the following regex step
    matches. The candidates that are not skipped are handed to `pick`. When that yields
    nothing, each of `fallbacks` is tried in turn from the report's first line.
    """

    steps: tuple[Step, ...]
    fallbacks: tuple[tuple[Step, ...], ...] = ()
    skip: re.Pattern[str] | None = None
    pick: str = "first"  # "first", "stall" or "hang"
    generic: bool = True  # False: take the lock site lockdep printed, generic or not

    def function(self, lines: Sequence[str], header: re.Match[str]) -> str:
        for steps in (self.steps, *self.fallbacks):
            if (name := self._pick(self._candidates(steps, lines, header))):
                return name
        # Only generic frames (a truncated report: RIP in memset, no trace): name the first
        # one rather than nothing.
        raw = [f for f in self._candidates(self.steps, lines, header, skipping=False)
               if not _MACHINERY.search(f)]
        return _SUFFIX.sub("", _strip_syscall(raw[0])) if raw else ""

    def _skipped(self, name: str) -> bool:
        if self.generic and GENERIC.search(name):
            return True
        return bool(self.skip and self.skip.search(name))

    def _candidates(self, steps: Sequence[Step], lines: Sequence[str],
                    header: re.Match[str], skipping: bool = True) -> list[str]:
        found: list[str] = []

        def take(m: re.Match[str] | None) -> None:
            if m is None:
                return
            for group in ("func", "func2"):
                name = m.groupdict().get(group)
                if name and not _HEX.fullmatch(name) and not (skipping and self._skipped(name)):
                    found.append(name)

        pos, i, traces = 0, 0, 0
        while i < len(steps):
            step = steps[i]
            i += 1
            if step is HEADER:
                take(header)
            elif step is TRACE:
                traces += 1
                if traces > 1 and found:
                    break  # a later stack (the allocation, the origin) is not the report's own
                follow = steps[i] if i < len(steps) and isinstance(steps[i], re.Pattern) else None
                while pos < len(lines):
                    text = lines[pos]
                    pos += 1
                    if _FAULT_INJECTION.match(text) or _STACK_START.search(text):
                        break
                    if follow is not None and (m := follow.search(text)):
                        take(m)
                        i += 1
                        break
                    if text.endswith("(unreliable)"):
                        continue
                    take(_ARM_FRAME.match(text) or _FRAME.match(text))
            else:
                while pos < len(lines):
                    text = lines[pos]
                    pos += 1
                    if m := step.search(text):
                        take(m)
                        break
        return found

    def _pick(self, found: list[str]) -> str:
        names = [_SUFFIX.sub("", _strip_syscall(f)) for f in found]
        if not names:
            return ""
        if self.pick == "stall":
            return _stall_frame(names) or names[0]
        if self.pick == "hang":
            return _hang_frame(names)
        return names[0]


def _strip_syscall(name: str) -> str:
    return min((name.removeprefix(p) for p in _SYSCALL_PREFIXES), key=len)


def _stall_frame(names: Sequence[str]) -> str:
    prev = names[0]
    for name in names:
        if _STALL_ANCHORS.search(name):
            return "smp_call_function" if "smp_call_function" in name else prev
        prev = name
    return ""


def _hang_frame(names: Sequence[str]) -> str:
    for name in names:
        for anchor, bucket in _HANG_BUCKETS:
            if anchor in name:
                return bucket or name
    return next((n for n in names if not _HANG_WAITS.search(n)), "")
