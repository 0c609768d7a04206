"""harness.recorder: one TestRecord per guest test from its phases, the known-failures table
applied (known_failure, fixed, failed naming the bug and the other deviation), checks kept,
and the results directory written (or merged from xdist workers' ones).

The frames here are never started: the recorder only reads their findings and state. The
recorder's `guest` is a stand-in that only says which kernel release ran (no guest).
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
from kmsg_data import body

from harness import kmsg
from harness.checks import Check
from harness.console import boot_banner, mark_text
from harness.errors import BootError, HarnessError, UsageError
from harness.recorder import RunRecorder
from harness.verdict import Phase

RDMA = "testcases/test_remove.py::test_remove_pinned_devdax[rdma-disable]"
OTHER = "testcases/test_odirect.py::test_odirect_read[fsdax-ext4]"
OOPS = "BUG: unable to handle kernel paging request in unpin_user_page_range_dirty_lock"
TABLE = f"""\
known_failures:
  - test: "test_remove.py::test_remove_pinned_devdax[rdma-*]"
    kernel: ">=6.1,<6.2"
    finding: "{OOPS}"
    consequences:
      - check: "rxe MR released"
        reason: "the release is what oopses"
    reference: "rxe MR released after devdax disable"
"""
FINDINGS_FAILURE = "KernelFindingsError: the kernel reported problems during the test"
MAPPING_BAD = Check("the old mapping", "SIGBUS on the next touch", "intact", False,
                    source="drivers/dax/bus.c kill_dev_dax()")
RELEASE_BAD = Check("rxe MR released", "ok", "process killed", False)
USABLE = Check("namespace usable again", "recreated", "ok", True)




@pytest.fixture
def rec(tmp_path) -> RunRecorder:
    table = tmp_path / "known_failures.yaml"
    table.write_text(TABLE)
    r = RunRecorder(tmp_path / "results", tmp_path, table)
    r.guest = SimpleNamespace(kernel_release="6.1.0-57-amd64")
    return r


def call(status: str, text: str = "", **kw) -> Phase:
    return Phase("call", status, duration_s=12.3456, longrepr=f"Traceback ...\n{text}",
                 crash_message=text or None, **kw)


def finished(rec: RunRecorder, test_id: str, findings=(), checks=(), **state):
    """The test's frame after the test: its findings and checks, as frame.finish left them."""
    frame = rec.frame_for(test_id, [], guest=None)
    frame.findings = list(findings)
    frame.artifacts.add_checks(checks)
    for k, v in state.items():
        setattr(frame, k, v)
    return frame


def oops() -> list[kmsg.Finding]:
    return kmsg.scan_kernel_log("\n".join(body("oops-unpin_user_page_range_dirty_lock.log")))


# -- one test's phases ------------------------------------------------------------------------

def test_a_plain_pass_and_a_plain_failure(rec):
    frame = finished(rec, OTHER, checks=[USABLE])
    assert rec.record(OTHER, Phase("setup", "passed"), frame) is None
    assert OTHER not in rec.records  # setup said nothing
    assert rec.record(OTHER, call("passed"), frame) is None
    assert rec.record(OTHER, Phase("teardown", "passed"), frame) is None
    record = rec.records[OTHER]
    assert (record.outcome, record.duration_s, record.message) == ("passed", 12.346, "")
    assert record.checks == [USABLE.to_json()] and record.known_issue is None
    assert rec.any_guest_tests

    failing = "testcases/test_odirect.py::test_odirect_write[fsdax-ext4]"
    rec.record(failing, call("failed", "AssertionError: short read"), finished(rec, failing))
    assert rec.records[failing].outcome == "failed"
    assert rec.records[failing].message == "AssertionError: short read"
    assert rec.records[failing].artifacts == ["tests/test_odirect_write_fsdax-ext4/failure.txt"]


def test_the_known_bug_alone_is_known_failure(rec):
    frame = finished(rec, RDMA, oops(), [USABLE, RELEASE_BAD])
    verdict = rec.record(RDMA, call("failed", FINDINGS_FAILURE), frame)
    assert verdict.outcome == "known_failure"
    record = rec.records[RDMA]
    assert record.outcome == "known_failure"
    assert record.known_issue["title"] == OOPS
    assert record.kernel_findings == [frame.findings[0].to_json()]
    assert record.kernel_findings[0]["title"] == OOPS
    assert record.message == FINDINGS_FAILURE
    # every check, the failed one the bug explains included
    assert record.checks == [USABLE.to_json(), RELEASE_BAD.to_json()]
    # pytest reports it as xfail (skipped): no failure.txt, as before the move
    assert record.artifacts == []


