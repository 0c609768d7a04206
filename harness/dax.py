"""Put a namespace into a DAX mode for a test, and put it back afterwards.

Filesystem geometry matters: PMD (2 MiB) DAX faults need 2 MiB-aligned extents. Measured on
Debian 6.1: `mkfs.ext4 -b 4096` alone gave 32/32 dax_pmd_fault_done FALLBACK, adding
`-E stride=512,stripe_width=512` gave 32/32 NOPAGE; xfs needs a 2 MiB stripe unit
(ndctl's test/dax.sh uses `-d su=2m,sw=1`), and reflink off because DAX excludes it on 6.1.
"""

from __future__ import annotations

import contextlib
import shlex
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


@contextlib.contextmanager
def devdax(ndctl: Ndctl, align: str = "2M", map: str = "dev",
           dev: str = DEFAULT_NAMESPACE) -> Iterator[Namespace]:
    ns = ndctl.reconfigure(dev, "devdax", map=map, align=align)
    try:
        yield ns
    finally:
        reset_namespace(ndctl, dev)


@contextlib.contextmanager
def fsdax_mount(ndctl: Ndctl, fs: str, map: str = "dev",
                dev: str = DEFAULT_NAMESPACE) -> Iterator[FsdaxMount]:
    guest = ndctl.guest
    ns = ndctl.reconfigure(dev, "fsdax", map=map)
    try:
        guest.succeed(shlex.join([*MKFS[fs], ns.device_path]), timeout_s=300)
        guest.succeed(f"mkdir -p {MOUNTPOINT} && mount -o dax {ns.device_path} {MOUNTPOINT}")
        # `-o dax` on a device that cannot do DAX silently mounts without it on old kernels.
        guest.succeed(f"grep -E ' {MOUNTPOINT} .*dax' /proc/mounts")
        yield FsdaxMount(ns, fs, MOUNTPOINT)
    finally:
        guest.run(f"umount {MOUNTPOINT}", timeout_s=120)
        reset_namespace(ndctl, dev)


def reset_namespace(ndctl: Ndctl, dev: str = DEFAULT_NAMESPACE) -> None:
    """Back to raw mode so the next test starts from the same state; skip if the guest died."""
    with contextlib.suppress(ConnectionError):
        ndctl.guest.run(f"ndctl create-namespace -f -e {dev} -m raw", timeout_s=300)
