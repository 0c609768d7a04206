"""--kernel-package: the spec, the module load order, the initramfs format, its /init."""

import shutil
import subprocess

import pytest

from harness import kernel_package as kp
from harness.errors import UsageError
from harness.guest_options import GuestOptions
from harness.prepare import validate

# From the modules.dep the host's depmod wrote for trixie's linux-image-6.12.117+deb13-amd64.
MODULES_DEP_6_12 = """\
kernel/arch/x86/crypto/crc32c-intel.ko.xz:
kernel/fs/mbcache.ko.xz:
kernel/fs/ext4/ext4.ko.xz: kernel/lib/crc16.ko.xz kernel/fs/mbcache.ko.xz kernel/fs/jbd2/jbd2.ko.xz
kernel/fs/jbd2/jbd2.ko.xz:
kernel/crypto/crc32c_generic.ko.xz:
kernel/lib/crc16.ko.xz:
kernel/drivers/block/virtio_blk.ko.xz:
kernel/drivers/nvdimm/libnvdimm.ko.xz:
kernel/drivers/nvdimm/nd_btt.ko.xz: kernel/drivers/nvdimm/libnvdimm.ko.xz
""" + ("kernel/drivers/nvdimm/nd_pmem.ko.xz: kernel/drivers/nvdimm/nd_btt.ko.xz "
       "kernel/drivers/nvdimm/libnvdimm.ko.xz\n")


@pytest.mark.parametrize("spec, expected", [
    ("trixie", kp.PackageSpec(suite="trixie")),
    ("bookworm-backports", kp.PackageSpec(suite="bookworm-backports")),
    ("trixie/linux-image-6.12.117+deb13-amd64",
     kp.PackageSpec(suite="trixie", package="linux-image-6.12.117+deb13-amd64")),
])
def test_suite_and_package_specs(spec, expected):
    assert kp.parse_spec(spec) == expected


@pytest.mark.parametrize("spec, says", [
    ("Trixie", "use a suite name"),
    ("trixie/", "use a suite name"),
    ("trixie/bash", "bash is not a linux-image package"),
    ("/nonexistent/linux.deb", "no such file"),
    ("trixie; rm -rf /", "use a suite name"),
])
def test_bad_specs_are_one_line_usage_errors(spec, says):
    with pytest.raises(UsageError, match=says):
        kp.parse_spec(spec)


def test_a_file_that_is_not_a_deb_is_refused(tmp_path):
    f = tmp_path / "vmlinuz"
    f.write_bytes(b"x")
    with pytest.raises(UsageError, match=r"not a \.deb"):
        kp.parse_spec(str(f))
    deb = tmp_path / "broken.deb"
    deb.write_bytes(b"not an ar archive")
    with pytest.raises(UsageError, match="not a Debian package"):
        kp.deb_identity(deb)


def test_only_one_kernel_option():
    with pytest.raises(UsageError, match="--kernel-package and --kernel-tree: give one"):
        validate(GuestOptions(kernel_package="trixie", kernel_tree="/tmp"))


def test_dependencies_load_first_each_once():
    deps = kp.parse_modules_dep(MODULES_DEP_6_12)
    order = kp.resolve_load_order(deps, ("virtio_pci", "virtio_blk", "ext4", "jbd2",
                                         "crc32c_generic", "crc32c_intel"))
    names = [kp.module_name(p) for p in order]
    # virtio_pci is built in (no modules.dep line): nothing to load.
    assert names == ["virtio_blk", "jbd2", "mbcache", "crc16", "ext4", "crc32c_generic",
                     "crc32c_intel"]
    pmem = [kp.module_name(p) for p in kp.resolve_load_order(deps, ("nd_pmem",))]
    assert pmem == ["libnvdimm", "nd_btt", "nd_pmem"]


def test_the_initramfs_is_a_newc_cpio_the_kernel_can_read(tmp_path):
    blob = kp.cpio_newc(["dev", "modules"], [("init", b"\x7fELF...", 0o100755),
                                              ("modules/00-ext4.ko", b"ko" * 3, 0o100644)])
    assert blob.startswith(b"070701") and len(blob) % 4 == 0
    if shutil.which("cpio"):
        listing = subprocess.run(["cpio", "-it", "--quiet"], input=blob, capture_output=True)
        assert listing.stdout.decode().split() == ["dev", "modules", "init",
                                                   "modules/00-ext4.ko"]
    # Parse it back by hand: every header's fields, then name and data at 4-byte alignment.
    entries, pos = [], 0
    while True:
        fields = [int(blob[pos + 6 + 8 * i: pos + 14 + 8 * i], 16) for i in range(13)]
        mode, size, namesize = fields[1], fields[6], fields[11]
        name = blob[pos + 110: pos + 110 + namesize - 1].decode()
        pos = (pos + 110 + namesize + 3) // 4 * 4
        data = blob[pos: pos + size]
        pos = (pos + size + 3) // 4 * 4
        if name == "TRAILER!!!":
            break
        entries.append((name, oct(mode), data))
    assert entries[2] == ("init", "0o100755", b"\x7fELF...")
    assert entries[3] == ("modules/00-ext4.ko", "0o100644", b"kokoko")


def test_modules_are_stored_uncompressed(tmp_path):
    import lzma

    ko = tmp_path / "ext4.ko.xz"
    ko.write_bytes(lzma.compress(b"\x7fELF module", format=lzma.FORMAT_XZ))
    assert kp.decompress_module(ko) == b"\x7fELF module"


@pytest.mark.skipif(not shutil.which("gcc"), reason="no gcc on this host")
def test_the_init_compiles_static_without_warnings(tmp_path):
    kp.compile_init(tmp_path / "init")
    head = (tmp_path / "init").read_bytes()[:20]
    assert head[:4] == b"\x7fELF"
    assert head[16] == 2  # ET_EXEC: static, no interpreter needed in the initramfs
