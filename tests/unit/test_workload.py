"""The judge of workload observations: each kind of wrong result is caught and explained."""

import copy
from pathlib import Path

import pytest

from harness import odirect
from harness.checks import Check, failures, format_failures
from harness.odirect import (
    describe_details,
    describe_observation,
    odirect_checks,
    run_odirect,
    stall_checks,
    stalled_functions,
)
from harness.ssh import CommandResult
from harness.workload import WorkloadOutputError

GOOD = {
    "case": "read-untouched", "buffer_kind": "file", "size": 4096, "completed": True,
    "error": None,
    "transfer": {"op": "odirect_read_peer_into_map", "ret": 4096, "errno": 0, "errno_name": "0"},
    "compare": {"expected": "pattern_b", "actual": "map", "bytes": 4096, "mismatch_offset": -1,
                "mismatch_count": 0, "expected_crc32": "0x1", "actual_crc32": "0x1"},
    "file_compare": None, "child": None, "readonly": None, "collision": None,
}
EXACT = {"transfer": "full", "compare": "exact"}


def variant(**changes):
    obs = copy.deepcopy(GOOD)
    for path, value in changes.items():
        node = obs
        *parents, leaf = path.split("__")
        for p in parents:
            node = node[p]
        node[leaf] = value
    return obs


def test_a_good_observation_matches():
    assert failures(odirect_checks(GOOD, EXACT)) == []


def test_a_corrupted_byte_is_reported_with_its_offset():
    bad = variant(compare__mismatch_offset=17, compare__mismatch_count=1,
                  compare__actual_crc32="0x2")
    [m] = failures(odirect_checks(bad, EXACT))
    assert m.name == "compare" and "first at offset 17" in m.observed


def test_a_short_transfer_is_reported():
    [m] = failures(odirect_checks(variant(transfer__ret=2048), EXACT))
    assert str(m) == "O_DIRECT transfer: expected ret 4096 (all bytes), observed ret 2048"


def test_a_wrong_errno_is_reported():
    obs = variant(transfer__ret=-1, transfer__errno=5, transfer__errno_name="EIO")
    [m] = failures(odirect_checks(obs, {"transfer": {"errno": "EFAULT"}}))
    assert m.expected == "ret -1 errno EFAULT" and m.observed == "ret -1 errno EIO"


def test_success_where_failure_was_expected_is_reported():
    [m] = failures(odirect_checks(GOOD, {"transfer": {"errno": "EFAULT"}}))
    assert m.observed == "ret 4096"


def test_readonly_content_change_is_reported():
    obs = variant(readonly={"ret": -1, "errno_name": "EFAULT", "content_changed": True})
    [m] = failures(odirect_checks(obs, {"content_changed": False}))
    assert m.expected == "unchanged" and m.observed == "changed"


def test_incomplete_workload_is_reported():
    obs = variant(completed=False, error="mmap: ENODEV")
    assert any("mmap: ENODEV" in m.observed for m in failures(odirect_checks(obs, EXACT)))


def test_missing_comparison_is_reported():
    assert failures(odirect_checks(variant(compare=None), EXACT))[0].observed == "none was made"


def test_fork_child_that_did_not_see_the_data():
    obs = variant(child={"saw_parent_data": False, "exit_status": 1, "signal": None})
    [m] = failures(odirect_checks(obs, {"child_saw_parent_data": True}))
    assert "saw_parent_data=False" in m.observed


def test_describe_observation():
    assert describe_observation(GOOD) == "read-untouched on file, ret 4096, byte-exact"


# -- the debug hook of nvh-odirect (NVH_ODIRECT_CORRUPT=1): a corrupted byte at size/2 -----

def test_a_byte_corrupted_by_the_debug_hook_is_reported_at_half_the_size():
    obs = variant(debug_corrupt=True, compare__mismatch_offset=2048,
                  compare__mismatch_count=1, compare__actual_crc32="0xdeadbeef")
    assert [str(m) for m in failures(odirect_checks(obs, EXACT))] == [
        "compare: expected 4096 bytes identical to pattern_b, observed 1 bytes differ, "
        "first at offset 2048 (crc 0xdeadbeef vs 0x1)"]


