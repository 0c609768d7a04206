"""A/B compare: each category, the exit status, the writers, and bad input."""

import json

import pytest

from harness.cli import main
from harness.compare import (
    MAX_DURATION_CHANGES,
    OUTSIDE_TESTS,
    compare_dirs,
    compare_runs,
    load_run,
    markdown,
    report_html,
)
from harness.errors import UsageError
from harness.results import RunSummary, TestRecord, write_reports

WARN_DAX = {"kind": "warning", "title": "WARNING in dax_iomap_rw"}
OOPS_UNPIN = {"kind": "bug",
              "title": "BUG: unable to handle kernel paging request in unpin_user_pages"}
KNOWN = {"title": OOPS_UNPIN["title"], "kernel": ">=6.1,<6.2", "reference": "rxe devdax bug"}


def run_of(*tests, patches=(), run_findings=(), **fields):
    return RunSummary(
        run_id=fields.pop("run_id", "20261122-000000-abcd"), started="2026-11-22T00:00:00+0000",
        duration_s=60.0, qemu={"version": "7.2.22", "accel": "tcg"},
        kernel={"release": "6.1.0-rc1+", "source": "tree", "patches": list(patches)},
        tests=list(tests), run_findings=list(run_findings), **fields)


def t(test_id, outcome="passed", duration_s=1.0, **fields):
    return TestRecord(f"testcases/test_x.py::{test_id}", outcome, duration_s, **fields)


def compare(before, after):
    return compare_runs(run_of(*before), run_of(*after, patches=["mm/gup: fix it"]))


def ids(items):
    return [i.id.rpartition("::")[2] for i in items]


# -- categories ------------------------------------------------------------------------------
def test_identical_runs_have_no_differences_and_exit_0():
    tests = [t("a", observed="ret 4096"), t("b", "known_failure", known_issue=KNOWN,
                                              kernel_findings=[OOPS_UNPIN]),
             t("c", "skipped"), t("d", "failed", kernel_findings=[WARN_DAX])]
    comp = compare(tests, tests)
    assert not comp.regressed() and comp.exit_code() == 0
    text = markdown(comp)
    assert "no regressions" in text and "No differences." in text


@pytest.mark.parametrize("before", ["passed", "fixed"])
@pytest.mark.parametrize("after", ["failed", "error", "crashed", "timeout"])
def test_good_to_failing_is_a_regression(before, after):
    comp = compare([t("a", before)], [t("a", after, message="mismatch at byte 17\nmore")])
    assert ids(comp.regressions) == ["a"] and comp.exit_code() == 1
    assert f"{before} → {after}" in markdown(comp) and "mismatch at byte 17" in markdown(comp)
    assert "more" not in markdown(comp)


def test_known_failure_to_another_failure_is_a_regression():
    before = t("a", "known_failure", known_issue=KNOWN, kernel_findings=[OOPS_UNPIN])
    comp = compare([before], [t("a", "failed", kernel_findings=[OOPS_UNPIN, WARN_DAX])])
    assert ids(comp.regressions) == ["a"]
    assert "no longer only the known kernel bug" in markdown(comp)
    # The same known bug again is not a regression; another known bug is.
    assert not compare([before], [before]).regressions
    other = t("a", "known_failure", known_issue={**KNOWN, "title": "WARNING in x"},
              kernel_findings=[{"kind": "warning", "title": "WARNING in x"}])
    assert ids(compare([before], [other]).regressions) == ["a"]


@pytest.mark.parametrize("before", ["failed", "error", "crashed", "timeout", "known_failure"])
@pytest.mark.parametrize("after", ["passed", "fixed"])
def test_failing_to_passing_is_fixed(before, after):
    comp = compare([t("a", before)], [t("a", after)])
    assert ids(comp.fixed) == ["a"] and not comp.regressions
    assert comp.exit_code() == 0 and "1 fixed" in markdown(comp)


@pytest.mark.parametrize("before, after", [
    ("skipped", "failed"), ("passed", "skipped"), ("failed", "crashed"),
    ("passed", "known_failure"),
])
def test_other_outcome_changes_are_shown_but_not_judged(before, after):
    comp = compare([t("a", before)], [t("a", after)])
    assert ids(comp.other_changes) == ["a"]
    assert not comp.regressions and not comp.fixed and comp.exit_code() == 0
    assert "### Other outcome changes" in markdown(comp)


