"""End to end: `nvdimm-harness ndctl-test`, ndctl v81's own suites in a real guest: built in
the guest from the real source, run by meson, judged inside the harness's frame, on the
Debian kernel and on the harness's own 6.1 build with nfit_test from the same tree."""

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data"
NVH = [sys.executable, "-m", "harness.cli"]
WARN_PATCH = DATA / "patches" / "0005-devdax-warn-on-probe.patch"

pytestmark = pytest.mark.e2e


def ndctl_src() -> str:
    """The shared v81 tarball when this checkout has it, else Debian's copy of it."""
    sys.path.insert(0, str(ROOT))
    from harness.ndctl_upstream import SHARED_SOURCES
    return "" if list(SHARED_SOURCES.glob("ndctl-*.tar.gz")) else "debian"


def nvh_ndctl(*args, timeout=3600):
    src = ndctl_src()
    return subprocess.run([*NVH, "ndctl-test", *(["--ndctl-src", src] if src else []), *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=timeout)


def outcomes(results: Path) -> dict[str, dict]:
    return {t["id"]: t for t in json.loads((results / "summary.json").read_text())["tests"]}


def test_dax_suite_on_the_debian_kernel(tmp_path):
    """A few upstream tests of each kind: an e820 one that passes, an nfit_test one that
    ndctl itself skips (Debian has no nfit_test), and the ndctl suite skipped by the
    harness with the reason."""
    results = tmp_path / "r"
    proc = nvh_ndctl("--suite", "all", "-k", "dax-dev or multi-dax or revoke-devmem or "
                     "libndctl", "--results", str(results))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    tests = outcomes(results)
    assert set(tests) == {"ndctl/dax/dax-dev", "ndctl/dax/multi-dax.sh",
                          "ndctl/dax/revoke-devmem", "ndctl/ndctl/libndctl"}
    assert tests["ndctl/dax/dax-dev"]["outcome"] == "passed"
    assert tests["ndctl/dax/revoke-devmem"]["outcome"] == "passed"
    # ndctl's own skip, with its own words
    multi = tests["ndctl/dax/multi-dax.sh"]
    assert multi["outcome"] == "skipped"
    assert multi["message"].removeprefix("Skipped: ").startswith("ndctl multi-dax.sh:")
    assert "nfit_test" in (results / "tests" / "ndctl_dax_multi-dax.sh" /
                           "ndctl-test.log").read_text()
    lib = tests["ndctl/ndctl/libndctl"]
    assert lib["outcome"] == "skipped" and "needs the nfit_test module" in lib["message"]
    dev = results / "tests" / "ndctl_dax_dax-dev"
    assert "meson: OK" in (dev / "ndctl-test.log").read_text()
    assert (dev / "dmesg.txt").is_file()
    # junit splits the id as every consumer shows it: classname ndctl.dax, name dax-dev
    assert 'classname="ndctl.dax" name="dax-dev"' in (results / "junit.xml").read_text()
    assert "ndctl/dax/dax-dev" in (results / "report.html").read_text()


def test_bad_ndctl_source_is_exit_2_in_one_line(tmp_path):
    start = time.monotonic()
    proc = subprocess.run([*NVH, "ndctl-test", "--ndctl-src", str(tmp_path / "nope")],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and time.monotonic() - start < 30
    assert len(proc.stderr.strip().splitlines()) == 1
    assert "git clone https://github.com/pmem/ndctl" in proc.stderr


@pytest.mark.slow
def test_nfit_config_undone_by_another_fragment_stops_before_the_build(kernel_tree):
    start = time.monotonic()
    proc = nvh_ndctl("--suite", "ndctl", "--kernel-tree", str(kernel_tree), "--config",
                     str(DATA / "fragments" / "libnvdimm-builtin.config"), timeout=600)
    assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "CONFIG_LIBNVDIMM=m" in proc.stderr and "nfit_test" in proc.stderr
    assert time.monotonic() - start < 120


@pytest.mark.slow
def test_ndctl_suite_with_nfit_test_and_a_patch_that_breaks_it(kernel_tree, tmp_path):
    """The tree built with --config nfit and its nfit_test modules: upstream tests of both
    suites pass; the demo patch (a WARN in dax_pmem_probe) fails the upstream tests that
    create devdax namespaces: create.sh although meson says OK (the harness's scanner
    caught it), multi-dax.sh by its own dmesg check; compare calls it a regression."""
    select = "ndctl/libndctl or ndctl/create.sh or dax/multi-dax"
    base, patched = tmp_path / "base", tmp_path / "patched"
    proc = nvh_ndctl("--suite", "all", "--kernel-tree", str(kernel_tree), "-k", select,
                     "--results", str(base))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    tests = outcomes(base)
    assert {t: r["outcome"] for t, r in tests.items()} == {
        "ndctl/ndctl/libndctl": "passed", "ndctl/ndctl/create.sh": "passed",
        "ndctl/dax/multi-dax.sh": "passed"}

    proc = nvh_ndctl("--suite", "all", "--kernel-tree", str(kernel_tree), "--patches",
                     str(WARN_PATCH), "-k", select, "--results", str(patched))
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-3000:]
    tests = outcomes(patched)
    for test_id, meson in (("ndctl/ndctl/create.sh", "meson: OK"),
                           ("ndctl/dax/multi-dax.sh", "meson: FAIL")):
        t = tests[test_id]
        assert t["outcome"] == "failed", t
        assert any("dax_pmem_probe" in f["title"] for f in t["kernel_findings"]), t
        log = (patched / "tests" / test_id.replace("/", "_") / "ndctl-test.log").read_text()
        # create.sh saw nothing wrong; multi-dax.sh greps dmesg for "Call Trace" itself
        assert meson in log, log[:2000]
    compare = subprocess.run([*NVH, "compare", str(base), str(patched)], cwd=ROOT,
                             capture_output=True, text=True, timeout=60)
    assert compare.returncode == 1, compare.stdout[-2000:]
    assert "ndctl/dax/multi-dax.sh" in compare.stdout