def test_a_corrupted_fd_view_is_reported():
    obs = variant(file_compare={"expected": "pattern_b", "bytes": 4096, "mismatch_offset": 512,
                                "mismatch_count": 3, "expected_crc32": "0x1",
                                "actual_crc32": "0x9"})
    [m] = failures(odirect_checks(obs, {**EXACT, "file_compare": "exact"}))
    assert m.name == "file_compare" and "first at offset 512" in m.observed


def test_a_sigbus_in_the_collision_reader_is_reported():
    obs = variant(collision={"reader": {"iterations": 10, "ok": 9, "sigbus": 1}})
    [m] = failures(odirect_checks(obs, {"reader_sigbus": 0}))
    assert str(m) == "SIGBUS in the O_DIRECT reader: expected 0, observed 1"


# -- the stall watchdog --------------------------------------------------------------------

STACKS = """== thread 288 nvh-odirect state S wchan futex_wait_queue
[<0>] futex_wait_queue+0x60/0x90
[<0>] futex_wait+0x185/0x270
== thread 290 nvh-odirect state S wchan ext4_break_layouts
[<0>] ext4_break_layouts+0x8f/0x120 [ext4]
[<0>] ext4_punch_hole+0x135/0x560 [ext4]
"""


def stalled(stacks=STACKS, recovered=True):
    return variant(watchdog={"stalled": True, "stall_after_s": 15, "stacks": stacks,
                             "stalled_in": stalled_functions(stacks), "recovered": recovered,
                             "recovered_after_s": 0.6 if recovered else None})


def test_stalled_functions_names_the_kernel_waits():
    assert stalled_functions(STACKS) == ["ext4_break_layouts"]
    assert stalled_functions("== thread 1 x state D wchan io_schedule\n") == ["io_schedule"]


def test_no_stall_is_fine_whatever_the_expectation():
    assert failures(stall_checks(GOOD, {})) == []
    no_stall = variant(watchdog={"stalled": False})
    assert failures(stall_checks(no_stall, {"mutator_stall": "forbidden"})) == []


def test_a_stall_fails_even_when_a_nudge_resolved_it():
    [m] = failures(stall_checks(stalled(), {"mutator_stall": "forbidden"}))
    assert m.observed == ("stalled in ext4_break_layouts for more than 15s until "
                          "SIGSTOP+SIGCONT (then finished in 0.6s)")
    [m] = failures(stall_checks(stalled(recovered=False), {"mutator_stall": "forbidden"}))
    assert m.observed.startswith("hung in ext4_break_layouts: still running after 15s")


def test_a_stall_is_never_a_tolerated_expectation():
    """6.1's stall was once `tolerated` in odirect.yaml, which made the cells pass; a
    kernel that stalls has a bug (known_failures.yaml), so the table cannot say so."""
    with pytest.raises(ValueError, match="mutator_stall must be forbidden"):
        odirect.VOCABULARY["mutator_stall"]("tolerated")


def test_describe_details():
    obs = stalled()
    obs["collision"] = {"reader": {"iterations": 270, "ok": 260, "sigbus": 0,
                                   "errors": {"EFAULT": 10}},
                        "mutator": {"iterations": 1}}
    assert describe_details(obs) == (
        "reader 270 reads (260 full, EFAULT 10), SIGBUS 0; mutator 1 punch/truncate rounds; "
        "stalled in ext4_break_layouts > 15s, finished 0.6s after SIGSTOP+SIGCONT")


def test_format_failures_one_per_line():
    obs = variant(transfer__ret=-1, transfer__errno_name="EIO", compare__mismatch_offset=1)
    text = format_failures(odirect_checks(obs, EXACT))
    assert text.splitlines()[0].startswith("O_DIRECT transfer: expected ret 4096")
    assert text.splitlines()[1].startswith("compare: expected 4096 bytes")


# -- run_odirect against a scripted guest --------------------------------------------------

