"""Put a namespace into a DAX mode for a test, and put it back afterwards.

Filesystem geometry matters: PMD (2 MiB) DAX faults need 2 MiB-aligned extents. Measured on
Debian 6.1: `mkfs.ext4 -b 4096` alone gave 32/32 dax_pmd_fault_done FALLBACK, adding
`-E stride=512,stripe_width=512` gave 32/32 NOPAGE; xfs needs a 2 MiB stripe unit
(ndctl's test/dax.sh uses `-d su=2m,sw=1`), and reflink off because DAX excludes it on 6.1.
Verified for the O_DIRECT suite: `-d su=2m,sw=1` gives 32/32 NOPAGE for a 64 MiB fallocated
file (plain `mkfs.xfs -m reflink=0` gave FALLBACK + PTE faults).

buffer_modes() / buffer_in_mode() name the buffer kinds of the O_DIRECT matrix (fsdax on
ext4/xfs, devdax 2M/4K, each map=mem or map=dev; anon and page-cache controls) and provide
one, clean, for a test. Teardown survives what a failed test leaves behind: a busy mount
(processes still using it are killed, then a lazy umount) and a namespace that does not
reset on the first try.
"""

from __future__ import annotations

import contextlib
import shlex
import time
from collections.abc import Iterator
from dataclasses import dataclass

from .ndctl import Namespace, Ndctl

MOUNTPOINT = "/mnt/dax"
DEFAULT_NAMESPACE = "namespace0.0"

MKFS: dict[str, list[str]] = {
    "ext4": ["mkfs.ext4", "-q", "-F", "-b", "4096", "-E", "stride=512,stripe_width=512"],
    "xfs": ["mkfs.xfs", "-q", "-f", "-m", "reflink=0", "-d", "su=2m,sw=1"],
}


@dataclass(frozen=True)
class FsdaxMount:
    namespace: Namespace
    fs: str
    mountpoint: str

    def path(self, name: str) -> str:
        return f"{self.mountpoint}/{name}"


class NamespaceResetError(RuntimeError):
    """A test could not put its namespace back; the next test would inherit the mess."""


@contextlib.contextmanager
def devdax(ndctl: Ndctl, align: str = "2M", map: str = "dev",
           dev: str = DEFAULT_NAMESPACE) -> Iterator[Namespace]:
    _unmount_leftover(ndctl)
    ns = ndctl.reconfigure(dev, "devdax", map=map, align=align)
    with _reset_afterwards(ndctl, dev):
        yield ns


@contextlib.contextmanager
def fsdax_mount(ndctl: Ndctl, fs: str, map: str = "dev",
                dev: str = DEFAULT_NAMESPACE) -> Iterator[FsdaxMount]:
    guest = ndctl.guest
    _unmount_leftover(ndctl)
    ns = ndctl.reconfigure(dev, "fsdax", map=map)
    with _reset_afterwards(ndctl, dev):
        guest.succeed(shlex.join([*MKFS[fs], ns.device_path]), timeout_s=300)
        guest.succeed(f"mkdir -p {MOUNTPOINT} && mount -o dax {ns.device_path} {MOUNTPOINT}")
        try:
            # `-o dax` on a device that cannot do DAX silently mounts without it on old
            # kernels.
            guest.succeed(f"grep -E ' {MOUNTPOINT} .*dax' /proc/mounts")
            yield FsdaxMount(ns, fs, MOUNTPOINT)
        finally:
            unmount(ndctl)


def unmount(ndctl: Ndctl, mountpoint: str = MOUNTPOINT) -> None:
    """umount; if busy, kill what still uses it (a workload left behind), then lazily."""
    guest = ndctl.guest
    with contextlib.suppress(ConnectionError):
        if guest.run(f"umount {mountpoint}", timeout_s=120).status == 0:
            return
        # No fuser in the image: find processes mapping or holding files under it.
        guest.run(f"for p in /proc/[0-9]*; do if grep -qs ' {mountpoint}/' $p/maps || "
                  f"ls -l $p/fd 2>/dev/null | grep -q ' {mountpoint}/'; then "
                  "kill -KILL ${p#/proc/}; fi; done; sleep 1; "
                  f"umount {mountpoint} || umount -l {mountpoint}", timeout_s=120)


def _unmount_leftover(ndctl: Ndctl) -> None:
    """A test that died mid-way may have left the mount behind: clear it first."""
    if ndctl.guest.run(f"mountpoint -q {MOUNTPOINT}", timeout_s=30).status == 0:
        unmount(ndctl)


@contextlib.contextmanager
def _reset_afterwards(ndctl: Ndctl, dev: str) -> Iterator[None]:
    """Reset `dev` after the block. A failed reset is an error of this test only when the
    block itself succeeded (never hide the test's own exception behind it)."""
    try:
        yield
    except BaseException:
        with contextlib.suppress(Exception):
            reset_namespace(ndctl, dev)
        raise
    reset_namespace(ndctl, dev, check=True)


