"""results.ktap read by the kernel's own KTAP parser (tools/testing/kunit/kunit.py parse, from
Debian's linux-source-6.1): its pass/fail/skip counts are summary.json's, mapped as
harness/ktap.py documents (known_failure and fixed count as passed, the failing outcomes
as failed)."""

import re
import subprocess
import sys

import pytest

from harness.results import OUTCOMES, RunSummary, TestRecord, write_reports

pytestmark = pytest.mark.e2e


def test_kunit_parses_results_ktap_with_summary_counts(tmp_path, kernel_tree):
    ids = ["testcases/test_pin.py::test_pin[anon-rdma]",
           "testcases/test_odirect.py::test_odirect[devdax-2M-mem-read-untouched-2M]",
           "testcases/test_remove.py::test_remove_mapped_devdax[disable]"]
    tests = [TestRecord(f"{ids[i % 3][:-1]}-{o}]", o, message=f"{o} # because\nof this",
                        known_issue={"title": "BUG: x"} if o in ("known_failure", "fixed")
                        else None)
             for i, o in enumerate(OUTCOMES * 2)]
    run = RunSummary(run_id="r", started="", kernel={"release": "6.1.0-57-amd64"}, tests=tests)
    write_reports(run, tmp_path)
    proc = subprocess.run([sys.executable, str(kernel_tree / "tools/testing/kunit/kunit.py"),
                           "parse", str(tmp_path / "results.ktap")], capture_output=True,
                          text=True, timeout=60)
    out = proc.stdout + proc.stderr
    done = re.search(r"Ran (\d+) tests: passed: (\d+), failed: (\d+)(?:, skipped: (\d+))?", out)
    assert done, out[-2000:]
    counts = run.counts()
    assert int(done.group(1)) == len(tests)
    assert int(done.group(2)) == counts["passed"] + counts["fixed"] + counts["known_failure"]
    assert int(done.group(3)) == sum(counts[o] for o in ("failed", "error", "crashed",
                                                         "timeout"))
    assert int(done.group(4) or 0) == counts["skipped"]
    assert "[FAILED] test_odirect" in out  # a family with a failing test fails
