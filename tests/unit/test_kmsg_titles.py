"""How the scanner picks the function of a title (harness.kmsg_frames), and the header forms
that only differ by prefix. Each case feeds the rule the report shape that would fool a
simpler one (a generic frame first, a wrapper prefix, a second stack)."""

from __future__ import annotations

from harness.kmsg import scan_kernel_log


def one(log: str) -> tuple[str, str, str]:
    (f,) = scan_kernel_log(log)
    return f.kind, f.title, f.frame


def trace(*frames: str) -> str:
    return "Call Trace:\n <TASK>\n" + "".join(f" {f}+0x10/0x20\n" for f in frames) + " </TASK>\n"


def test_generic_words_are_found_anywhere_in_the_name():
    log = ("BUG: sleeping function called from invalid context at mm/slab.h:756\n"
           "in_atomic(): 1, irqs_disabled(): 0, non_block: 0, pid: 7, name: kworker/0:1\n"
           + trace("dump_stack_lvl", "__might_resched", "kmem_cache_alloc_trace",
                   "__kmalloc_node", "nvdimm_bus_lock_slow", "nd_region_probe"))
    # "kmem_cache", "kmalloc" are generic; "nvdimm_bus_lock_slow" is not.
    assert one(log)[2] == "nvdimm_bus_lock_slow"


def test_syscall_wrappers_lose_their_prefix():
    log = ("watchdog: BUG: soft lockup - CPU#1 stuck for 22s! [fio:1402]\n"
           "RIP: 0010:dax_layout_busy_page_range+0x1a/0x2e0\n"
           + trace("dax_layout_busy_page_range", "ext4_break_layouts", "ext4_fallocate",
                   "vfs_fallocate", "__x64_sys_fallocate", "do_syscall_64"))
    # A stall names the function just before the syscall entry, without __x64_.
    assert one(log) == ("soft_lockup", "BUG: soft lockup in sys_fallocate", "sys_fallocate")


def test_stall_without_an_anchor_names_the_interrupted_function():
    log = ("NMI watchdog: BUG: soft lockup - CPU#0 stuck for 23s! [kworker/0:2:55]\n"
           "RIP: 0010:nd_region_acquire_lane+0x30/0x90 [libnvdimm]\n"
           + trace("btt_write_pg", "btt_submit_bio"))
    assert one(log)[1] == "BUG: soft lockup in nd_region_acquire_lane"


def test_hung_task_skips_waits_and_groups_rcu_waits():
    waits = ("__schedule", "schedule", "schedule_timeout", "wait_for_completion")
    log = "INFO: task ndctl:312 blocked for more than 120 seconds.\n"
    assert one(log + trace(*waits, "__synchronize_srcu", "dax_kill", "nd_pmem_remove"))[1] == \
        "INFO: task hung in synchronize_rcu"
    assert one(log + trace(*waits, "percpu_rwsem_wait", "__percpu_down_read", "mnt_want_write",
                           "path_openat"))[1] == "INFO: task hung in mnt_want_write"
    newer = "INFO: task fio:77 blocked in I/O wait for more than 122 seconds.\n"
    assert one(newer + trace(*waits, "io_schedule", "folio_wait_bit_common", "ext4_dax_fault"))[1] \
        == "INFO: task hung in ext4_dax_fault"


def test_warn_names_the_rip_function_unless_it_is_generic():
    head = "WARNING: CPU: 0 PID: 1 at lib/list_debug.c:59 __list_del_entry_valid+0x7b/0xc0\n"
    log = head + "RIP: 0010:__list_del_entry_valid+0x7b/0xc0\n" + trace(
        "dax_disassociate_entry", "__dax_invalidate_entry")
    assert one(log) == ("list_corruption", "WARNING in dax_disassociate_entry",
                        "dax_disassociate_entry")


