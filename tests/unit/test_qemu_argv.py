"""The QEMU command line built from a profile."""

from pathlib import Path

import pytest

from harness.profile import load_profile, parse_profile
from harness.qemu import BootSpec, GuestFiles, build_argv

BOOT = BootSpec(kernel=Path("/k/vmlinuz"), initrd=Path("/k/initrd"), rootfs=Path("/k/root.img"),
                cmdline="console=ttyS0 root=/dev/vda")
FILES = GuestFiles(Path("/w"))


def argv_for(profile, accel="tcg", port=10022):
    return build_argv(profile, BOOT, FILES, accel, port, qemu_binary="qemu-system-x86_64")


def values(argv, flag):
    return [argv[i + 1] for i, a in enumerate(argv) if a == flag]


def test_default_profile_argv():
    argv = argv_for(load_profile("default", check_host=False))
    assert values(argv, "-machine") == ["q35,nvdimm=on"]
    assert values(argv, "-m") == ["2048M,slots=2,maxmem=4100M"]
    objects = values(argv, "-object")
    assert objects[0] == ("memory-backend-file,id=nvmem0,share=on,mem-path=/w/nvdimm0.img,"
                          "size=1075838976,align=2097152")
    devices = values(argv, "-device")
    assert "nvdimm,id=nvdimm0,memdev=nvmem0,label-size=131072,node=0" in devices
    assert "nvdimm,id=nvdimm1,memdev=nvmem1,label-size=131072,node=0" in devices
    drives = values(argv, "-drive")
    assert drives[0] == "file=/k/root.img,if=virtio,format=raw,snapshot=on"
    assert drives[1].startswith("file=/w/scratch.img,if=virtio")
    assert "user,id=net0,hostfwd=tcp:127.0.0.1:10022-:22" in values(argv, "-netdev")
    assert "-no-reboot" in argv and "-nodefaults" in argv
    assert values(argv, "-qmp") == ["unix:/w/qmp.sock,server=on,wait=off"]
    assert "logfile=/w/console.log" in values(argv, "-chardev")[0]
    assert values(argv, "-append") == ["console=ttyS0 root=/dev/vda"]
    assert values(argv, "-initrd") == ["/k/initrd"]


@pytest.mark.parametrize("accel, expected", [("tcg", "tcg,thread=multi"), ("kvm", "kvm")])
def test_accel(accel, expected):
    argv = argv_for(load_profile("default", check_host=False), accel)
    assert values(argv, "-accel") == [expected]
    assert values(argv, "-cpu") == ["max"]  # -cpu host aborts on MSR 0x10a under nested KVM


def test_a_profile_can_run_tcg_single_threaded():
    profile = parse_profile({"tcg_thread": "single", "nvdimms": [{"size": "1G"}]}, "p", "p")
    assert values(argv_for(profile, "tcg"), "-accel") == ["tcg,thread=single"]


def test_a_profile_can_hide_virtualization_from_the_guest():
    profile = parse_profile({"cpu": "max,-svm,-vmx", "nvdimms": [{"size": "1G"}]}, "p", "p")
    assert values(argv_for(profile), "-cpu") == ["max,-svm,-vmx"]


def test_numa_nodes_for_pmem_on_a_second_node():
    profile = parse_profile({"memory": "1G", "nvdimms": [{"size": "1G", "node": 1}]}, "p", "p")
    argv = argv_for(profile)
    assert values(argv, "-numa") == ["node,nodeid=0,memdev=ram0", "node,nodeid=1"]
    assert "memory-backend-ram,id=ram0,size=1073741824" in values(argv, "-object")
    assert "nvdimm,id=nvdimm0,memdev=nvmem0,label-size=131072,node=1" in values(argv, "-device")


def test_no_initrd_when_kernel_has_everything_built_in():
    boot = BootSpec(kernel=Path("/k/bzImage"), initrd=None, rootfs=Path("/r"), cmdline="x")
    argv = build_argv(load_profile("default", check_host=False), boot, FILES, "tcg", 1)
    assert "-initrd" not in argv


def test_pc_machine_and_explicit_slots():
    profile = parse_profile({"machine": "pc", "slots": 4, "nvdimms": [{"size": "1G"}]}, "p", "p")
    argv = argv_for(profile)
    assert values(argv, "-machine") == ["pc,nvdimm=on"]
    assert values(argv, "-m")[0].endswith("slots=4,maxmem=3074M")
