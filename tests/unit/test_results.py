"""Results model and the report writers."""

import json
import xml.etree.ElementTree as ET

import pytest

from harness.results import (
    RunSummary,
    TestRecord,
    junit_xml,
    load_summary,
    markdown,
    report_html,
    result_dir_name,
    write_reports,
)


def sample_run(**overrides):
    run = RunSummary(
        run_id="20261122-000000-abcd", started="2026-11-22T00:00:00+0000", duration_s=42.0,
        qemu={"version": "7.2.22", "accel": "tcg"},
        kernel={"release": "6.1.0-56-amd64", "source": "distro", "patches": []},
        tests=[
            TestRecord("testcases/test_a.py::test_ok", "passed", 1.5),
            TestRecord("testcases/test_a.py::test_bad[ext4]", "failed", 2.0,
                       message="mismatch at byte 17\nmore", expected="byte-exact",
                       observed="mismatch_offset=17",
                       kernel_findings=[{"kind": "warning", "title": "WARNING in dax_iomap_rw"}]),
            TestRecord("testcases/test_a.py::test_skip", "skipped", 0.0, message="no gup_test"),
            TestRecord("testcases/test_b.py::test_bug", "known_failure", 3.0,
                       known_issue={"title": "BUG: unable to handle page fault in x",
                                    "reference": "rxe devdax bug"}),
        ],
    )
    for k, v in overrides.items():
        setattr(run, k, v)
    return run


def test_exit_code_and_verdict():
    assert sample_run().exit_code() == 1
    ok = sample_run(tests=[TestRecord("t", "passed"), TestRecord("k", "known_failure"),
                           TestRecord("f", "fixed")])
    assert ok.exit_code() == 0 and ok.verdict() == "passed"
    assert sample_run(infra_error="boot failed").exit_code() == 3
    findings = sample_run(tests=[TestRecord("t", "passed")],
                          run_findings=[{"kind": "warning", "title": "WARNING in x"}])
    assert findings.exit_code() == 1


def test_unknown_outcome_rejected():
    with pytest.raises(ValueError):
        TestRecord("t", "flaky")


def test_summary_json_round_trip(tmp_path):
    run = sample_run()
    write_reports(run, tmp_path)
    data = json.loads((tmp_path / "summary.json").read_text())
    for key in ("run_id", "started", "duration_s", "host", "qemu", "kernel", "profile", "tests"):
        assert key in data
    assert data["tests"][1]["kernel_findings"][0] == {"kind": "warning",
                                                      "title": "WARNING in dax_iomap_rw"}
    again = load_summary(tmp_path)
    assert again.to_json() == run.to_json()


def test_junit_has_one_testcase_per_test_and_failure_details():
    root = ET.fromstring(junit_xml(sample_run()))
    cases = root.findall("testcase")
    assert len(cases) == 4
    assert root.get("failures") == "1" and root.get("skipped") == "1"
    bad = next(c for c in cases if c.get("name") == "test_bad[ext4]")
    failure = bad.find("failure")
    assert failure.get("message") == "mismatch at byte 17"
    assert "WARNING in dax_iomap_rw" in failure.text and "observed: mismatch_offset=17" in \
        failure.text
    assert bad.get("classname") == "testcases.test_a"


def test_junit_survives_control_characters():
    run = sample_run(tests=[TestRecord("t", "failed", message="bad \x1b[31mred\x00")])
    ET.fromstring(junit_xml(run))


def test_junit_reports_infra_error_as_an_error_case():
    root = ET.fromstring(junit_xml(sample_run(tests=[], infra_error="boot failed: panic")))
    assert root.find("testcase/error").get("message") == "boot failed: panic"


def test_markdown_lists_known_bugs_first_and_failures():
    md = markdown(sample_run())
    assert md.index("Known kernel bugs") < md.index("Failures")
    assert "`testcases/test_a.py::test_bad[ext4]`: failed [WARNING in dax_iomap_rw]" in md
    assert "6.1.0-56-amd64" in md


def test_html_is_self_contained_and_orders_known_failures_first():
    page = report_html(sample_run())
    assert "<script src" not in page and "http" not in page.replace("http-equiv", "")
    assert page.index("test_bug") < page.index("test_bad") < page.index("test_ok")
    assert "FAILED" in page


def test_result_dir_name_is_path_safe():
    assert result_dir_name("testcases/test_odirect.py::test_x[fsdax-ext4/4K]") == \
        "test_x_fsdax-ext4_4K"