def test_old_warning_without_rip_takes_the_trace_then_the_header():
    log = ("WARNING: at fs/dax.c:1456 dax_iomap_rw+0x1f3/0x220()\n"
           + trace("dump_stack", "warn_slowpath_common", "warn_slowpath_null", "dax_iomap_rw",
                   "ext4_file_read_iter"))
    assert one(log)[1] == "WARNING in dax_iomap_rw"


def test_lockdep_old_bracketed_headers():
    log = ("=================================\n"
           "[ INFO: inconsistent lock state ]\n"
           "4.9.0 #1 Not tainted\n---------------------------------\n"
           "inconsistent {IN-SOFTIRQ-W} -> {SOFTIRQ-ON-W} usage.\n"
           "fio/1402 [HC0[0]:SC0[0]:HE1:SE1] takes:\n"
           " (&arena->map_locks[i].lock){+.?...}, at: [<ffffffffa01234a0>] "
           "btt_map_write+0x80/0x140 [nd_btt]\n"
           "{IN-SOFTIRQ-W} state was registered at:\n"
           "  [<ffffffff810c3a5d>] __lock_acquire+0x5ad/0x1b80\n")
    assert one(log) == ("lockdep", "inconsistent lock state in btt_map_write", "btt_map_write")
    log = ("=====================================\n"
           "[ BUG: bad unlock balance detected! ]\n"
           "4.4.0 #1 Not tainted\n-------------------------------------\n"
           "ndctl/1512 is trying to release lock (&nvdimm_bus->reconfig_mutex) at:\n"
           "[<ffffffffa0021ba5>] nvdimm_bus_unlock+0x15/0x30 [libnvdimm]\n"
           "but there are no more locks to release!\n")
    assert one(log)[1] == "BUG: bad unlock balance in nvdimm_bus_unlock"


def test_two_printks_on_one_console_line():
    log = ("[   12.000001] nd_pmem namespace0.0: unable to guarantee persistence[   12.000002] "
           "general protection fault, probably for non-canonical address 0xdead: 0000 [#1] SMP\n"
           "[   12.000003] RIP: 0010:btt_map_read+0x4a/0x100 [nd_btt]\n")
    assert one(log)[1] == "general protection fault in btt_map_read"


def test_a_warning_printk_without_a_trace_is_no_report():
    log = ("[    1.100000] WARNING: fbcon: Driver 'bochs-drm' missed to adjust virtual screen "
           "size (0x0 vs. 1024x768)\n[    1.100100] WARNING: reserved for future use\n"
           "[    1.200000] Freeing unused kernel image memory: 2036K\n")
    assert scan_kernel_log(log) == []
    # The same words with a WARN()'s stack are a report.
    log = ("[    1.100000] WARNING: reserved for future use\n"
           "[    1.100001] Call Trace:\n[    1.100002]  nd_foo+0x1/0x2\n")
    assert [f.title for f in scan_kernel_log(log)] == ["WARNING: reserved for future use"]


def test_arm_backtrace_pairs_name_the_caller():
    log = ("8<--- cut here ---\n"
           "Unhandled fault: page domain fault (0x01b) at 0x00000000\n"
           "Internal error: : 1b [#1] SMP ARM\n"
           "PC is at __memcpy+0x48/0x100\n"
           "Backtrace:\n"
           "[<c0a1b2c4>] (__memcpy) from [<bf012345>] (pmem_do_read+0x60/0x90 [nd_pmem])\n"
           "[<bf012345>] (pmem_do_read) from [<bf012400>] (pmem_submit_bio+0x1c/0x40 [nd_pmem])\n")
    assert one(log) == ("oops", "Unhandled fault in pmem_do_read", "pmem_do_read")


