"""A WARN provoked in a DAX path, run by tests/e2e/test_kernel.py on a kernel built with
tests/data/patches/0002-fsdax-warn-on-magic-offset.patch (a WARN in dax_iomap_rw() for I/O at
file offset 0x4e564800). The workload itself succeeds: only the kernel log says something went
wrong, and that must fail exactly this test, with the finding's title.
"""

from harness import dax

MAGIC_OFFSET = 0x4E564800


def test_1_dax_write_at_the_magic_offset(ndctl, guest):
    with dax.fsdax_mount(ndctl, "ext4", map="mem") as mount:
        guest.succeed(f"dd if=/dev/zero of={mount.path('f')} bs=512 count=1 "
                      f"seek={MAGIC_OFFSET // 512} conv=notrunc status=none")


def test_2_next_test_is_clean(guest):
    # The WARN tainted the kernel: this runs on a fresh guest.
    assert guest.boots == 2, f"expected a restart after the WARN, boots={guest.boots}"
    assert guest.succeed("cat /proc/sys/kernel/tainted").strip() == "0"
