"""The known-failures table: loading, matching a test + kernel + finding, fixed bugs."""

from pathlib import Path

import pytest

from harness import known_failures
from harness.checks import Check
from harness.known_failures import KnownFailuresError, parse

ROOT = Path(__file__).resolve().parents[2]
OOPS = "BUG: unable to handle kernel paging request in unpin_user_page_range_dirty_lock"


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
    # the bug plus something unrelated is not the known bug: failed, naming both
    both = kf.judge(test, "6.1.0", False, [OOPS, "WARNING in x"])
    assert both.outcome == "failed"
    assert OOPS in both.message and "kernel finding: WARNING in x" in both.message


# -- issue 14 item 1: the bug must be the only deviation --------------------------------

RDMA = "testcases/test_remove.py::test_remove_pinned_devdax[rdma-disable]"
MAPPING_OK = Check("the old mapping", "SIGBUS on the next touch", "sigbus", True,
                   source="drivers/dax/bus.c kill_dev_dax()")
MAPPING_BAD = Check("the old mapping", "SIGBUS on the next touch", "intact", False,
                    source="drivers/dax/bus.c kill_dev_dax()")
USABLE = Check("namespace usable again", "recreated, O_DIRECT round trip exact", "ok", True)


def test_a_failed_check_beside_the_known_oops_is_failed_naming_both():
    """A devdax disable that stopped revoking the mapping under an rxe pin, on a kernel
    that also oopses at the unpin: the oops is known, the mapping is not."""
    kf = table()
    verdict = kf.judge(RDMA, "6.1.0-57-amd64", False, [OOPS], [MAPPING_BAD, USABLE])
    assert verdict.outcome == "failed"
    assert OOPS in verdict.message
    assert "the old mapping: expected SIGBUS on the next touch, observed intact" \
        in verdict.message
    assert "drivers/dax/bus.c" in verdict.message


def test_the_known_oops_with_every_check_held_is_known_failure():
    kf = table()
    verdict = kf.judge(RDMA, "6.1.0-57-amd64", False, [OOPS], [MAPPING_OK, USABLE])
    assert verdict.outcome == "known_failure"


def test_a_check_the_bug_explains_is_listed_as_a_consequence():
    umount = Check("umount", "exit 0", "killed (status 137)", False)
    kf = table(consequences=[{"check": "umount", "reason": "the oops happens in umount"}])
    assert kf.judge(RDMA, "6.1.0", False, [OOPS], [umount, USABLE]).outcome == "known_failure"
    # only that check: another failed check still fails the test
    verdict = kf.judge(RDMA, "6.1.0", False, [OOPS], [umount, MAPPING_BAD])
    assert verdict.outcome == "failed" and "the old mapping" in verdict.message
    assert "umount" not in verdict.message.split("differed as well:")[1]
    assert kf.entries[0].to_json()["consequences"] == [
        {"check": "umount", "reason": "the oops happens in umount"}]


def test_fixed_needs_every_check_held():
    kf = table()
    assert kf.judge(RDMA, "6.1.0", True, [], [MAPPING_OK]).outcome == "fixed"
    assert kf.judge(RDMA, "6.1.0", True, [], [MAPPING_BAD]) is None


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
    ({"finding": ""}, "entry 1: finding must be a title or a list of them"),
    ({"reference": None}, "entry 1: reference must be non-empty text"),
    ({"colour": "red"}, "entry 1: unknown key 'colour'"),
    ({"also": "x"}, "entry 1: also must be a list of finding titles"),
    ({"consequences": [{"check": "umount"}]}, "entry 1: a consequence must be {check: NAME"),
    ({"consequences": "umount"}, "entry 1: consequences must be a list"),
])
def test_bad_entries_name_the_problem(entry, message):
    with pytest.raises(KnownFailuresError) as e:
        table(**entry)
    assert str(e.value).startswith("kf.yaml: " + message)


def test_the_projects_table_loads():
    kf = known_failures.load(ROOT / "testcases" / "known_failures.yaml")
    assert kf.entries, "the table records the 6.1 removal bugs"


