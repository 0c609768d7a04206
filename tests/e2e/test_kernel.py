"""End to end: the developer's own kernel (a real 6.1 tree, a real patch, real boots)."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "data"))
from patch_lines import line_added_by

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data"
NVH = [sys.executable, "-m", "harness.cli"]
DEMO_PATCH = DATA / "patches" / "0001-pmem-probe-marker.patch"
DEMO_MARKER = "nvdimm-harness-demo: pmem probe"
WARN_PATCH = DATA / "patches" / "0002-fsdax-warn-on-magic-offset.patch"
# A few cells of the O_DIRECT matrix: enough to prove the kernel runs the suite.
ODIRECT_SMOKE = "fsdax-ext4-mem-write-untouched-4K or fsdax-ext4-mem-read-untouched-4K"
# The KVM family on the harness's own kernel (KVM built in by nvdimm.config): a DAX slot of
# each kind and the anonymous control.
KVM_SMOKE = " or ".join(f"test_kvm_access[{cell}-guest-writes]"
                       for cell in ("devdax-2M-mem", "fsdax-xfs-dev", "anon"))
KVM_PATCH = DATA / "patches" / "0004-kvm-refuse-dax-pfns.patch"

pytestmark = pytest.mark.e2e


def nvh(*args, timeout=3600):
    return subprocess.run([*NVH, *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)


def test_boot_panic_is_exit_3_with_the_panic_in_the_report(tmp_path):
    results = tmp_path / "r"
    proc = nvh("run", "--profile", str(DATA / "profiles" / "boot-panic.yaml"),
               "--results", str(results), timeout=600)
    assert proc.returncode == 3, proc.stdout[-2000:] + proc.stderr[-2000:]
    summary = json.loads((results / "summary.json").read_text())
    assert "boot failed: kernel panic" in summary["infra_error"]
    assert "VFS: Unable to mount root fs" in summary["infra_error"]
    assert "VFS: Unable to mount root fs" in (results / "report.html").read_text()


def test_unsatisfiable_fragment_fails_before_the_build(kernel_tree):
    proc = nvh("kernel", "build", "--tree", str(kernel_tree),
               "--config", str(DATA / "kconfig-unsatisfiable.config"), timeout=600)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "CONFIG_GUP_TEST" in proc.stderr
    assert "DEBUG_FS" in proc.stderr  # the unmet dependency is named
    assert "Traceback" not in proc.stderr


def test_patch_that_does_not_apply_names_patch_and_file(kernel_tree, tmp_path):
    bad = tmp_path / "0001-bad.patch"
    bad.write_text(DEMO_PATCH.read_text().replace("if (IS_ERR(ndns))", "if (IS_ERR(xyz))"))
    proc = nvh("kernel", "build", "--tree", str(kernel_tree), "--patches", str(bad),
               timeout=600)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "0001-bad.patch does not apply" in proc.stderr
    assert "drivers/nvdimm/pmem.c" in proc.stderr


def test_build_error_is_exit_3_with_the_compiler_error(kernel_tree, tmp_path):
    broken = tmp_path / "0001-break-the-build.patch"
    broken.write_text(DEMO_PATCH.read_text().replace(
        'dev_info(dev, "nvdimm-harness-demo: pmem probe\\n");',
        '#error "nvdimm-harness deliberate build failure"'))
    proc = nvh("kernel", "build", "--tree", str(kernel_tree), "--patches", str(broken))
    assert proc.returncode == 3, proc.stderr[-2000:]
    assert "kernel build failed" in proc.stderr
    assert "nvdimm-harness deliberate build failure" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.slow
def test_patched_tree_builds_boots_and_shows_the_marker(kernel_tree, tmp_path):
    results = tmp_path / "r"
    proc = nvh("run", "--kernel-tree", str(kernel_tree), "--patches", str(DEMO_PATCH),
               "-k", f"{ODIRECT_SMOKE} or ({KVM_SMOKE})", "--results", str(results))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    summary = json.loads((results / "summary.json").read_text())
    # the unpatched KVM path: DAX slots run (and are judged) on the harness's own kernel
    assert sum("test_kvm_access" in t["id"] for t in summary["tests"]) == 3
    kernel = summary["kernel"]
    assert kernel["source"] == "tree"
    assert kernel["release"].startswith("6.1.")
    assert kernel["config_hash"]
    assert kernel["patches"] == ["[PATCH] nvdimm/pmem: log a marker on probe "
                                 "(nvdimm-harness demo)"]
    assert DEMO_MARKER in (results / "console.log").read_text()
    assert all(t["outcome"] == "passed" for t in summary["tests"])

    # The same kernel as a plain --kernel bzImage (everything built in, no --modules).
    built = nvh("kernel", "build", "--tree", str(kernel_tree), "--patches", str(DEMO_PATCH))
    assert built.returncode == 0, built.stderr[-2000:]
    bzimage = next(line.split(": ", 1)[1] for line in built.stdout.splitlines()
                   if line.startswith("bzImage: "))
    again = nvh("run", "--kernel", bzimage, "-k", ODIRECT_SMOKE,
                "--results", str(tmp_path / "r2"))
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]


@pytest.mark.slow
def test_kvm_demo_patch_turns_the_kvm_family_red(kernel_tree, tmp_path):
    """hva_to_pfn() refusing ZONE_DEVICE pages (the KVM half of the seed series undone):
    every DAX slot fails with the difference named, the anonymous control still passes."""
    results = tmp_path / "r"
    proc = nvh("run", "--kernel-tree", str(kernel_tree), "--patches", str(KVM_PATCH),
               "-k", KVM_SMOKE, "--results", str(results))
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-3000:]
    summary = json.loads((results / "summary.json").read_text())
    tests = {t["id"].rsplit("[", 1)[-1].rstrip("]"): t for t in summary["tests"]}
    assert tests["anon-guest-writes"]["outcome"] == "passed"
    for dax_slot in ("devdax-2M-mem-guest-writes", "fsdax-xfs-dev-guest-writes"):
        test = tests[dax_slot]
        assert test["outcome"] == "failed", test
        run = next(c for c in test["checks"] if c["name"] == "guest run")
        assert not run["ok"] and run["expected"] == "KVM_RUN ok, the vCPU reaches hlt"
        assert run["observed"] == "write: KVM_RUN -1 EFAULT", run
        assert "hva_to_pfn" in run["source"]
    assert summary["run_findings"] == []


@pytest.mark.slow
def test_modular_kernel_with_modules_passes_odirect(kernel_tree, tmp_path):
    out = tmp_path / "modular"
    built = nvh("kernel", "build", "--tree", str(kernel_tree), "--config", "modular",
                "--out", str(out))
    assert built.returncode == 0, built.stderr[-3000:]
    assert list((out / "modules" / "lib" / "modules").glob("*/kernel/drivers/acpi/nfit/nfit.ko*"))
    # nfit, libnvdimm and nd_pmem are modules in this kernel: the NVDIMM tests can only pass
    # if the guest loaded them from the --modules disk.
    run = nvh("run", "--kernel", str(out / "bzImage"), "--modules", str(out / "modules"),
              "-k", ODIRECT_SMOKE, "--results", str(tmp_path / "r"))
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert summary["kernel"]["source"] == "image"
    assert summary["tests"] and all(t["outcome"] == "passed" for t in summary["tests"])


@pytest.mark.slow
def test_provoked_warn_fails_the_test_that_provoked_it(kernel_tree, tmp_path):
    results = tmp_path / "r"
    proc = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q",
                           "tests/guest_faults/test_warn.py", "--kernel-tree", str(kernel_tree),
                           "--patches", str(WARN_PATCH),
                           "--results", str(results)],
                          cwd=ROOT, capture_output=True, text=True, timeout=3600)
    summary = json.loads((results / "summary.json").read_text())
    tests = {t["id"].rsplit("::", 1)[-1]: t for t in summary["tests"]}
    provoked = tests["test_1_dax_write_at_the_magic_offset"]
    assert provoked["outcome"] == "failed", proc.stdout[-3000:]
    assert [(f["kind"], f["title"]) for f in provoked["kernel_findings"]] == \
        [("warning", "WARNING in dax_iomap_rw")]
    # nvdimm.config builds with line tables: the finding points at the patch's WARN in
    # fs/dax.c and the call trace is symbolized in findings.txt.
    assert re.fullmatch(r"fs/dax\.c:\d+", provoked["kernel_findings"][0]["location"])
    line = int(provoked["kernel_findings"][0]["location"].split(":")[1])
    assert line == line_added_by(WARN_PATCH, "WARN("), line
    trace = (results / _artifact(provoked, "findings.txt")).read_text()
    assert re.search(r"dax_iomap_rw\+0x[0-9a-f]+/0x[0-9a-f]+ \(fs/dax\.c:\d+\)", trace), trace
    assert re.search(r"ext4_file_\w+\+0x[0-9a-f]+/0x[0-9a-f]+ \(fs/ext4/file\.c:\d+\)", trace), \
        trace
    assert tests["test_2_next_test_is_clean"]["outcome"] == "passed", proc.stdout[-3000:]
    assert summary["run_findings"] == []
    assert proc.returncode == 1


def _artifact(record: dict, name: str) -> str:
    return next(a for a in record["artifacts"] if a.endswith("/" + name))