def test_a_crash_with_the_known_finding_is_judged_too(rec):
    frame = finished(rec, RDMA, oops(), crashed="the guest died (QEMU exited)",
                     guest_stopped=True)
    verdict = rec.record(RDMA, call("failed", "ConnectionError"), frame)
    assert verdict.outcome == "known_failure"
    assert rec.records[RDMA].message == "kernel crashed: the guest died (QEMU exited)"
    # the fixtures' teardown has no guest: nothing more to say
    assert rec.record(RDMA, Phase("teardown", "failed", longrepr="EOFError"), frame) is None
    assert rec.records[RDMA].outcome == "known_failure"


def test_the_known_bug_and_a_failed_check_it_does_not_explain_is_failed_naming_both(rec):
    frame = finished(rec, RDMA, oops(), [MAPPING_BAD, USABLE])
    verdict = rec.record(RDMA, call("failed", FINDINGS_FAILURE), frame)
    assert verdict.outcome == "failed"
    record = rec.records[RDMA]
    assert record.outcome == "failed"
    assert record.message == f"{verdict.message}\n{FINDINGS_FAILURE}"
    assert OOPS in record.message
    assert "the old mapping: expected SIGBUS on the next touch, observed intact" \
        in record.message
    assert record.known_issue["title"] == OOPS  # the report still names the known bug
    assert record.artifacts == ["tests/test_remove_pinned_devdax_rdma-disable/failure.txt"]


def test_the_known_bug_and_another_finding_is_failed_and_the_message_is_capped(rec):
    warn = kmsg.Finding("warning", "WARNING in dax_iomap_rw", 90, "")
    frame = finished(rec, RDMA, [*oops(), warn])
    rec.record(RDMA, call("failed", "x" * 5000), frame)
    record = rec.records[RDMA]
    assert record.outcome == "failed" and len(record.message) == 4000
    assert "kernel finding: WARNING in dax_iomap_rw" in record.message


def test_a_clean_pass_of_a_known_bug_is_fixed(rec):
    frame = finished(rec, RDMA, [], [USABLE])
    verdict = rec.record(RDMA, call("passed"), frame)
    assert verdict.outcome == "fixed"
    assert rec.records[RDMA].outcome == "fixed"
    assert rec.records[RDMA].known_issue["reference"] == "rxe MR released after devdax disable"


def test_no_verdict_without_the_finding_on_another_kernel_or_for_an_error(rec):
    frame = finished(rec, RDMA, [], [MAPPING_BAD])
    assert rec.record(RDMA, call("failed", "AssertionError: mapping intact"), frame) is None
    assert rec.records[RDMA].outcome == "failed"

    rec.guest.kernel_release = "6.6.0"
    other = RDMA.replace("disable", "unbind")
    assert rec.record(other, call("failed", FINDINGS_FAILURE),
                      finished(rec, other, oops())) is None
    assert rec.records[other].outcome == "failed"


def test_outcomes_the_table_does_not_judge_do_not_load_it(rec, tmp_path):
    rec.known_failures_path = tmp_path / "missing.yaml"  # loading would fail
    killed = finished(rec, RDMA, oops(), qemu_killed="QEMU was killed by signal 9")
    assert rec.record(RDMA, call("failed", "EOFError"), killed) is None
    assert rec.records[RDMA].outcome == "error"
    assert rec.record(OTHER, Phase("setup", "skipped", skip_reason="no rxe"), None) is None
    assert rec.records[OTHER].outcome == "skipped" and rec.records[OTHER].message == "no rxe"
    assert rec.known is None