def test_old_kasan_report_is_one_finding_with_its_slub_part():
    ruler = "=" * 66 + "\n"
    log = (ruler + "BUG: KASAN: use-after-free in pmem_submit_bio+0x2a1/0x2c0 at addr "
           "ffff8800619b2a20\nRead of size 8 by task fio/1402\n" + "=" * 77 + "\n"
           "BUG kmalloc-64 (Not tainted): kasan: bad access detected\n" + "-" * 77 + "\n\n"
           "INFO: Allocated in nd_region_probe+0x1a/0x90 age=2 cpu=0 pid=12\n"
           "INFO: Freed in nd_region_remove+0x2e/0x60 age=1 cpu=1 pid=40\n"
           + trace("dump_stack", "kasan_report", "__asan_load8", "pmem_submit_bio")
           + "Memory state around the buggy address:\n" + ruler)
    assert [(f.kind, f.title) for f in scan_kernel_log(log)] == [
        ("kasan", "KASAN: use-after-free Read in pmem_submit_bio")]


def test_kmemleak_skips_allocators_by_substring():
    log = ("unreferenced object 0xffff888101bd9e00 (size 64):\n"
           '  comm "ndctl", pid 312, jiffies 4294893330 (age 12.9s)\n'
           "  backtrace (crc 5a8b0a7a):\n"
           "    kmalloc_trace+0x25/0x90\n    devm_kzalloc_node+0x10/0x20\n"
           "    nd_label_alloc_slot+0x9c/0x2e0 [libnvdimm]\n"
           "    nd_pmem_namespace_label_update+0x40/0x90 [libnvdimm]\n")
    # "alloc" in nd_label_alloc_slot is generic for a leak: the caller of the allocation wins.
    assert one(log)[1] == "memory leak in nd_pmem_namespace_label_update"


def test_rcu_stall_takes_the_task_interrupted_by_the_timer():
    log = ("rcu: INFO: rcu_preempt self-detected stall on CPU\n"
           "rcu: \t0-....: (2100 ticks this GP) idle=8d4/1/0x4000000000000000\n"
           "\t(t=2100 jiffies g=5537 q=12 ncpus=2)\n"
           "CPU: 0 PID: 1402 Comm: dd Not tainted 6.1.0 #1\n"
           + trace("rcu_dump_cpu_stacks", "rcu_sched_clock_irq", "update_process_times",
                   "__sysvec_apic_timer_interrupt", "sysvec_apic_timer_interrupt")
           + " asm_sysvec_apic_timer_interrupt+0x16/0x20\n"
           "RIP: 0010:pmem_do_read+0x5e/0xb0 [nd_pmem]\n"
           " pmem_submit_bio+0x14e/0x2a0 [nd_pmem]\n __submit_bio+0x8c/0x130\n"
           " blkdev_read_iter+0x10/0x20\n vfs_read+0x1a0/0x2c0\n ksys_read+0x6c/0xf0\n"
           " do_syscall_64+0x5d/0xb0\n")
    # The frame before the first dispatch point (vfs_read).
    assert one(log)[1] == "INFO: rcu detected stall in blkdev_read_iter"


def test_a_header_followed_by_another_printk_on_the_same_line():
    log = ("[   92.396607] general protection fault: 0000 [#1] SMP[  387.811073] audit: "
           "type=1326 audit(1486238739.637:135): auid=4294967295\n"
           "[   92.396700] RIP: 0010:btt_map_read+0x4a/0x100 [nd_btt]\n")
    f = scan_kernel_log(log)[0]
    assert (f.title, f.line) == ("general protection fault in btt_map_read", 1)


def test_only_generic_frames_name_the_first_one():
    log = ("BUG: unable to handle kernel paging request at ffff88002bde1e40\n"
           "IP: [<ffffffff82d4e304>] __memset+0x24/0x30\n"
           "Oops: 0002 [#1] SMP KASAN\n")  # truncated: no trace
    assert one(log)[1] == "BUG: unable to handle kernel paging request in __memset"


def test_unwinder_complaints_need_no_trace():
    log = ("WARNING: kernel stack regs at ffff8801c1e5f468 in syz-executor:4716 has bad 'bp' "
           "value 0000000000000001\n")
    assert one(log)[1] == "WARNING: kernel stack regs has bad 'bp' value"


