"""Kernel facilities the pinning tests need in the guest: a soft-RoCE device and gup_test."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .trace import MOUNT_DEBUGFS

if TYPE_CHECKING:
    from .ssh import Runner

RXE_DEVICE = "rxe0"
GUP_TEST = "/sys/kernel/debug/gup_test"


class RdmaSetupError(AssertionError):
    pass


def ensure_rxe(guest: Runner, netdev: str = "eth0") -> str:
    """rxe0 on top of the guest's NIC (drivers/infiniband/sw/rxe), created once per boot."""
    r = guest.run(f"rdma link show {RXE_DEVICE}/1 >/dev/null 2>&1 || "
                  f"{{ modprobe rdma_rxe 2>/dev/null; "
                  f"rdma link add {RXE_DEVICE} type rxe netdev {netdev}; }}", timeout_s=120)
    if r.status != 0:
        raise RdmaSetupError(f"could not create the soft-RoCE device {RXE_DEVICE}:\n"
                             f"{r.describe()}")
    return RXE_DEVICE


def has_gup_test(guest: Runner) -> bool:
    r = guest.run(f"{MOUNT_DEBUGFS}; test -e {GUP_TEST}", timeout_s=30)
    return r.status == 0
