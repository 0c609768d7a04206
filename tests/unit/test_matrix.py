"""The kernel matrix: column specs, per-test changes, exit status, the reports."""

import pytest

from harness import matrix
from harness.errors import EXIT_INFRA, EXIT_OK, EXIT_TEST_FAILED, UsageError
from harness.results import RunSummary, TestRecord

ODIRECT = "testcases/test_odirect.py::test_odirect[devdax-2M-mem-read-untouched-2M]"
REMOVE = "testcases/test_remove.py::test_remove_mapped_devdax[disable]"
KVM = "testcases/test_kvm.py::test_kvm_access[anon-guest-writes]"
BUG = {"title": "BUG: unable to handle page fault in dax_disassociate_entry"}


def run(release, *tests, source="distro", **kw):
    return RunSummary(run_id=release, started="", kernel={"release": release, "source": source},
                      tests=list(tests), **kw)


def t(test_id, outcome, observed="", expected="", known=None):
    return TestRecord(id=test_id, outcome=outcome, observed=observed, expected=expected,
                      known_issue=known)


def test_kernel_specs():
    specs = matrix.parse_kernels("default,trixie,tree:/src/linux,kernel:/k/bzImage,"
                                 "trixie/linux-image-6.12.117+deb13-amd64")
    assert [s.label for s in specs] == ["default", "trixie", "tree-linux", "kernel-bzImage",
                                        "trixie-linux-image-6.12.117+deb13-amd64"]
    assert specs[0].flags == ()
    assert specs[1].flags == ("--kernel-package", "trixie")
    assert specs[2].flags == ("--kernel-tree", "/src/linux")


@pytest.mark.parametrize("text, says", [
    ("default", "needs two kernels"),
    ("default,,trixie", "empty entry"),
    ("default,default", "given twice"),
    ("default,git:abc", "unknown kind 'git'"),
])
def test_bad_kernel_lists(text, says):
    with pytest.raises(UsageError, match=says):
        matrix.parse_kernels(text)


def test_a_bug_fixed_on_the_newer_kernel_is_a_change_not_a_failure():
    old = run("6.1.0-57-amd64", t(REMOVE, "known_failure", "oops after disable", known=BUG),
              t(KVM, "passed", "ok"))
    new = run("6.12.117+deb13-amd64", t(REMOVE, "passed", "EFAULT after disable"),
              t(KVM, "passed", "ok"), source="package")
    m = matrix.build_matrix(["default", "trixie"], [old, new])
    assert [r.id for r in m.differing()] == [REMOVE]
    assert m.rows[0].changes == ["fixed"]
    assert m.rows[1].changes == [""]
    assert m.exit_code() == EXIT_OK
    md = matrix.markdown(m)
    assert f"| `{REMOVE}` | known_failure ({BUG['title']}) | passed | trixie: fixed |" in md
    assert "trixie: **passed**; observed: EFAULT after disable" in md


def test_a_regression_or_a_failure_on_any_kernel_fails_the_matrix():
    old = run("6.1", t(ODIRECT, "passed", "PMD 1"))
    new = run("6.12", t(ODIRECT, "failed", "PMD 0"))
    m = matrix.build_matrix(["a", "b"], [old, new])
    assert m.rows[0].changes == ["regression"] and m.rows[0].regressed
    assert m.exit_code() == EXIT_TEST_FAILED
    # failing on the baseline only: still a failure of the matrix
    m = matrix.build_matrix(["a", "b"], [new, old])
    assert m.rows[0].changes == ["fixed"]
    assert m.exit_code() == EXIT_TEST_FAILED
    broken = run("6.12", infra_error="boot failed")
    assert matrix.build_matrix(["a", "b"], [old, broken]).exit_code() == EXIT_INFRA


def test_same_outcome_other_behaviour_and_other_expectation_rows_are_shown():
    old = run("6.1", t(ODIRECT, "passed", "PMD 1", expected="row for <6.6"))
    new = run("6.12", t(ODIRECT, "passed", "PMD 2", expected="row for >=6.6"))
    m = matrix.build_matrix(["a", "b"], [old, new])
    [row] = m.differing()
    assert row.changes == ["behaviour changed"] and row.expected_differs
    md = matrix.markdown(m)
    assert "expected: row for <6.6" in md and "expected: row for >=6.6" in md
    page = matrix.report_html(m)
    assert "row for &gt;=6.6" in page and "id=\"differing\"" in page


def test_tests_that_ran_on_one_kernel_only():
    m = matrix.build_matrix(["a", "b"], [run("6.1", t(KVM, "passed")),
                                         run("6.12", t(ODIRECT, "passed"))])
    assert [r.changes for r in m.rows] == [["not run here"], ["only on this kernel"]]
    assert {r.id for r in m.differing()} == {KVM, ODIRECT}
    data = m.to_json()
    assert data["tests"][0]["outcomes"] == ["passed", "absent"]
    assert data["kernels"][1]["release"] == "6.12"