def test_passed_and_fixed_are_the_same_clean_pass():
    comp = compare([t("a", "fixed")], [t("a", "passed")])
    assert not (comp.fixed or comp.regressions or comp.other_changes)


def test_new_and_removed_tests_by_id():
    comp = compare([t("a"), t("gone", "failed")], [t("a"), t("new", "failed")])
    assert ids(comp.new_tests) == ["new"] and ids(comp.removed_tests) == ["gone"]
    assert not comp.regressions and comp.exit_code() == 0
    text = markdown(comp)
    assert "### New tests\n- `testcases/test_x.py::new`: failed" in text
    assert "### Removed tests\n- `testcases/test_x.py::gone` (was failed)" in text


def test_a_subset_compared_with_a_full_run_summarizes_the_removed_tests():
    full = [t(f"x{i}", "skipped" if i % 4 == 0 else "passed") for i in range(30)]
    comp = compare(full, full[:2])
    text = markdown(comp)
    assert "28 tests not in the patched run (21 passed, 7 skipped); a `-k` subset" in text
    assert "- `testcases/test_x.py::x11` (was passed)" in text  # the first 10 are listed
    assert "x12`" not in text
    assert "- … and 18 more (all of them in the HTML report)" in text


def test_new_kernel_findings_fail_the_comparison_even_without_a_regression():
    before = [t("a", "failed", kernel_findings=[WARN_DAX])]
    after = [t("a", "failed", kernel_findings=[WARN_DAX, {"kind": "kasan", "title": "KASAN: "
                                                          "use-after-free in dax_x"}])]
    comp = compare_runs(run_of(*before), run_of(*after, run_findings=[
        {"kind": "warning", "title": "WARNING in nd_pmem_probe", "line": 3}]))
    assert [f.title for f in comp.new_findings] == ["KASAN: use-after-free in dax_x",
                                                   "WARNING in nd_pmem_probe"]
    assert comp.new_findings[1].where == [OUTSIDE_TESTS]
    assert not comp.regressions and comp.exit_code() == 1
    text = markdown(comp)
    assert "2 new kernel findings" in text
    assert "- warning: WARNING in nd_pmem_probe — in outside tests" in text


def test_findings_gone_by_title():
    before = [t("a", "failed", kernel_findings=[WARN_DAX]),
              t("b", "failed", kernel_findings=[WARN_DAX])]
    comp = compare(before, [t("a"), t("b")])
    assert [(f.title, len(f.where)) for f in comp.gone_findings] == [(WARN_DAX["title"], 2)]
    assert not comp.new_findings and comp.exit_code() == 0
    assert "### Kernel findings gone\n- warning: WARNING in dax_iomap_rw — was in" in \
        markdown(comp)


def test_a_finding_moving_to_another_test_is_not_new():
    comp = compare([t("a", "failed", kernel_findings=[WARN_DAX])],
                   [t("a"), t("b", "failed", kernel_findings=[WARN_DAX])])
    assert not comp.new_findings and not comp.gone_findings


def test_behaviour_change_same_outcome_different_observed():
    before = t("a", "passed", expected="ret -1 errno EFAULT [mm/gup.c]",
               observed="ret -1 errno EFAULT")
    after = t("a", "passed", expected="ret -1 errno EFAULT or full transfer [mm/gup.c]",
              observed="ret 4096")
    comp = compare([before, t("same", observed="x")], [after, t("same", observed="x")])
    assert ids(comp.behaviour_changes) == ["a"] and comp.exit_code() == 0
    text = markdown(comp)
    assert "  - baseline: expected `ret -1 errno EFAULT [mm/gup.c]`, observed " \
           "`ret -1 errno EFAULT`" in text
    assert "  - patched: expected `ret -1 errno EFAULT or full transfer [mm/gup.c]`, " \
           "observed `ret 4096`" in text
    # A changed outcome is an outcome change, not a behaviour change.
    assert not compare([before], [t("a", "failed", observed="ret 4096")]).behaviour_changes


