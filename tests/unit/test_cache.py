"""Guests started together (`--jobs N`: one per xdist worker) prepare the same image, kernel
and KVM verdict at the same moment: one of them builds, the others wait on the cache lock
and reuse the result."""

import json
import multiprocessing
import time
from pathlib import Path

import pytest

from harness import accel, cache, image

# fork: the children inherit the monkeypatched builders.
fork = multiprocessing.get_context("fork")


def _in_parallel(target, n=3):
    procs = [fork.Process(target=target) for _ in range(n)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(30)
    for p in procs:  # a hang must not outlive the test
        if p.is_alive():
            p.kill()
            p.join()
    assert all(p.exitcode == 0 for p in procs), [p.exitcode for p in procs]


def test_concurrent_image_preparation_builds_once(tmp_path, monkeypatch):
    monkeypatch.setenv("NVH_CACHE_DIR", str(tmp_path / "cache"))
    builds = tmp_path / "builds"

    def slow_build(recipe, out: Path, step) -> None:
        with open(builds, "a") as f:
            f.write("build\n")
        time.sleep(0.5)  # long enough for the others to arrive while it builds
        (out / "manifest.json").write_text(json.dumps({"kernel_release": "6.1-test"}))

    monkeypatch.setattr(image, "_build", slow_build)
    monkeypatch.setattr(image, "_check_host_tools", lambda: None)
    recipe = image.load_recipe(None)
    _in_parallel(lambda: image.ensure_image(recipe))
    assert builds.read_text() == "build\n"
    assert cache.is_complete(image.image_dir(recipe))
    assert image.ensure_image(recipe).kernel_release == "6.1-test"


def test_concurrent_kernel_preparation_builds_once(tmp_path, monkeypatch):
    from harness import kernel

    monkeypatch.setenv("NVH_CACHE_DIR", str(tmp_path / "cache"))
    tree = tmp_path / "linux"
    (tree / "arch" / "x86").mkdir(parents=True)
    (tree / "Makefile").write_text("VERSION = 6\nPATCHLEVEL = 1\n")
    (tree / "Kconfig").write_text("")
    builds = tmp_path / "builds"

    def slow_build(tree, parsed, frags, base, build_id, out: Path, step, manifest) -> None:
        with open(builds, "a") as f:
            f.write("build\n")
        time.sleep(0.5)
        (out / "bzImage").write_bytes(b"k")
        (out / "manifest.json").write_text(json.dumps(
            {**manifest, "release": "6.1.0-test", "patches": []}))

    monkeypatch.setattr(kernel, "_build", slow_build)
    monkeypatch.setattr(kernel, "compiler_version", lambda: "gcc (test) 12")
    _in_parallel(lambda: kernel.build_kernel(tree, []))
    assert builds.read_text() == "build\n"
    assert kernel.build_kernel(tree, []).release == "6.1.0-test"


def test_concurrent_kvm_probes_boot_once(tmp_path, monkeypatch):
    monkeypatch.setenv("NVH_CACHE_DIR", str(tmp_path / "cache"))
    probes = tmp_path / "probes"

    def slow_probe(kernel):
        with open(probes, "a") as f:
            f.write("probe\n")
        time.sleep(0.5)
        return False, "test verdict"

    monkeypatch.setattr(accel, "_probe", slow_probe)
    _in_parallel(lambda: accel.probe_once("key", tmp_path / "vmlinuz"))
    assert probes.read_text() == "probe\n"


@pytest.mark.parametrize("n", [2])
def test_lock_serialises_builders(tmp_path, n):
    """The primitive itself: a second holder waits until the first releases."""
    entry = tmp_path / "entry"
    log = tmp_path / "log"

    def hold():
        with cache.locked(entry):
            with open(log, "a") as f:
                f.write("in\n")
            time.sleep(0.3)
            with open(log, "a") as f:
                f.write("out\n")

    _in_parallel(hold, n)
    assert log.read_text() == "in\nout\n" * n
