"""A use-after-free provoked in a DAX path, run by tests/e2e/test_debug_kernel.py on a debug
(KASAN) kernel built with tests/data/patches/0003-fsdax-use-after-free-on-magic-offset.patch
(dax_iomap_rw() reads a freed object for I/O at file offset 0x4e564c00). The workload
succeeds and a plain kernel says nothing: only KASAN sees it, and that must fail this test
with the finding's title and its file:line.
"""

from harness import dax

MAGIC_OFFSET = 0x4E564C00


def test_1_dax_write_at_the_uaf_offset(ndctl, guest):
    with dax.fsdax_mount(ndctl, "ext4", map="mem") as mount:
        guest.succeed(f"dd if=/dev/zero of={mount.path('f')} bs=512 count=1 "
                      f"seek={MAGIC_OFFSET // 512} conv=notrunc status=none")


def test_2_next_test_is_clean(guest):
    # KASAN tainted the kernel (TAINT_BAD_PAGE): this runs on a fresh guest.
    assert guest.boots == 2, f"expected a restart after the KASAN report, boots={guest.boots}"
    assert guest.succeed("cat /proc/sys/kernel/tainted").strip() == "0"
