"""Which entry a built kernel boots through, and how a guest that resets itself is reported."""

from __future__ import annotations

import json
from pathlib import Path

from harness.guest import _triple_fault_message
from harness.kernel import BuiltKernel
from harness.profile import load_profile
from harness.qemu import BootSpec, GuestFiles, QemuMachine, build_argv
from harness.vmlinux import pvh_entry_refused

KASAN = "CONFIG_PVH=y\nCONFIG_KASAN=y\nCONFIG_KASAN_INLINE=y\n"
PLAIN = "CONFIG_PVH=y\n# CONFIG_KASAN is not set\n"
PVH_MAKEFILE_61 = ("# SPDX-License-Identifier: GPL-2.0\nOBJECT_FILES_NON_STANDARD_head.o := y\n\n"
                   "obj-$(CONFIG_PVH) += enlighten.o\nobj-$(CONFIG_PVH) += head.o\n")


def test_kasan_kernels_boot_from_the_bzimage():
    assert "triple-faults" in pvh_entry_refused(KASAN, PVH_MAKEFILE_61)
    assert pvh_entry_refused(KASAN, None)  # tree unknown: the safe choice
    assert pvh_entry_refused(PLAIN, PVH_MAKEFILE_61) == ""
    # A tree that keeps KASAN out of the PVH entry's C code may use it.
    assert pvh_entry_refused(KASAN, PVH_MAKEFILE_61 + "KASAN_SANITIZE := n\n") == ""
    assert pvh_entry_refused("CONFIG_KASAN=m\n# not a real option value\n", None) == ""


def built(tmp_path: Path, config: str, manifest: dict) -> BuiltKernel:
    (tmp_path / "config").write_text(config)
    for name in ("bzImage", "vmlinux"):
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    return BuiltKernel(directory=tmp_path, bzimage=tmp_path / "bzImage",
                       vmlinux=tmp_path / "vmlinux", modules_image=None, release="6.1.192",
                       config_hash="h", patches=(), manifest=manifest)


def test_boot_image_follows_the_recorded_decision(tmp_path):
    assert built(tmp_path, PLAIN, {"pvh_refused": ""}).boot_image.name == "vmlinux"
    kasan = built(tmp_path, KASAN, {"pvh_refused": "CONFIG_KASAN=y: ..."})
    assert kasan.boot_image.name == "bzImage" and kasan.vmlinux  # kept for the symbolizer
    # A cache entry made before the decision was recorded: decided from its config.
    assert built(tmp_path, KASAN, {}).boot_image.name == "bzImage"
    assert built(tmp_path, PLAIN, {}).boot_image.name == "vmlinux"


def test_qemu_logs_cpu_resets():
    boot = BootSpec(kernel=Path("/k/bzImage"), initrd=None, rootfs=Path("/k/root.img"),
                    cmdline="console=ttyS0")
    argv = build_argv(load_profile("default", check_host=False), boot, GuestFiles(Path("/w")),
                      "tcg", 10022, qemu_binary="qemu-system-x86_64")
    assert argv[argv.index("-d") + 1] == "cpu_reset"


# What QEMU 7.2 writes with -d cpu_reset: a dump per reset at start-up (CPU 0, then 1), and
# "Triple fault" before the dump of the reset the fault caused.
RESET = ("CPU Reset (CPU {cpu})\nRAX=0000000000000000 RBX=0000000000000000\n"
         "RIP={rip} RFL=00010006 [-----P-] CPL=0 II=0 A20=1 SMM=0 HLT=0\n"
         "ES =0000 0000000000000000 ffffffff 00c00000\nGDT=     0000000000000000 0000ffff\n"
         "CR0={cr0} CR2=dffffc0000000000 CR3=0000000002a0c000 CR4=00000020\n"
         "EFER=0000000000000500\nXMM00=0000000000000000 0000000000000000\n")


def machine(tmp_path: Path, log: str, kernel: str = "/k/vmlinux") -> QemuMachine:
    files = GuestFiles(tmp_path)
    files.qemu_log.write_text(log)
    return QemuMachine(["qemu-system-x86_64", "-kernel", kernel], files)


def test_triple_fault_in_qemus_real_log(tmp_path):
    # QEMU 7.2's stderr with -d cpu_reset for tests/data/triple_fault_kernel.py: the start-up
    # resets, then "Triple fault" (with -no-reboot QEMU exits instead of resetting again).
    real = (Path(__file__).parents[1] / "data" / "qemu" / "triple-fault-cpu_reset.log")
    m = machine(tmp_path, real.read_text())
    assert m.triple_fault() == "QEMU logged 'Triple fault'"
    assert m.stderr_tail() == ""


def test_triple_fault_evidence_and_a_clean_stderr_tail(tmp_path):
    startup = RESET.format(cpu=0, rip="0000fff0", cr0="60000010")
    fault = "Triple fault\n" + RESET.format(cpu=0, rip="ffffffff8286c0a3", cr0="80050033")
    m = machine(tmp_path, startup + fault + "qemu-system-x86_64: terminating on signal 15\n")
    assert m.triple_fault() == ("QEMU logged 'Triple fault' (RIP=ffffffff8286c0a3, "
                                "CR0=80050033 CR2=dffffc0000000000)")
    assert m.stderr_tail() == "qemu-system-x86_64: terminating on signal 15"
    assert machine(tmp_path, startup).triple_fault() == ""  # resets at start-up are normal


def test_triple_fault_message(tmp_path):
    kernel = tmp_path / "vmlinux"
    kernel.write_bytes(b"\x7fELF\x02\x01")
    message = _triple_fault_message("QEMU logged 'Triple fault'", "", kernel)
    assert message.startswith("boot failed: the guest reset before its console came up: "
                              "triple fault in early boot; QEMU logged 'Triple fault'; ")
    assert "try its bzImage" in message
    later = _triple_fault_message("QEMU logged 'Triple fault'",
                                  "[    0.000000] Linux version 6.1\n[    0.5] smpboot: CPU0\n",
                                  kernel)
    assert later.startswith("boot failed: the guest reset itself (triple fault) after: "
                            "[    0.5] smpboot: CPU0")


def test_debug_checkers_scale_deadlines_and_set_their_parameters():
    from harness.kconfig import debug_cost

    kasan = debug_cost(KASAN + "CONFIG_PROVE_LOCKING=y\n")
    assert (kasan.slowdown, kasan.cmdline) == (3.0, "kasan_multi_shot") and kasan.any
    assert kasan.checkers == ("KASAN", "PROVE_LOCKING")
    lockdep = debug_cost("CONFIG_PROVE_LOCKING=y\n# CONFIG_KASAN is not set\n")
    assert (lockdep.slowdown, lockdep.cmdline) == (1.5, "")
    assert not debug_cost(PLAIN).any


def test_kasan_parameters_reach_the_kernel_command_line():
    from harness.guest import GuestConfig, KernelChoice

    kernel = KernelChoice(kernel=Path("/k/bzImage"), initrd=None, source="tree",
                          slowdown=3.0, cmdline_extra="kasan_multi_shot")
    config = GuestConfig(profile=load_profile("debug", check_host=False), image=None,
                         kernel=kernel, accel=None)
    assert config.cmdline().endswith(" kasan_multi_shot")
    assert config.profile.memory == 3 * 1024 ** 3
