"""`nvdimm-harness cache`: listing and pruning by last use, never what a build holds."""

import fcntl
import os
import time

from harness import cache, cache_admin
from harness.cli import main

DAY = 86400


def make_entry(root, sub, name, days_ago, now, size=4096):
    p = root / sub / name
    if name.endswith(".ext4"):
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"x" * size)
    else:
        p.mkdir(parents=True)
        (p / "blob").write_bytes(b"x" * size)
        if sub in ("images", "kernels"):
            (p / cache.COMPLETE_MARKER).write_text("ok\n")
    os.utime(cache.stamp_path(p), (now - days_ago * DAY, now - days_ago * DAY))
    return p


def test_prune_goes_by_last_use_and_spares_what_a_build_holds(tmp_path):
    now = time.time()
    old_image = make_entry(tmp_path, "images", "debian-old", 40, now)
    new_image = make_entry(tmp_path, "images", "debian-new", 1, now)
    old_kernel = make_entry(tmp_path, "kernels", "aaaa", 40, now)
    old_modules = make_entry(tmp_path, "modules", "bbbb.ext4", 40, now)
    busy_build = make_entry(tmp_path, "kernel-build", "cccc", 40, now)
    busy_src = make_entry(tmp_path, "kernel-src", "cccc", 40, now)
    (tmp_path / "kernel-src" / "cccc.patched-files").write_text("fs/dax.c\n")
    (tmp_path / "images" / ".debian-new.tmp-123").mkdir()  # a build in progress: not listed
    assert [e.path for e in cache_admin.entries(tmp_path)] == [
        new_image, old_image, old_kernel, old_modules, busy_build, busy_src]

    with open(tmp_path / "kernel-build" / ".cccc.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a kernel build runs on cccc (tree and source copy)
        removed, busy = cache_admin.prune(30, dry_run=True, root=tmp_path, now=now)
        assert [e.path for e in removed] == [old_image, old_kernel, old_modules]
        assert [e.path for e in busy] == [busy_build, busy_src]
        assert old_image.exists()  # a dry run removes nothing

        cache_admin.prune(30, root=tmp_path, now=now)
        assert not old_image.exists() and not old_kernel.exists() and not old_modules.exists()
        assert new_image.exists() and busy_build.exists() and busy_src.exists()
        fcntl.flock(lock, fcntl.LOCK_UN)
    removed, busy = cache_admin.prune(30, root=tmp_path, now=now)
    assert [e.path for e in removed] == [busy_build, busy_src] and not busy
    assert not (tmp_path / "kernel-src" / "cccc.patched-files").exists()


def test_use_refreshes_the_time(tmp_path):
    now = time.time()
    for sub, name in (("kernels", "aaaa"), ("kernel-build", "bbbb"), ("modules", "c.ext4")):
        entry = make_entry(tmp_path, sub, name, 40, now)  # with and without a marker
        cache.mark_used(entry)
        assert now - cache.last_used(entry) < 60, entry


def test_cache_command(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("NVH_CACHE_DIR", str(tmp_path))
    make_entry(tmp_path, "images", "debian-old", 40, time.time(), size=3 << 20)
    assert main(["cache"]) == 0
    out = capsys.readouterr().out
    assert "image" in out and "debian-old" in out and "1 entries, 3.0M" in out
    assert main(["cache", "prune", "--older-than", "-1"]) == 2
    assert "--older-than: '-1' is not a number of days" in capsys.readouterr().err
    assert main(["cache", "prune", "--older-than", "7"]) == 0
    assert "removed 1 entries (3.0M) unused for 7+ days" in capsys.readouterr().out
    assert not (tmp_path / "images" / "debian-old").exists()
