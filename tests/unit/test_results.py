"""Results model and the report writers."""

import json
import re
import xml.etree.ElementTree as ET

import pytest

from harness.results import (
    RunSummary,
    TestRecord,
    clean_text,
    dmesg_excerpt,
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
                       known_issue={"title": "BUG: unable to handle kernel paging request in x",
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


def test_report_rewrite_keeps_summary_keys_it_does_not_know(tmp_path):
    write_reports(sample_run(), tmp_path)
    data = json.loads((tmp_path / "summary.json").read_text())
    data["from_the_future"] = {"x": 1}
    data["tests"][0]["shard_label"] = "2/3"
    (tmp_path / "summary.json").write_text(json.dumps(data))
    write_reports(load_summary(tmp_path), tmp_path)
    again = json.loads((tmp_path / "summary.json").read_text())
    assert again["from_the_future"] == {"x": 1} and again["tests"][0]["shard_label"] == "2/3"
    assert again == data


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
    assert root.tag == "testsuites"
    (suite,) = root.findall("testsuite")
    cases = suite.findall("testcase")
    assert len(cases) == 4
    for el in (root, suite):
        # known_failure counts as skipped: the run exits 0, so must the junit consumers.
        assert (el.get("tests"), el.get("failures"), el.get("errors"), el.get("skipped")) == \
            ("4", "1", "0", "2")
    assert all(c.get("classname") and c.get("name") and c.get("time") for c in cases)
    bad = next(c for c in cases if c.get("name") == "test_bad[ext4]")
    failure = bad.find("failure")
    assert failure.get("message") == "mismatch at byte 17"
    assert "WARNING in dax_iomap_rw" in failure.text and "observed: mismatch_offset=17" in \
        failure.text
    assert bad.get("classname") == "testcases.test_a"


def test_junit_survives_control_characters():
    run = sample_run(tests=[TestRecord("t", "failed", message="bad \x1b[31mred\x00 \ud800")])
    root = ET.fromstring(junit_xml(run))
    assert root.find("testsuite/testcase/failure").get("message") == "bad red"


def test_junit_known_failure_is_skipped_with_the_bug_and_fixed_is_a_pass():
    run = sample_run(tests=[
        TestRecord("testcases/test_b.py::test_bug", "known_failure", 3.0,
                   known_issue={"title": "BUG: unable to handle kernel paging request in x",
                                "reference": "rxe devdax bug"}),
        TestRecord("testcases/test_b.py::test_gone", "fixed", 1.0,
                   known_issue={"title": "BUG: y", "reference": "ref"}),
    ])
    suite = ET.fromstring(junit_xml(run)).find("testsuite")
    assert (suite.get("failures"), suite.get("errors"), suite.get("skipped")) == ("0", "0", "1")
    bug, gone = suite.findall("testcase")
    skipped = bug.find("skipped")
    assert skipped.get("message") == \
        "known kernel bug: BUG: unable to handle kernel paging request in x (rxe devdax bug)"
    props = {p.get("name"): p.get("value") for p in bug.iter("property")}
    assert props["outcome"] == "known_failure" and props["known_issue.reference"] == \
        "rxe devdax bug"
    assert gone.find("skipped") is None and gone.find("failure") is None
    assert "no longer reproduces: BUG: y" in gone.find("system-out").text


def test_junit_reports_infra_error_as_an_error_case():
    root = ET.fromstring(junit_xml(sample_run(tests=[], infra_error="boot failed: panic")))
    assert root.find("testsuite/testcase/error").get("message") == "boot failed: panic"
    assert root.get("errors") == "1" and root.get("tests") == "1"


def test_junit_counts_run_findings_as_a_failure():
    run = sample_run(tests=[TestRecord("t", "passed")],
                     run_findings=[{"kind": "warning", "title": "WARNING in x", "line": 7}])
    root = ET.fromstring(junit_xml(run))
    assert (root.get("tests"), root.get("failures")) == ("2", "1")
    assert "WARNING in x (line 7) in console.log" in \
        root.find("testsuite/testcase/failure").text


def test_junit_names_follow_pytest():
    from harness.results import junit_names
    assert junit_names("testcases/test_pin.py::test_pin[devdax-2M-mem-rdma]") == \
        ("testcases.test_pin", "test_pin[devdax-2M-mem-rdma]")
    assert junit_names("tests/x/test_c.py::TestK::test_m[a::b]") == \
        ("tests.x.test_c.TestK", "test_m[a::b]")
    assert junit_names("loose") == ("nvdimm-harness", "loose")
    # ndctl's upstream tests: the suite is the class, as `meson test` groups them
    assert junit_names("ndctl/dax/dax-ext4.sh") == ("ndctl.dax", "dax-ext4.sh")


# A kernel log as the serial console hands it over: CRLF, an ANSI colour, NUL, a backspace,
# invalid UTF-8 (a cut multi-byte sequence and a stray 0xff) and a C1 control byte.
NASTY_DMESG = (b"[    1.000000] nvh-mark: begin x\r\n"
               b"[    1.100000] \x1b[31mpmem0: detected capacity\x1b[0m \x00\x08ok\r\n"
               b"[    1.200000] bad bytes \xff\xc3 here \xc2\x85\r\n"
               b"[    1.300000] WARNING: CPU: 1 PID: 77 at fs/dax.c:1234 dax_iomap_rw+0x1/0x2\r\n"
               + b"".join(b"[    2.%06d] filler line %d\n" % (i, i) for i in range(400))
               + b"[    9.000000] nvh-mark: end x\n")


def failing_with_dmesg(tmp_path, dmesg=NASTY_DMESG, line=4):
    run = sample_run()
    bad = run.tests[1]
    bad.kernel_findings = [{"kind": "warning", "title": "WARNING in dax_iomap_rw",
                            "line": line}]
    bad.artifacts = ["tests/test_bad_ext4/dmesg.txt", "tests/test_bad_ext4/workload.json"]
    (tmp_path / "tests/test_bad_ext4").mkdir(parents=True)
    (tmp_path / "tests/test_bad_ext4/dmesg.txt").write_bytes(dmesg)
    return run


def test_junit_carries_a_clean_dmesg_excerpt_of_a_failure(tmp_path):
    run = failing_with_dmesg(tmp_path)
    write_reports(run, tmp_path)
    raw = (tmp_path / "junit.xml").read_bytes()
    raw.decode("utf-8")  # valid UTF-8 whatever the log held
    assert not re.search(rb"[\x00-\x08\x0b\x0c\x0e-\x1f]", raw)
    root = ET.parse(tmp_path / "junit.xml").getroot()
    bad = next(c for c in root.iter("testcase") if c.get("name") == "test_bad[ext4]")
    out = bad.find("system-out").text
    assert out.startswith("tests/test_bad_ext4/dmesg.txt, lines 1-80 of 405:")
    assert "pmem0: detected capacity ok" in out and "bad bytes \ufffd\ufffd here" in out
    assert "WARNING: CPU: 1 PID: 77 at fs/dax.c:1234" in out
    assert "WARNING in dax_iomap_rw (line 4)" in bad.find("failure").text
    assert bad.find("failure").get("message") == "mismatch at byte 17"


def test_dmesg_excerpt_starts_at_the_first_finding_or_keeps_the_tail(tmp_path):
    run = failing_with_dmesg(tmp_path,
                             dmesg=b"".join(b"line %d\n" % i for i in range(1, 1001)), line=500)
    bad = run.tests[1]
    x = dmesg_excerpt(tmp_path, bad, 200)
    assert (x.first, len(x.lines), x.total) == (480, 200, 1000)
    assert x.marked == {500} and x.lines[20] == "line 500"
    bad.kernel_findings = []  # e.g. a timeout: the sysrq-w dump is at the end
    x = dmesg_excerpt(tmp_path, bad, 200)
    assert (x.first, x.lines[-1]) == (801, "line 1000")
    outside = tmp_path.parent / f"{tmp_path.name}-outside" / "dmesg.txt"
    outside.parent.mkdir()
    outside.write_text("secret\n")
    bad.artifacts = [f"../{outside.parent.name}/dmesg.txt"]  # a hand-edited summary.json
    assert dmesg_excerpt(tmp_path, bad, 200) is None


def test_clean_text_strips_escapes_and_controls_but_keeps_tabs_and_newlines():
    assert clean_text("a\x1b[1;31mb\x1b[0m\tc\r\nd\x00\x7f\x9b\ud800\uffff") == "ab\tc\nd"


def test_markdown_lists_known_bugs_first_and_failures():
    md = markdown(sample_run())
    assert md.index("Known kernel bugs") < md.index("Failures")
    assert "`testcases/test_a.py::test_bad[ext4]`: failed [WARNING in dax_iomap_rw] " \
        "mismatch at byte 17\n" in md
    assert "- `testcases/test_b.py::test_bug`: known_failure — BUG: unable to handle kernel " \
        "paging request in x (rxe devdax bug)" in md
    assert "6.1.0-56-amd64" in md
    assert "- 4 tests in 42.0s: 1 failed, 1 known_failure, 1 passed, 1 skipped" in md


def test_markdown_says_why_tests_were_skipped_one_line_per_reason():
    why = ("no nested virtualization: the guest's CPU offers neither svm nor vmx (the QEMU "
           "-cpu model hides them; TCG's -cpu max has svm)")
    run = sample_run(tests=[TestRecord(f"t{i}", "skipped", message=f"Skipped: {why}")
                            for i in range(3)] + [TestRecord("u", "skipped")])
    md = markdown(run)
    assert md.endswith(f"### Skipped\n- 3 tests: {why}\n- 1 test: no reason given\n")
    assert "### Skipped\n- 1 test: no gup_test\n" in markdown(sample_run())


def test_markdown_stays_short_with_many_failures():
    run = sample_run(tests=[TestRecord(f"t{i}", "failed", message="x\x1b[0m") for i in range(50)])
    md = markdown(run)
    assert md.count("\n- `t") == 30 and "… and 20 more (report.html)" in md
    assert "\x1b" not in md


def test_finding_location_from_a_debuginfo_kernel_is_shown():
    run = sample_run()
    run.tests[1].kernel_findings[0]["location"] = "fs/dax.c:1467"
    assert "failed [WARNING in dax_iomap_rw, fs/dax.c:1467] mismatch" in markdown(run)
    assert "WARNING in dax_iomap_rw at fs/dax.c:1467" in junit_xml(run)
    assert 'WARNING in dax_iomap_rw <code class="dim">fs/dax.c:1467</code>' in report_html(run)


def test_html_is_self_contained_and_orders_known_failures_first():
    page = report_html(sample_run())
    assert "<script" not in page and "http" not in page.replace("http-equiv", "")
    assert "<link" not in page and "@import" not in page and "url(" not in page
    assert page.index("test_bug") < page.index("test_bad") < page.index("test_ok")
    assert '<span class="verdict">FAIL</span>' in page
    assert "BUG: unable to handle kernel paging request in x" in page and "rxe devdax bug" in page


def test_html_failure_details_inline_dmesg_expected_observed_and_links(tmp_path):
    run = failing_with_dmesg(tmp_path)
    run.tests[1].trace_counts = {"fs_dax:dax_pmd_fault_done": 32}
    run.kernel.update(patches=["mm/gup: fix <this> & that"], config_hash="abc123")
    write_reports(run, tmp_path)
    page = (tmp_path / "report.html").read_text(encoding="utf-8")
    detail = page[page.index("<details open>"):]
    detail = detail[:detail.index("</details>")]
    assert "mismatch at byte 17" in detail
    assert "<th>expected</th><td>byte-exact</td>" in detail
    assert "<th>observed</th><td>mismatch_offset=17</td>" in detail
    assert "fs_dax:dax_pmd_fault_done=32" in detail
    assert '<span class="hit">[    1.300000] WARNING: CPU: 1 PID: 77' in detail
    assert "bad bytes \ufffd\ufffd here" in detail and "\x1b" not in page and "\x00" not in page
    assert "lines 1–200 of 405" in detail
    assert '<a href="tests/test_bad_ext4/workload.json">workload.json</a>' in detail
    assert '<a href="console.log">console.log</a>' in detail
    assert "mm/gup: fix &lt;this&gt; &amp; that" in page and "abc123" in page


def test_html_shows_infra_error_and_run_findings_prominently():
    run = sample_run(infra_error="boot failed: kernel panic: VFS: Unable to mount root fs",
                     run_findings=[{"kind": "oops", "title": "BUG: kernel NULL pointer "
                                    "dereference in nd_pmem_probe", "line": 123}])
    page = report_html(run)
    assert '<span class="verdict">INFRA ERROR</span>' in page
    assert page.index("VFS: Unable to mount root fs") < page.index('<table class="tests">')
    assert page.index("nd_pmem_probe") < page.index('<table class="tests">')


def test_result_dir_name_is_path_safe():
    assert result_dir_name("testcases/test_odirect.py::test_x[fsdax-ext4/4K]") == \
        "test_x_fsdax-ext4_4K"


def test_html_shows_trace_counts_of_a_passing_dax_test():
    run = sample_run()
    run.tests[0].trace_counts = {"fs_dax:dax_pmd_fault_done": 32,
                                 "fs_dax:dax_pmd_fault_done:FALLBACK": 0}
    html = report_html(run)
    row = next(r for r in html.split("<tr") if "test_ok" in r)
    assert "fs_dax:dax_pmd_fault_done=32" in row and "FALLBACK=0" in row


def test_failed_checks_are_shown_in_every_report(tmp_path):
    """summary.json keeps every check; summary.md, junit.xml and report.html show the
    failed ones with what was expected, what happened and the source."""
    from harness.results import RunSummary, TestRecord, write_reports
    checks = [{"name": "O_DIRECT transfer", "expected": "ret 4096 (all bytes)",
               "observed": "ret 4096", "ok": True, "source": "mm/gup.c"},
              {"name": "compare", "expected": "4096 bytes identical to pattern_b",
               "observed": "1 bytes differ, first at offset 2048", "ok": False,
               "source": "mm/gup.c get_user_pages_fast() v4.5+"}]
    run = RunSummary(run_id="r", started="now", tests=[TestRecord(
        id="testcases/test_odirect.py::test_odirect[devdax-2M-mem-read-untouched-4K]",
        outcome="failed", message="compare: expected ..., observed ...", checks=checks)])
    write_reports(run, tmp_path)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["tests"][0]["checks"] == checks
    md = (tmp_path / "summary.md").read_text()
    assert "check compare: expected 4096 bytes identical to pattern_b, observed 1 bytes " \
           "differ, first at offset 2048" in md
    junit = (tmp_path / "junit.xml").read_text()
    assert "checks: 1 of 2 held" in junit and "[mm/gup.c get_user_pages_fast() v4.5+]" in junit
    html = (tmp_path / "report.html").read_text()
    assert "1 of 2 held" in html and "first at offset 2048" in html
