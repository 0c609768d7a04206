"""What the cache holds and how to shrink it (`nvdimm-harness cache [list|prune]`).

Entries are used by content hash, so old ones are never reused once a recipe, a kernel tree
or a config changes; they only take space (a kernel build tree is ~0.6 GB, an image ~1 GB).
Every use of an entry refreshes its time (cache.mark_used), so "not used for N days" is what
pruning goes by. An entry that a build holds locked is left alone.
"""

from __future__ import annotations

import contextlib
import fcntl
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from . import cache

# (subdirectory, kind); entries are its children: guest images, built kernels, modules disk
# images for --kernel/--modules, out-of-tree objects, patched copies of kernel trees.
KINDS = (("images", "image"), ("kernels", "kernel"), ("modules", "modules"),
         ("kernel-build", "build tree"), ("kernel-src", "source copy"))


@dataclass(frozen=True)
class Entry:
    kind: str
    path: Path
    size: int
    last_used: float  # epoch seconds

    def age_days(self, now: float) -> float:
        return max(0.0, (now - self.last_used) / 86400)


def entries(root: Path | None = None) -> list[Entry]:
    root = root or cache.cache_root()
    found = []
    for sub, kind in KINDS:
        d = root / sub
        if not d.is_dir():
            continue
        for p in sorted(d.iterdir()):
            # Locks, staging directories of a build in progress, side files of a tree.
            if p.name.startswith(".") or p.name.endswith(".patched-files"):
                continue
            found.append(Entry(kind, p, _size(p), cache.last_used(p)))
    return found


def _size(p: Path) -> int:
    if p.is_dir():
        return cache.dir_size(p)
    with contextlib.suppress(OSError):
        return p.stat().st_blocks * 512
    return 0


def _lock_path(p: Path) -> Path:
    if p.parent.name == "kernel-src":  # the source copy is built under its build tree's lock
        return p.parent.parent / "kernel-build" / f".{p.name}.lock"
    return p.parent / f".{p.name}.lock"


def _busy(p: Path) -> bool:
    """A build holds the entry's lock right now."""
    lock = _lock_path(p)
    if not lock.exists():
        return False
    with open(lock) as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(f, fcntl.LOCK_UN)
    return False


def remove(entry: Entry) -> None:
    for side in (entry.path.parent / f"{entry.path.name}.patched-files", entry.path):
        if side.is_dir():
            shutil.rmtree(side)
        elif side.exists():
            side.unlink()
    if entry.path.parent.name != "kernel-src":
        with contextlib.suppress(OSError):
            _lock_path(entry.path).unlink()


def prune(older_than_days: float, dry_run: bool = False, root: Path | None = None,
          now: float | None = None) -> tuple[list[Entry], list[Entry]]:
    """(removed, kept because a build holds them) among entries unused for the given days."""
    now = time.time() if now is None else now
    removed, busy = [], []
    for e in entries(root):
        if e.age_days(now) < older_than_days:
            continue
        if _busy(e.path):
            busy.append(e)
            continue
        if not dry_run:
            remove(e)
        removed.append(e)
    return removed, busy


def human(n: int) -> str:
    for unit, shift in (("G", 30), ("M", 20), ("K", 10)):
        if n >= 1 << shift:
            return f"{n / (1 << shift):.1f}{unit}"
    return f"{n}B"


def listing(items: list[Entry], now: float | None = None) -> str:
    now = time.time() if now is None else now
    lines = [f"{'kind':12} {'size':>7} {'unused':>8}  path"]
    for e in items:
        lines.append(f"{e.kind:12} {human(e.size):>7} {e.age_days(now):7.1f}d  {e.path}")
    lines.append(f"{len(items)} entries, {human(sum(e.size for e in items))}")
    return "\n".join(lines)
