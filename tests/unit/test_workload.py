"""The judge of workload observations: each kind of wrong result is caught and explained."""

import copy

from harness.workload import check_odirect, describe_observation

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
    assert check_odirect(GOOD, EXACT) == []


def test_a_corrupted_byte_is_reported_with_its_offset():
    bad = variant(compare__mismatch_offset=17, compare__mismatch_count=1,
                  compare__actual_crc32="0x2")
    [m] = check_odirect(bad, EXACT)
    assert m.what == "compare" and "first at offset 17" in m.observed


def test_a_short_transfer_is_reported():
    [m] = check_odirect(variant(transfer__ret=2048), EXACT)
    assert str(m) == "O_DIRECT transfer: expected ret 4096 (all bytes), observed ret 2048"


def test_a_wrong_errno_is_reported():
    obs = variant(transfer__ret=-1, transfer__errno=5, transfer__errno_name="EIO")
    [m] = check_odirect(obs, {"transfer": {"errno": "EFAULT"}})
    assert m.expected == "ret -1 errno EFAULT" and m.observed == "ret -1 errno EIO"


def test_success_where_failure_was_expected_is_reported():
    [m] = check_odirect(GOOD, {"transfer": {"errno": "EFAULT"}})
    assert m.observed == "ret 4096"


def test_readonly_content_change_is_reported():
    obs = variant(readonly={"ret": -1, "errno_name": "EFAULT", "content_changed": True})
    [m] = check_odirect(obs, {"content_changed": False})
    assert m.expected == "unchanged" and m.observed == "changed"


def test_incomplete_workload_is_reported():
    obs = variant(completed=False, error="mmap: ENODEV")
    assert any("mmap: ENODEV" in m.observed for m in check_odirect(obs, EXACT))


def test_missing_comparison_is_reported():
    assert check_odirect(variant(compare=None), EXACT)[0].observed == "none was made"


def test_fork_child_that_did_not_see_the_data():
    obs = variant(child={"saw_parent_data": False, "exit_status": 1, "signal": None})
    [m] = check_odirect(obs, {"child_saw_parent_data": True})
    assert "saw_parent_data=False" in m.observed


def test_describe_observation():
    assert describe_observation(GOOD) == "read-untouched on file, ret 4096, byte-exact"