def test_a_record_may_name_the_titles_of_plain_and_debug_kernels():
    from harness.known_failures import parse

    kasan = "KASAN: use-after-free Read in unpin_user_page_range_dirty_lock"
    kf = parse({"known_failures": [{
        "test": "test_remove.py::test_remove_pinned_devdax[rdma]", "kernel": ">=6.1,<6.2",
        "finding": [OOPS, kasan], "reference": "rxe MR released after devdax disable"}]})
    test = "testcases/test_remove.py::test_remove_pinned_devdax[rdma]"
    assert kf.judge(test, "6.1.192", False, [kasan]).outcome == "known_failure"
    assert kf.judge(test, "6.1.192", False, [OOPS]).outcome == "known_failure"
    # The debug kernel often prints both; neither is "unrelated" to the other.
    assert kf.judge(test, "6.1.192", False, [kasan, OOPS]).outcome == "known_failure"
    other = kf.judge(test, "6.1.192", False, [kasan, "WARNING in x"])
    assert other.outcome == "failed" and f"known kernel bug ({kasan})" in other.message
    assert kf.entries[0].to_json()["title"] == OOPS


def test_a_bug_only_a_debug_kernel_sees_is_no_fix_on_a_plain_kernel():
    from harness.known_failures import parse

    kasan = "KASAN: slab-out-of-bounds Read in rxe_mr_copy"
    kf = parse({"known_failures": [{
        "test": "test_pin.py::test_pin[devdax-*-rdma]", "kernel": ">=6.1,<6.2",
        "checkers": ["KASAN"], "finding": kasan, "reference": "rxe map walk"}]})
    test = "testcases/test_pin.py::test_pin[devdax-2M-mem-rdma]"
    assert kf.judge(test, "6.1.0-57-amd64", True, []) is None  # plain kernel: not "fixed"
    assert kf.judge(test, "6.1.192", False, [kasan], checkers=("KASAN",)).outcome == \
        "known_failure"
    assert kf.judge(test, "6.1.192", True, [], checkers=("KASAN", "UBSAN")).outcome == "fixed"
    with pytest.raises(ValueError, match="checkers must be a list of config names"):
        parse({"known_failures": [{"test": "t", "kernel": ">=6.1", "finding": kasan,
                                   "reference": "r", "checkers": "KASAN"}]})


def test_one_record_may_cover_several_test_patterns():
    from harness.known_failures import parse

    kasan = "KASAN: slab-out-of-bounds Read in rxe_mr_copy"
    kf = parse({"known_failures": [{
        "test": ["test_pin.py::test_pin[devdax-*-rdma]", "test_pin.py::test_pin[anon-rdma]"],
        "kernel": ">=6.1,<6.2", "checkers": ["KASAN"], "finding": kasan, "reference": "r"}]})
    for test in ("test_pin[devdax-2M-dev-rdma]", "test_pin[anon-rdma]"):
        assert kf.judge(f"testcases/test_pin.py::{test}", "6.1.192", False, [kasan],
                        checkers=("KASAN",)).outcome == "known_failure"
    assert kf.judge("testcases/test_pin.py::test_pin[fsdax-ext4-mem-rdma]", "6.1.192", False,
                    [kasan], checkers=("KASAN",)) is None


def test_an_upstream_ndctl_failure_is_recorded_like_a_kernel_bug():
    # harness/ndctl_upstream.judge() titles a failed upstream test "ndctl test NAME failed:
    # WHERE"; its id has no directory part, so the record names it whole
    kf = parse({"known_failures": [{
        "test": "ndctl/dax/dm.sh", "kernel": ">=6.1,<6.2",
        "finding": "ndctl test dm.sh failed: dm.sh line 70",
        "reference": "an example record"}]}, "kf.yaml")
    same = kf.judge("ndctl/dax/dm.sh", "6.1.0-57-amd64", False,
                    ["ndctl test dm.sh failed: dm.sh line 70"])
    assert same is not None and same.outcome == "known_failure"
    # failing somewhere else is not the known failure
    assert kf.judge("ndctl/dax/dm.sh", "6.1.0-57-amd64", False,
                    ["ndctl test dm.sh failed: dm.sh line 48"]) is None
    assert kf.judge("ndctl/dax/dm.sh", "6.1.0-57-amd64", True, []).outcome == "fixed"