class ScriptedGuest:
    """Answers the commands run_odirect() sends; `finish_after` polls until rc exists."""

    def __init__(self, stdout, status=0, finish_after=0, finish_on_nudge=False):
        self.stdout, self.status = stdout, status
        self.polls_left = finish_after
        self.finish_on_nudge = finish_on_nudge
        self.commands = []

    def run(self, command, timeout_s=120):
        self.commands.append(command)
        out, status = "", 0
        if command.startswith("nvh-odirect"):
            out, status = self.stdout, self.status
        elif command.startswith("d=$(mktemp"):
            out = "/tmp/nvh-odirect.abc\n"
        elif command.startswith("test -e /tmp/nvh-odirect.abc/rc"):
            if self.polls_left > 0:
                self.polls_left -= 1
                status = 1
        elif "kill -STOP" in command and self.finish_on_nudge:
            self.polls_left = 0
        elif command.startswith("pid=$(cat"):
            out = STACKS
        elif command.startswith("cat /tmp/nvh-odirect.abc/out"):
            out, status = self.stdout, self.status
        return CommandResult(command, status, out, "", 0.01)


def test_run_odirect_accepts_exit_1_with_json_and_refuses_usage_errors():
    assert run_odirect(ScriptedGuest('{"completed": false}', status=1),
                       "nvh-odirect --case x") == {"completed": False}
    with pytest.raises(WorkloadOutputError, match="exit status 2"):
        run_odirect(ScriptedGuest("", status=2), "nvh-odirect --case x")


def test_run_odirect_watchdog_nudges_a_stalled_workload():
    guest = ScriptedGuest('{"completed": true}', finish_after=10_000, finish_on_nudge=True)
    observed = run_odirect(guest, "nvh-odirect --case collision", stall_after_s=0.05,
                           poll_s=0.01)
    wd = observed["watchdog"]
    assert wd["stalled"] and wd["recovered"] and wd["stalled_in"] == ["ext4_break_layouts"]
    assert any("kill -STOP" in c for c in guest.commands)
    assert guest.commands[-1].endswith("rm -rf /tmp/nvh-odirect.abc")


def test_run_odirect_watchdog_kills_what_a_nudge_does_not_free():
    guest = ScriptedGuest('{"completed": true}', finish_after=10_000)
    observed = run_odirect(guest, "nvh-odirect --case collision", stall_after_s=0.05,
                           nudge_wait_s=0.05, poll_s=0.01)
    assert observed["completed"] is False and not observed["watchdog"]["recovered"]
    assert "killed" in observed["error"]
    assert any(c.startswith("kill -KILL") for c in guest.commands)
    assert failures(stall_checks(observed, {"mutator_stall": "forbidden"}))


# -- issue 14 item 5: the collision stall is a known kernel bug with a finding of its own ---

def test_a_layout_break_stall_is_a_known_failure_on_61_and_fixed_without_it():
    """6.1's lost wakeup in ext4_break_layouts() used to pass through a `tolerated` row;
    now the stall is a `stall` finding, known_failure on 6.1, failed elsewhere, and a
    kernel that wakes the waiter makes the cell `fixed`."""
    from harness import expectations, known_failures, odirect
    from harness.odirect import stall_checks, stall_finding

    root = Path(__file__).resolve().parents[2]
    table = expectations.load(root / "testcases" / "expectations" / "odirect.yaml",
                              odirect.VOCABULARY)
    known = known_failures.load(root / "testcases" / "known_failures.yaml")
    test = "testcases/test_odirect.py::test_odirect[fsdax-ext4-mem-collision-2M]"
    expect = table.lookup("fsdax-ext4-mem", "collision-2M", "6.1.0-57-amd64").values
    obs = stalled()
    [check] = stall_checks(obs, expect)
    finding = stall_finding(obs)
    assert not check.ok and finding.kind == "stall"
    assert finding.title == "stall in ext4_break_layouts"
    verdict = known.judge(test, "6.1.0-57-amd64", False, [finding.title], [check])
    assert verdict.outcome == "known_failure"
    assert known.judge(test, "6.12.0", False, [finding.title], [check]) is None  # failed
    [fine] = stall_checks(variant(watchdog={"stalled": False, "stall_after_s": 10}), expect)
    assert fine.ok and stall_finding(GOOD) is None
    assert known.judge(test, "6.1.0-57-amd64", True, [], [fine]).outcome == "fixed"
    # the stall and a corrupted byte: failed, naming both
    corrupt = Check("compare", "2097152 bytes identical to pattern_b",
                    "1 bytes differ, first at offset 1048576", False)
    both = known.judge(test, "6.1.0-57-amd64", False, [finding.title], [check, corrupt])
    assert both.outcome == "failed" and "offset 1048576" in both.message