def test_duration_changes_beyond_noise_biggest_first_capped():
    before = [t("small", duration_s=2.0), t("pct", duration_s=8.0), t("big", duration_s=10.0),
              t("faster", duration_s=100.0), t("skip", duration_s=0.0)]
    after = [t("small", duration_s=6.9),    # +4.9 s: under 5 s
             t("pct", duration_s=13.5),     # +5.5 s: over 5 s and over 50%
             t("big", duration_s=14.0),     # +4 s: under 5 s
             t("faster", duration_s=40.0),  # -60 s, -60%
             t("skip", "skipped", duration_s=30.0)]
    comp = compare(before, after)
    assert ids(comp.duration_changes) == ["faster", "pct"]
    assert "`testcases/test_x.py::faster`: 100.0s → 40.0s (-60.0s, -60%)" in markdown(comp)
    # 50% of a long test is more than 5 s.
    assert not compare([t("a", duration_s=60.0)], [t("a", duration_s=85.0)]).duration_changes
    many = compare([t(f"t{i}", duration_s=1.0) for i in range(15)],
                   [t(f"t{i}", duration_s=10.0 + i) for i in range(15)])
    assert len(many.duration_changes) == MAX_DURATION_CHANGES
    assert many.duration_changes_total == 15 and ids(many.duration_changes)[0] == "t14"
    assert "… and 5 more" in markdown(many)
    assert many.exit_code() == 0


def test_header_names_both_kernels_counts_and_verdicts():
    comp = compare_runs(run_of(t("a"), t("b", "failed")),
                        run_of(t("a"), t("b"), patches=["mm/gup: one", "fs/dax: two"]),
                        "results/ab-base", "results/ab-patched")
    head = markdown(comp).split("\n###")[0]
    assert "## nvdimm-harness compare: no regressions, 1 fixed" in head
    assert "- baseline `results/ab-base`: kernel 6.1.0-rc1+ (tree), no patches; 2 tests " \
           "(1 passed, 1 failed); verdict FAILED" in head
    assert "- patched `results/ab-patched`: kernel 6.1.0-rc1+ (tree), 2 patches; 2 tests " \
           "(2 passed); verdict PASSED\n  - mm/gup: one\n  - fs/dax: two" in head


def test_a_patched_run_that_broke_down_is_a_regression():
    comp = compare_runs(run_of(t("a")),
                        run_of(infra_error="guest never came up\n--- console tail ---\nx"))
    assert comp.exit_code() == 1 and ids(comp.removed_tests) == ["a"]
    text = markdown(comp)
    assert "the patched run did not complete" in text
    assert "**The patched run did not complete:** guest never came up" in text
    assert "console tail" not in text
    # A baseline that broke down is reported but is not the patches' fault.
    assert compare_runs(run_of(infra_error="boom"), run_of(t("a"))).exit_code() == 0


# -- HTML ------------------------------------------------------------------------------------
def test_html_is_self_contained_and_escapes_everything():
    evil = "<script>alert(1)</script>"
    before = [t(f"a[{evil}]", observed=evil), t("b", duration_s=1.0)]
    after = [t(f"a[{evil}]", observed="&" + evil),
             t("b", "failed", duration_s=30.0, message=evil,
               kernel_findings=[{"kind": "warning", "title": evil}])]
    comp = compare_runs(run_of(*before), run_of(*after, patches=[evil],
                                                run_findings=[{"kind": "bug", "title": evil}]),
                        evil, "patched")
    page = report_html(comp)
    assert "<script" not in page and "&lt;script&gt;" in page
    assert "&amp;&lt;script&gt;" in page
    assert "http" not in page and "<link" not in page
    for section in ("Regressions", "New kernel findings", "Behaviour changes",
                    "Duration changes"):
        assert f"<h2>{section}" in page
    assert 'class="banner regressed"' in page
    assert 'class="banner clean"' in report_html(compare([t("a")], [t("a")]))


def test_markdown_code_survives_backticks():
    comp = compare([t("a", observed="x")], [t("a", observed="uses `foo`")])
    assert "observed `` uses `foo` ``" in markdown(comp)


# -- through results directories -------------------------------------------------------------
def write_pair(tmp_path, before, after):
    base, patched = tmp_path / "base", tmp_path / "patched"
    write_reports(before, base)
    write_reports(after, patched)
    return base, patched