def test_a_bad_known_failures_table_stops_the_run(rec, tmp_path):
    rec.known_failures_path.write_text("known_failures: [{test: x}]\n")
    frame = finished(rec, RDMA, oops())
    with pytest.raises(UsageError, match=r"known_failures\.yaml: entry 1"):
        rec.record(RDMA, call("failed", FINDINGS_FAILURE), frame)

    stops = []

    class Glue(RunRecorder):  # like conftest.py's, on an xdist worker: the test goes on
        def stop(self, message, returncode):
            stops.append((returncode, message))

    glue = Glue(tmp_path / "r2", tmp_path, rec.known_failures_path)
    glue.guest = rec.guest
    assert glue.record(RDMA, call("failed", FINDINGS_FAILURE),
                       finished(glue, RDMA, oops())) is None
    assert glue.records[RDMA].outcome == "failed"
    assert stops[0][0] == 2 and "entry 1" in stops[0][1]


def test_checks_recorded_in_a_failing_teardown_count(rec):
    frame = finished(rec, OTHER, checks=[USABLE])
    rec.record(OTHER, call("failed", "AssertionError"), frame)
    later = Check("namespace reset", "ok", "busy", False)
    frame.artifacts.add_checks([later])
    rec.record(OTHER, Phase("teardown", "failed", longrepr="umount: busy"), frame)
    assert rec.records[OTHER].outcome == "failed"  # the call's verdict stays
    assert rec.records[OTHER].checks == [USABLE.to_json(), later.to_json()]


def test_a_teardown_error_after_a_pass_makes_the_test_an_error(rec):
    frame = finished(rec, OTHER)
    rec.record(OTHER, call("passed"), frame)
    rec.record(OTHER, Phase("teardown", "failed", duration_s=1.0, longrepr="umount: busy",
                            crash_message="CalledProcessError: umount"), frame)
    record = rec.records[OTHER]
    assert (record.outcome, record.message, record.duration_s) == \
        ("error", "CalledProcessError: umount", 1.0)


# -- stopping the run -------------------------------------------------------------------------

def test_stop_for(rec):
    assert rec.stop_for(UsageError("--profile: no profile named 'x'"), "prepare") == \
        ("nvdimm-harness: --profile: no profile named 'x'", 2)
    assert rec.infra_error == ""
    assert rec.stop_for(HarnessError("image build failed"), "prepare") == \
        ("nvdimm-harness: image build failed", 3)
    assert rec.infra_error == "image build failed"
    boot = BootError("guest did not answer SSH in time", console_tail="[ 1.0] Probing EDD")
    assert rec.stop_for(boot, "boot") == ("nvdimm-harness: guest did not answer SSH in time", 3)
    assert rec.infra_error == \
        "guest did not answer SSH in time\n--- console tail ---\n[ 1.0] Probing EDD"
    assert rec.stop_for(boot, "restart") == \
        ("nvdimm-harness: guest restart failed: guest did not answer SSH in time", 3)
    assert rec.infra_error == \
        "guest restart failed: guest did not answer SSH in time\n[ 1.0] Probing EDD"
    # while booting, bad input is the infrastructure's problem too
    assert rec.stop_for(UsageError("odd"), "boot") == ("nvdimm-harness: odd", 3)


# -- the results directory ---------------------------------------------------------------------

def console_log(results: Path) -> None:
    """A console.log with a WARN between two tests and an oops inside one."""
    warn = body("warning-dax_iomap_rw.log")
    lines = [boot_banner(1, "distro", "tcg").rstrip("\n"), *body("clean-boot-debian-6.1.log"),
             *warn, f"[ 401.0] {mark_text('begin ' + RDMA)}",
             *body("oops-unpin_user_page_range_dirty_lock.log"),
             f"[ 404.0] {mark_text('end ' + RDMA)}"]
    results.mkdir(parents=True, exist_ok=True)
    (results / "console.log").write_text("\n".join(lines) + "\n")


def test_write_results(rec):
    assert rec.write_results(interrupted=False) == (None, [])  # no guest test: nothing
    console_log(rec.results_dir)
    frame = finished(rec, RDMA, oops(), [USABLE])
    rec.record(RDMA, call("failed", FINDINGS_FAILURE), frame)
    frame.artifacts.attach("dmesg.txt", "late")  # attached after the record was made
    assert rec.write_results(interrupted=False) == \
        (None, [f"nvdimm-harness: results in {rec.results_dir}"])
    summary = json.loads((rec.results_dir / "summary.json").read_text())
    assert [(f["kind"], f["title"], f["frame"]) for f in summary["run_findings"]] == [
        ("warning", "WARNING in dax_iomap_rw", "dax_iomap_rw")]
    (test,) = summary["tests"]
    assert test["outcome"] == "known_failure" and test["checks"] == [USABLE.to_json()]
    assert test["artifacts"] == ["tests/test_remove_pinned_devdax_rdma-disable/dmesg.txt"]
    for name in ("junit.xml", "summary.md", "report.html"):
        assert (rec.results_dir / name).is_file()