def reset_namespace(ndctl: Ndctl, dev: str = DEFAULT_NAMESPACE, check: bool = False) -> None:
    """Back to raw mode so the next test starts from the same state; skip if the guest died.

    Copes with what removal tests leave: a disabled namespace or region, or a destroyed
    namespace (whose seed is then another namespaceX.Y of zero size; cycling the region makes
    `dev` the seed again). With check, a reset that cannot be done raises
    NamespaceResetError with ndctl's output.
    """
    region = "region" + dev.removeprefix("namespace").split(".")[0]
    command = f"ndctl create-namespace -f -e {dev} -m raw"
    with contextlib.suppress(ConnectionError):
        guest = ndctl.guest
        result = guest.run(command, timeout_s=300)
        if result.status != 0:
            time.sleep(1)  # e.g. udev still holding the device node of the old mode
            guest.run(f"ndctl enable-region {region}; ndctl enable-namespace {dev}",
                      timeout_s=120)
            result = guest.run(command, timeout_s=300)
        if result.status != 0:
            result = guest.run(f"ndctl disable-region {region} && ndctl enable-region {region}"
                               f" && ndctl create-namespace -r {region} -m raw | "
                               f"grep -q '\"dev\":\"{dev}\"'", timeout_s=300)
        if result.status != 0 and check:
            raise NamespaceResetError(f"could not reset {dev} to raw:\n{result.describe()}")


# The page-cache control: a file on the guest's root ext4 (/tmp is tmpfs, whose shmem pages
# are another kind of memory).
PAGECACHE_DIR = "/var/tmp/nvh-odirect"


@dataclass(frozen=True)
class BufferMode:
    """A matrix mode: how nvh-odirect's --buffer is provided.

    name: fsdax-ext4-mem, devdax-2M-dev, anon, pagecache, ...
    """

    name: str
    kind: str                 # fsdax | devdax | anon | shmem | pagecache
    fs: str | None = None     # fsdax: ext4 | xfs
    align: str | None = None  # devdax: 2M | 4K
    map: str | None = None    # mem | dev (where the struct pages live)

    @property
    def file_backed(self) -> bool:
        return self.kind in ("fsdax", "pagecache")


def buffer_modes() -> list[BufferMode]:
    modes = [BufferMode(f"fsdax-{fs}-{m}", "fsdax", fs=fs, map=m)
             for fs in ("ext4", "xfs") for m in ("mem", "dev")]
    modes += [BufferMode(f"devdax-{a}-{m}", "devdax", align=a, map=m)
              for a in ("2M", "4K") for m in ("mem", "dev")]
    return [*modes, BufferMode("anon", "anon"), BufferMode("pagecache", "pagecache")]


def pin_buffer_modes() -> list[BufferMode]:
    """The pinning matrix: fsdax on both filesystems, devdax with PMD pages, memmap in RAM
    and in pmem; controls anonymous, shmem (memfd) and page cache. devdax 4K adds no pin
    path of its own (the same devmap PTEs the fsdax modes have)."""
    modes = [m for m in buffer_modes() if m.kind == "fsdax" or m.align == "2M"]
    return [*modes, BufferMode("anon", "anon"), BufferMode("shmem", "shmem"),
            BufferMode("pagecache", "pagecache")]


@contextlib.contextmanager
def buffer_in_mode(ndctl: Ndctl, mode: BufferMode) -> Iterator[str]:
    """A clean namespace (or file) in `mode` for one test; yields nvh-odirect's --buffer.

    Namespaces are reconfigured from whatever state they are in and reset to raw
    afterwards; the page-cache file is removed.
    """
    if mode.kind == "fsdax":
        with fsdax_mount(ndctl, mode.fs, map=mode.map) as mount:
            yield f"file:{mount.path('buffer')}"
    elif mode.kind == "devdax":
        with devdax(ndctl, align=mode.align, map=mode.map) as ns:
            yield f"devdax:{ns.device_path}"
    elif mode.kind == "pagecache":
        guest = ndctl.guest
        guest.succeed(f"rm -rf {PAGECACHE_DIR} && mkdir -p {PAGECACHE_DIR} && "
                      f"stat -f -c %T {PAGECACHE_DIR} | grep -qx ext2/ext3")
        try:
            yield f"file:{PAGECACHE_DIR}/buffer"
        finally:
            with contextlib.suppress(ConnectionError):
                guest.run(f"rm -rf {PAGECACHE_DIR}", timeout_s=60)
    elif mode.kind == "shmem":
        yield "shmem"
    else:
        yield "anon"