def test_round_trip_through_results_directories(tmp_path):
    before = run_of(t("a", observed="ret 4096"), t("b"),
                    t("k", "known_failure", known_issue=KNOWN, kernel_findings=[OOPS_UNPIN]))
    after = run_of(t("a", observed="ret -1 errno EFAULT"),
                   t("b", "failed", kernel_findings=[WARN_DAX]), t("k", "fixed"),
                   patches=["fs/dax: x"])
    base, patched = write_pair(tmp_path, before, after)
    in_memory = compare_runs(before, after, str(base), str(patched))
    from_disk = compare_dirs(base, patched)
    assert markdown(from_disk) == markdown(in_memory)
    assert ids(from_disk.regressions) == ["b"] and ids(from_disk.fixed) == ["k"]
    assert ids(from_disk.behaviour_changes) == ["a"]
    assert [f.title for f in from_disk.new_findings] == [WARN_DAX["title"]]
    assert [f.title for f in from_disk.gone_findings] == [OOPS_UNPIN["title"]]
    assert f"`testcases/test_x.py::k`: known_failure ({OOPS_UNPIN['title']}) → fixed\n" in \
        markdown(from_disk)


def test_cli_compare_prints_markdown_writes_html_and_exits_1_on_regression(tmp_path, capsys):
    base, patched = write_pair(tmp_path, run_of(t("a")), run_of(t("a", "failed")))
    page = tmp_path / "ab.html"
    assert main(["compare", str(base), str(patched), "--html", str(page)]) == 1
    out, err = capsys.readouterr()
    assert out.startswith("## nvdimm-harness compare: 1 regression") and "html:" not in out
    assert err == f"html: {page}\n"
    assert page.read_text().startswith("<!DOCTYPE html>")
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    assert main(["compare", str(base), str(base)]) == 0


def test_cli_compare_unwritable_html_is_exit_2(tmp_path, capsys):
    base, patched = write_pair(tmp_path, run_of(t("a")), run_of(t("a")))
    bad = tmp_path / "no" / "such" / "dir" / "ab.html"
    assert main(["compare", str(base), str(patched), "--html", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"--html: {bad}" in err


# -- bad input -------------------------------------------------------------------------------
def bad_dirs(tmp_path):
    """(results directory, text the one-line error must contain) for each kind of bad input."""
    cases = [(tmp_path / "missing", "no such results directory"),
             (tmp_path / "empty", "no summary.json")]
    (tmp_path / "empty").mkdir()
    for name, content, text in [
        ("garbage", "{not json", "not valid JSON"),
        ("list", "[1, 2]", "not a run summary"),
        ("no-run-id", json.dumps({"started": "x", "tests": []}), "run_id"),
        ("bad-outcome", json.dumps({"run_id": "r", "started": "s",
                                    "tests": [{"id": "t", "outcome": "flaky"}]}), "flaky"),
        ("bad-duration", json.dumps({"run_id": "r", "started": "s",
                                     "tests": [{"id": "t", "outcome": "passed",
                                                "duration_s": "slow"}]}),
         "tests[0].duration_s must be a number"),
        ("bad-findings", json.dumps({"run_id": "r", "started": "s",
                                     "tests": [{"id": "t", "outcome": "passed",
                                                "kernel_findings": ["x"]}]}),
         "tests[0].kernel_findings"),
    ]:
        d = tmp_path / name
        d.mkdir()
        (d / "summary.json").write_text(content)
        cases.append((d, text))
    return cases


def test_bad_results_directories_are_usage_errors(tmp_path):
    for d, text in bad_dirs(tmp_path):
        with pytest.raises(UsageError) as e:
            load_run(d)
        message = str(e.value)
        assert str(d) in message and text in message and "\n" not in message, message


def test_cli_bad_input_is_one_line_and_exit_2(tmp_path, capsys):
    good = tmp_path / "good"
    write_reports(run_of(t("a")), good)
    for d, text in bad_dirs(tmp_path):
        for argv in (["compare", str(d), str(good)], ["compare", str(good), str(d)]):
            assert main(argv) == 2
            out, err = capsys.readouterr()
            assert out == "" and err.count("\n") == 1 and str(d) in err and text in err, err


def test_cli_compare_needs_two_directories(capsys):
    with pytest.raises(SystemExit) as e:
        main(["compare", "only-one"])
    assert e.value.code == 2 and capsys.readouterr().err.count("\n") == 1
