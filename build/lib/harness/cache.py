"""The cache of expensive artefacts (guest images, kernel builds), keyed by content hash.

An entry is built in a private temporary directory next to its final place and published
with one rename, under a lock, so a crash, a full disk or two concurrent runs can never leave
a half-written entry that a later run would reuse.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import os
import shutil
from collections.abc import Iterable, Iterator
from pathlib import Path

from .errors import InfraError, UsageError

COMPLETE_MARKER = ".complete"
# A build that failed with less than this free in the cache failed for want of space.
LOW_SPACE = 64 << 20


def cache_root() -> Path:
    env = os.environ.get("NVH_CACHE_DIR")
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(xdg) / "nvdimm-harness"


def content_hash(parts: Iterable[bytes | str]) -> str:
    """sha256 over length-prefixed parts, so ('ab','c') and ('a','bc') differ."""
    h = hashlib.sha256()
    for part in parts:
        data = part.encode() if isinstance(part, str) else part
        h.update(len(data).to_bytes(8, "little"))
        h.update(data)
    return h.hexdigest()


def is_complete(entry: Path) -> bool:
    return (entry / COMPLETE_MARKER).is_file()


def stamp_path(entry: Path) -> Path:
    """The file whose mtime is the entry's last use: its .complete marker, or the entry
    itself (build trees and source copies have no marker, modules images are files)."""
    marker = entry / COMPLETE_MARKER
    return marker if marker.exists() else entry


def mark_used(entry: Path) -> None:
    """Refresh the entry's time: `nvdimm-harness cache prune` goes by the last use."""
    with contextlib.suppress(OSError):
        os.utime(stamp_path(entry))


def last_used(entry: Path) -> float:
    try:
        return stamp_path(entry).stat().st_mtime
    except OSError:
        return 0.0


@contextlib.contextmanager
def locked(entry: Path) -> Iterator[None]:
    """Exclusive lock for building `entry`; waits for a concurrent builder to finish."""
    entry.parent.mkdir(parents=True, exist_ok=True)
    lock_path = entry.parent / f".{entry.name}.lock"
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


@contextlib.contextmanager
def staging_dir(entry: Path) -> Iterator[Path]:
    """A fresh directory beside `entry`; on success it is renamed into place atomically.

    Leftovers of killed builds (other pids) are removed first; the caller holds the lock.
    """
    for stale in entry.parent.glob(f".{entry.name}.tmp-*"):
        shutil.rmtree(stale, ignore_errors=True)
    tmp = entry.parent / f".{entry.name}.tmp-{os.getpid()}"
    tmp.mkdir(parents=True)
    try:
        yield tmp
        (tmp / COMPLETE_MARKER).write_text("ok\n")
        if entry.exists():
            shutil.rmtree(entry)
        os.rename(tmp, entry)
    except Exception as e:
        # Whatever a build step said (mmdebstrap, cp, make, Python's own ENOSPC), a full
        # cache disk is the reason a person needs to read first.
        free = _free_bytes(entry.parent)
        if not isinstance(e, UsageError) and (
                (free is not None and free < LOW_SPACE) or _says_disk_full(e)):
            what = str(e).strip() or type(e).__name__
            now = f" ({free >> 20} MiB free now)" if free is not None else ""
            raise InfraError(f"no space left in the cache {cache_root()}{now} while building "
                             f"{entry.name}: {what}") from e
        raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _says_disk_full(e: Exception) -> bool:
    """ENOSPC from Python, or in the last lines of a build tool (apt's "write (28: No space
    left on device)", gcc's "No space left on device"), which cleans up before we look."""
    return getattr(e, "errno", None) == errno.ENOSPC or "No space left on device" in str(e)


def _free_bytes(path: Path) -> int | None:
    try:
        return shutil.disk_usage(path).free
    except OSError:
        return None


def dir_size(path: Path) -> int:
    total = 0
    for p in path.rglob("*"):
        with contextlib.suppress(OSError):
            if p.is_file() and not p.is_symlink():
                total += p.stat().st_blocks * 512
    return total