def test_write_results_interrupted_and_on_a_broken_disk(rec, tmp_path):
    rec.running = OTHER
    rec.any_guest_tests = True
    assert rec.write_results(interrupted=True)[0] is None
    summary = json.loads((rec.results_dir / "summary.json").read_text())
    assert summary["infra_error"] == \
        f"run interrupted (Ctrl-C or SIGTERM) during {OTHER}; results are partial"

    blocked = tmp_path / "file"
    blocked.write_text("")
    rec.results_dir = blocked / "results"
    status, lines = rec.write_results(interrupted=False)
    assert status == 3 and lines[0].startswith(f"nvdimm-harness: cannot write the results to "
                                               f"{blocked / 'results'}")


# -- pytest-xdist: workers and the controller ------------------------------------------------

def test_workers_write_into_the_controller_s_directory_and_it_merges_them(tmp_path):
    table = tmp_path / "known_failures.yaml"
    table.write_text(TABLE)
    controller = RunRecorder(tmp_path / "results", tmp_path, table)
    for worker, test in (("gw0", RDMA), ("gw1", OTHER)):
        w = RunRecorder(None, tmp_path, table,
                        workerinput={"workerid": worker, **controller.worker_input()})
        assert w.run_id == f"{controller.run_id}-{worker}"
        assert w.results_dir == controller.results_dir.resolve() / "workers" / worker
        w.guest = SimpleNamespace(kernel_release="6.1.0-57-amd64")
        w.record(test, call("failed", FINDINGS_FAILURE),
                 finished(w, test, oops() if test == RDMA else []))
        assert w.write_results(interrupted=False) == (None, [])  # the controller says it
    status, lines = controller.finish(interrupted=False, controller=True)
    assert status is None and lines[-1] == f"nvdimm-harness: results in {controller.results_dir}"
    summary = json.loads((controller.results_dir / "summary.json").read_text())
    assert {t["id"]: t["outcome"] for t in summary["tests"]} == \
        {RDMA: "known_failure", OTHER: "failed"}
    assert not (controller.results_dir / "workers").exists()


def test_a_worker_that_stopped_the_run_or_died_sets_the_exit_status(tmp_path):
    controller = RunRecorder(tmp_path / "results", tmp_path, tmp_path / "kf.yaml")
    assert controller.finish(interrupted=False, controller=True) == (None, [])
    controller.worker_down({})
    controller.worker_down({"nvh_exit": [3, "nvdimm-harness: guest restart failed: x"]})
    controller.worker_down({"nvh_exit": [2, "later"]})  # the first one counts
    assert controller.worker_exit == (3, "nvdimm-harness: guest restart failed: x")
    assert controller.merge_workers(interrupted=False) == \
        (3, ["nvdimm-harness: guest restart failed: x"])

    # A worker killed before it wrote its summary: its console kept, the run an infra error.
    died = RunRecorder(tmp_path / "r2", tmp_path, tmp_path / "kf.yaml")
    (died.results_dir / "workers" / "gw0").mkdir(parents=True)
    (died.results_dir / "workers" / "gw0" / "console.log").write_text("[ 1.0] booting\n")
    status, lines = died.merge_workers(interrupted=False)
    assert status == 3 and lines[-1].endswith(str(died.results_dir))
    summary = json.loads((died.results_dir / "summary.json").read_text())
    assert "xdist worker gw0 ended without writing its results" in summary["infra_error"]


def test_checks_recorded_in_a_passing_teardown_count_too(rec):
    """A teardown that passes says nothing about the outcome, but a check it recorded (the
    namespace usable again, made in a fixture) still belongs in summary.json."""
    frame = finished(rec, OTHER)
    rec.record(OTHER, call("passed"), frame)
    frame.artifacts.add_checks([USABLE])
    assert rec.record(OTHER, Phase("teardown", "passed"), frame) is None
    assert rec.records[OTHER].outcome == "passed"
    assert rec.records[OTHER].checks == [USABLE.to_json()]