def test_panic_on_warn_before_the_trace_lends_the_warning_its_stack():
    # 4.x: panic() runs inside __warn(), so the panic line comes before the WARN's trace.
    log = ("WARNING: CPU: 0 PID: 5989 at lib/debugobjects.c:291 debug_print_object+0x166/0x220\n"
           "Kernel panic - not syncing: panic_on_warn set ...\n\n"
           "CPU: 0 PID: 5989 Comm: syz-executor Not tainted 4.15.0-rc1+ #1\n"
           + trace("dump_stack", "panic", "__warn", "report_bug", "do_error_trap",
                   "debug_print_object", "debug_check_no_obj_freed", "kmem_cache_free",
                   "pppol2tp_release", "sock_release")
           + "RIP: 0010:debug_print_object+0x166/0x220\n")
    warning, panic = scan_kernel_log(log)
    assert warning.title == "WARNING: ODEBUG bug in pppol2tp_release"
    assert panic.title == "kernel panic: panic_on_warn set ..."


def test_a_header_glued_to_the_previous_printk_without_a_timestamp():
    log = ("[   44.870467] kasan: GPF could be caused by NULL-ptr deref or user memory "
           "accessgeneral protection fault: 0000 [#1] PREEMPT SMP KASAN\n"
           "[   44.870500] RIP: 0010:nd_region_release_lane+0x3a/0x90 [libnvdimm]\n")
    assert one(log)[1] == "general protection fault in nd_region_release_lane"
    # A panic's end marker repeats its message: no second panic.
    panic = "Kernel panic - not syncing: Fatal exception\n"
    end = "---[ end Kernel panic - not syncing: Fatal exception ]---\n"
    assert len(scan_kernel_log(panic + end)) == 1


def test_two_tasks_reports_interleaved_are_told_apart_by_caller_id():
    lines = [("T1560", "general protection fault: 0000 [#1] PREEMPT SMP KASAN"),
             ("T1533", "BUG: KASAN: null-ptr-deref in nd_region_release_lane+0x87/0x200"),
             ("T1560", "CPU: 0 PID: 1560 Comm: ndctl Not tainted 5.2.0 #26"),
             ("T1533", "Read of size 4 at addr 00000000000000c8 by task ndctl/1533"),
             ("T1560", "RIP: 0010:nd_region_release_lane+0x8e/0x200"),
             ("T1533", "Call Trace:"), ("T1560", "Call Trace:"),
             ("T1533", " nd_region_release_lane+0x87/0x200"),
             ("T1560", " nd_region_remove+0x40/0x90"), ("T1533", " btt_write_pg+0x2e1/0x490")]
    log = "\n".join(f"[  100.{i:06d}][{c:>6}] {t}" for i, (c, t) in enumerate(lines))
    assert [f.title for f in scan_kernel_log(log)] == [
        "general protection fault in nd_region_release_lane",
        "KASAN: null-ptr-deref Read in nd_region_release_lane"]


def test_a_jump_to_null_has_no_function_on_its_rip_line():
    log = ("BUG: kernel NULL pointer dereference, address: 0000000000000000\n"
           "Oops: 0010 [#1] SMP\nRIP: 0010:          (null)\nCode: Bad RIP value.\n"
           + trace("sock_poll", "do_select"))
    assert one(log)[1] == "BUG: unable to handle kernel NULL pointer dereference in sock_poll"


def test_another_cpus_double_fault_does_not_hide_this_reports_rip():
    log = ("BUG: unable to handle kernel paging request at 000000fe840fc4b9\n"
           "Oops: 0000 [#1] PREEMPT SMP\nPANIC: double fault, error_code: 0x0\n"
           "RIP: 0010:lookup_object+0x11/0x80\nRIP: 0010:__udp6_lib_lookup+0x10e/0x3e0\n")
    assert [f.title for f in scan_kernel_log(log)] == [
        "BUG: unable to handle kernel paging request in lookup_object",
        "PANIC: double fault in lookup_object"]
