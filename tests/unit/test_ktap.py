"""results.ktap: every outcome's KTAP line, families as subtests, text made line-safe."""

from harness.ktap import case_name, family, ktap, result_line
from harness.results import OUTCOMES, RunSummary, TestRecord

PIN = "testcases/test_pin.py::test_pin[devdax-2M-mem-rdma]"
BUG = {"title": "BUG: unable to handle page fault in unpin_user_pages"}


def test_each_outcome_has_its_result_and_directive():
    lines = {o: result_line(3, TestRecord(PIN, o, message="why # not\nsecond line",
                                          known_issue=BUG)) for o in OUTCOMES}
    assert lines["passed"] == "ok 3 devdax-2M-mem-rdma"
    assert lines["known_failure"] == ("ok 3 devdax-2M-mem-rdma # XFAIL known kernel bug: "
                                      + BUG["title"])
    assert lines["fixed"].startswith("ok 3 devdax-2M-mem-rdma # fixed: BUG: unable")
    assert lines["skipped"] == "ok 3 devdax-2M-mem-rdma # SKIP why   not"
    assert lines["failed"] == "not ok 3 devdax-2M-mem-rdma # why   not"
    assert lines["timeout"].startswith("not ok 3 devdax-2M-mem-rdma # TIMEOUT why")
    assert lines["error"].startswith("not ok 3 devdax-2M-mem-rdma # ERROR why")
    assert lines["crashed"].startswith("not ok 3 devdax-2M-mem-rdma # ERROR guest crashed")
    assert all("\n" not in line and line.count("#") <= 1 for line in lines.values())


def test_names():
    assert family(PIN) == "test_pin" and case_name(PIN) == "devdax-2M-mem-rdma"
    assert family("ndctl/dax/mmap.sh") == "ndctl/dax"
    assert case_name("ndctl/dax/mmap.sh") == "mmap.sh"
    assert case_name("testcases/test_x.py::test_plain") == "test_plain"


def test_families_are_numbered_subtests_and_fail_when_a_test_fails():
    run = RunSummary(run_id="r", started="", kernel={"release": "6.1.0-57-amd64"}, tests=[
        TestRecord("testcases/test_pin.py::test_pin[anon-rdma]", "passed"),
        TestRecord(PIN, "known_failure", known_issue=BUG),
        TestRecord("testcases/test_odirect.py::test_odirect[anon-read]", "failed", message="x"),
        TestRecord("testcases/test_kvm.py::test_kvm_access[anon]", "skipped", message="no svm"),
    ])
    text = ktap(run).splitlines()
    assert text[0] == "KTAP version 1" and text[2] == "1..3"
    assert "    # Subtest: test_pin" in text and "    1..2" in text
    assert "ok 1 test_pin" in text
    assert "not ok 2 test_odirect" in text
    assert "ok 3 test_kvm_access # SKIP every test skipped" in text
