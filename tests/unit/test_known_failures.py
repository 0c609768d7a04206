"""The known-failures table: loading, matching a test + kernel + finding, fixed bugs."""

from pathlib import Path

import pytest

from harness import known_failures
from harness.known_failures import KnownFailuresError, parse

ROOT = Path(__file__).resolve().parents[2]
OOPS = "BUG: unable to handle page fault in unpin_user_page_range_dirty_lock"


def table(**entry):
    base = {"test": "test_remove.py::test_remove_pinned_devdax[rdma-*]",
            "kernel": ">=6.1,<6.2", "finding": OOPS, "reference": "rxe MR after disable"}
    base.update(entry)
    return parse({"known_failures": [base]}, "kf.yaml")


def test_known_failure_needs_test_kernel_and_finding():
    kf = table()
    test = "testcases/test_remove.py::test_remove_pinned_devdax[rdma-disable]"
    verdict = kf.judge(test, "6.1.0-56-amd64", passed=False, finding_titles=[OOPS])
    assert verdict and verdict.outcome == "known_failure"
    assert verdict.entry.to_json()["title"] == OOPS
    # another kernel, another test, another finding, or no finding: judged as usual
    assert kf.judge(test, "6.6.0", passed=False, finding_titles=[OOPS]) is None
    assert kf.judge(test.replace("rdma", "io_uring"), "6.1.0", False, [OOPS]) is None
    assert kf.judge(test, "6.1.0", False, ["WARNING in dax_iomap_rw"]) is None
    assert kf.judge(test, "6.1.0", False, []) is None
    # the bug plus something unrelated is not the known bug
    assert kf.judge(test, "6.1.0", False, [OOPS, "WARNING in x"]) is None


def test_also_lists_what_the_same_bug_prints():
    kf = table(also=["WARNING in x"])
    test = "testcases/test_remove.py::test_remove_pinned_devdax[rdma-disable]"
    assert kf.judge(test, "6.1.192", False, [OOPS, "WARNING in x"]).outcome == "known_failure"
    assert kf.judge(test, "6.1.192", False, ["WARNING in x"]) is None


def test_a_recorded_test_that_passes_cleanly_is_fixed():
    kf = table()
    test = "testcases/test_remove.py::test_remove_pinned_devdax[rdma-disable]"
    assert kf.judge(test, "6.1.0-56-amd64", True, []).outcome == "fixed"
    assert kf.judge(test, "6.7.0", True, []) is None


def test_brackets_in_ids_are_literal():
    kf = table(test="test_x.py::t[ab]")
    assert kf.judge("testcases/test_x.py::t[ab]", "6.1.0", False, [OOPS])
    assert kf.judge("testcases/test_x.py::ta", "6.1.0", False, [OOPS]) is None


@pytest.mark.parametrize(("entry", "message"), [
    ({"kernel": "6.1"}, "entry 1: '6.1' in '6.1' is not OP VERSION"),
    ({"finding": ""}, "entry 1: finding must be non-empty text"),
    ({"reference": None}, "entry 1: reference must be non-empty text"),
    ({"colour": "red"}, "entry 1: unknown key 'colour'"),
    ({"also": "x"}, "entry 1: also must be a list of finding titles"),
])
def test_bad_entries_name_the_problem(entry, message):
    with pytest.raises(KnownFailuresError) as e:
        table(**entry)
    assert str(e.value).startswith("kf.yaml: " + message)


def test_the_projects_table_loads():
    kf = known_failures.load(ROOT / "testcases" / "known_failures.yaml")
    assert kf.entries, "the table records the 6.1 removal bugs"
