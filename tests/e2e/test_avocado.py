"""End to end: `avocado run` over the suite's runnables recipe, one guest per test."""

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
AVOCADO = str(Path(sys.executable).parent / "avocado")
RUNNABLES = ROOT / "testcases" / "avocado" / "runnables.py"

pytestmark = pytest.mark.e2e

# A pinning control that passes, a gup_test one that Debian's kernel skips (no
# CONFIG_GUP_TEST), and the removal under an rxe pin that oopses Debian's 6.1: a known kernel
# bug, xfail in pytest, which must be a PASS in avocado. Three guests, ~2-3 min under TCG.
EXPECTED = {
    "testcases/test_pin.py::test_pin[anon-vmsplice]": ("PASS", "passed"),
    "testcases/test_pin.py::test_pin[anon-gup_test-basic]": ("SKIP", "skipped"),
    "testcases/test_remove.py::test_remove_pinned_devdax[rdma]": ("PASS", "known_failure"),
}
SAMPLE = " or ".join(nodeid.split("::")[1] for nodeid in EXPECTED)


def test_avocado_run_reports_each_pytest_test(tmp_path, no_new_qemu):
    # A TMPDIR of its own: the guests' work directories go there, and nobody else's do.
    private_tmp = tmp_path / "tmp"
    private_tmp.mkdir()
    recipe = tmp_path / "suite.json"
    gen = subprocess.run([sys.executable, str(RUNNABLES), "-k", SAMPLE, "--out", str(recipe)],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert gen.returncode == 0, gen.stderr
    jobs = tmp_path / "jobs"
    proc = subprocess.run([AVOCADO, "run", "--max-parallel-tasks", "1",
                           "--job-results-dir", str(jobs), str(recipe)],
                          cwd=ROOT, capture_output=True, text=True, timeout=1200,
                          env={**os.environ, "TMPDIR": str(private_tmp)})
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    job = (jobs / "latest").resolve()

    # xunit: exactly these tests, a <skipped/> for the skip and nothing failed.
    suite = ET.parse(job / "results.xml").getroot()
    cases = {c.get("name"): c for c in suite.findall("testcase")}
    assert set(cases) == set(EXPECTED), sorted(cases)
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors"),
            suite.get("skipped")) == ("3", "0", "0", "1")
    for nodeid, (status, _outcome) in EXPECTED.items():
        case = cases[nodeid]
        assert case.find("failure") is None and case.find("error") is None, nodeid
        assert (case.find("skipped") is not None) == (status == "SKIP"), nodeid

    # results.json agrees, and every test kept the harness's results directory.
    data = json.loads((job / "results.json").read_text())
    assert (data["total"], data["pass"], data["skip"], data["failures"], data["errors"]) \
        == (3, 2, 1, 0, 0)
    by_name = {t["name"]: t for t in data["tests"]}
    assert {n: t["status"] for n, t in by_name.items()} == \
        {n: s for n, (s, _o) in EXPECTED.items()}
    for nodeid, (_status, outcome) in EXPECTED.items():
        logdir = Path(by_name[nodeid]["logdir"])
        harness = logdir / "nvdimm-harness"
        summary = json.loads((harness / "summary.json").read_text())
        assert [(t["id"], t["outcome"]) for t in summary["tests"]] == [(nodeid, outcome)]
        assert summary["kernel"]["source"] == "distro"
        record = summary["tests"][0]
        assert any(a.endswith("dmesg.txt") for a in record["artifacts"]), record
        for artifact in record["artifacts"]:
            assert (harness / artifact).is_file(), artifact
        tap = (logdir / "stdout").read_text()
        assert f"# outcome: {outcome}" in tap, tap
        assert "# results: " + str(harness) in tap
        if outcome == "known_failure":
            assert "# TODO known kernel bug: BUG: unable to handle kernel paging request in " \
                   "unpin_user_page_range_dirty_lock" in tap, tap
    html = job / "results.html"
    assert html.is_file() and html.stat().st_size > 0  # avocado's HTML result plugin
    left = list(private_tmp.glob("nvh-*"))
    assert not left, f"a guest's work directory was left behind: {left}"
