"""End to end: the debug configuration (--config debug: KASAN, lockdep, UBSAN, DEBUG_VM) of
Debian's 6.1 tree builds (cached), boots through its bzImage (the PVH entry of a KASAN kernel
triple-faults), runs a test of each family, and catches what only it can see: a
use-after-free in a DAX path (tests/data/patches/0003-...), titled and located at file:line.

One build serves both runs: the demo patch only acts at one magic file offset.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "data"))
from patch_lines import line_added_by

ROOT = Path(__file__).resolve().parents[2]
UAF_PATCH = ROOT / "tests" / "data" / "patches" / "0003-fsdax-use-after-free-on-magic-offset.patch"
NVH = [sys.executable, "-m", "harness.cli"]
ONE_OF_EACH_FAMILY = ("fsdax-ext4-mem-read-untouched-4K or fsdax-ext4-mem-vmsplice or "
                      "test_remove_busy_fsdax and disable-ext4")

pytestmark = pytest.mark.e2e


def debug_kernel(tree: Path) -> list[str]:
    return ["--kernel-tree", str(tree), "--config", "debug", "--patches", str(UAF_PATCH)]


def test_kasan_catches_a_use_after_free_in_a_dax_path(kernel_tree, tmp_path, no_new_qemu):
    results = tmp_path / "r"
    proc = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q",
                           "tests/guest_faults/test_kasan.py", *debug_kernel(kernel_tree),
                           "--results", str(results)],
                          cwd=ROOT, capture_output=True, text=True, timeout=5400)
    summary = json.loads((results / "summary.json").read_text())
    tests = {t["id"].rsplit("::", 1)[-1]: t for t in summary["tests"]}
    provoked = tests["test_1_dax_write_at_the_uaf_offset"]
    assert provoked["outcome"] == "failed", proc.stdout[-3000:] + proc.stderr[-3000:]
    (finding,) = [f for f in provoked["kernel_findings"] if f["kind"] == "kasan"]
    assert finding["title"] == "KASAN: use-after-free Read in dax_iomap_rw", finding
    assert finding["location"] == f"fs/dax.c:{line_added_by(UAF_PATCH, 'READ_ONCE(freed')}", finding
    assert tests["test_2_next_test_is_clean"]["outcome"] == "passed", proc.stdout[-3000:]
    # The boot went through the bzImage, with KASAN's parameters and the debug profile.
    assert summary["kernel"]["boot_image"].endswith("bzImage"), summary["kernel"]
    assert summary["kernel"]["slowdown"] == 3.0 and summary["profile"]["name"] == "debug"
    console = (results / "console.log").read_text(errors="replace")
    assert "kasan_multi_shot" in console and "KernelAddressSanitizer initialized" in console


def test_one_test_of_each_family_passes_on_the_debug_kernel(kernel_tree, tmp_path,
                                                             no_new_qemu):
    results = tmp_path / "r"
    proc = subprocess.run([*NVH, "run", *debug_kernel(kernel_tree), "-k", ONE_OF_EACH_FAMILY,
                           "--results", str(results)],
                          cwd=ROOT, capture_output=True, text=True, timeout=5400)
    summary = json.loads((results / "summary.json").read_text())
    outcomes = {t["id"]: t["outcome"] for t in summary["tests"]}
    assert len(outcomes) == 3 and set(outcomes.values()) == {"passed"}, \
        (outcomes, proc.stdout[-3000:], proc.stderr[-3000:])
    assert {i.split("::")[0] for i in outcomes} == {
        "testcases/test_odirect.py", "testcases/test_pin.py", "testcases/test_remove.py"}
    assert proc.returncode == 0
