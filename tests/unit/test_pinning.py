"""Pin accounting, nvh-pin command lines and the judging of pin observations."""

from pathlib import Path

from harness import expectations, pinning
from harness.checks import failures

ROOT = Path(__file__).resolve().parents[2]

VMSTAT = """nr_dirtied 1234
nr_foll_pin_acquired 1536
nr_foll_pin_released 1024
nr_written 99
"""


def test_pin_counters_and_leaks():
    before = pinning.parse_pin_counters(VMSTAT)
    assert before == {"acquired": 1536, "released": 1024}
    balanced = {"acquired": 2048, "released": 1536}
    assert pinning.pin_leak_message(before, balanced) == ""
    leaked = {"acquired": 2048, "released": 1024}
    msg = pinning.pin_leak_message(before, leaked)
    assert "512 pages pinned but 0 released" in msg and "1536 -> 2048" in msg
    # a kernel without the counters: nothing to judge
    assert pinning.parse_pin_counters("nr_dirtied 1\n") == {}
    assert pinning.pin_leak_message({}, {}) == ""


def test_pin_command():
    assert pinning.pin_command("devdax:/dev/dax0.0", "gup_test-longterm", 2 << 20) == (
        "nvh-pin --buffer devdax:/dev/dax0.0 --method gup_test --size 2097152 "
        "--gup-test longterm")
    assert pinning.pin_command("anon", "rdma", 4096, hold=True, rdma_dev="rxe0") == (
        "nvh-pin --buffer anon --method rdma --size 4096 --hold --rdma-dev rxe0")


def observed(ok=True, errno=None, verify_ok=True, completed=True):
    return {"program": "nvh-pin", "completed": completed, "error": None,
            "pin": {"ok": ok, "errno": errno, "ret": 0 if ok else -1},
            "verify": {"ok": verify_ok, "mismatches": 0 if verify_ok else 7} if ok else None}


def test_check_pin_catches_each_difference():
    ok = {"pin": "ok", "verify": "exact", "foll_pin_acquired": ">0"}
    assert failures(pinning.pin_checks(observed(), ok, {"acquired": 512, "released": 512})) == []
    refused = failures(pinning.pin_checks(observed(ok=False, errno="EOPNOTSUPP"), ok,
                                {"acquired": 512, "released": 512}))
    # nothing pinned: nothing verified either
    assert [m.name for m in refused] == ["pin", "data through the pin"]
    assert "refused EOPNOTSUPP" in str(refused[0])
    corrupt = failures(pinning.pin_checks(observed(verify_ok=False), ok,
                                {"acquired": 512, "released": 512}))
    assert [m.name for m in corrupt] == ["data through the pin"]
    uncounted = failures(pinning.pin_checks(observed(), ok, {"acquired": 0, "released": 0}))
    assert [m.name for m in uncounted] == ["nr_foll_pin_acquired"]

    want_refusal = {"pin": {"errno": "EOPNOTSUPP"}}
    assert failures(pinning.pin_checks(observed(ok=False, errno="EOPNOTSUPP"), want_refusal)) == []
    assert failures(pinning.pin_checks(observed(ok=False, errno="ENOMEM"), want_refusal))
    assert failures(pinning.pin_checks(observed(), want_refusal))
    broken = failures(pinning.pin_checks(observed(completed=False), want_refusal))
    assert broken[0].name == "workload"


def test_the_pin_table_covers_every_mode_and_method():
    table = expectations.load(ROOT / "testcases" / "expectations" / "pin.yaml",
                              pinning.VOCABULARY)
    from harness import dax
    modes = [m.name for m in dax.pin_buffer_modes()]
    cells = [(m, c) for m in modes for c in pinning.METHODS]
    # every kernel the table has rows for: io_uring's answer changed in 6.5
    for release in ("6.1.0-57-amd64", "6.5.0", "6.12.57"):
        assert expectations.uncovered(table, cells, required=("pin",), release=release) == []


# -- issue 14 item 6: exact counts, refused pins counted too ------------------------------

def test_counts_are_exact_and_judged_for_refused_pins():
    """io_uring on devdax (6.1) pins 512 pages, then refuses the buffer and unpins them:
    +512/+512. The old check skipped the counters of every refused pin."""
    want = {"pin": {"errno": "EOPNOTSUPP"}, "foll_pin_acquired": 512,
            "foll_pin_released": 512}
    refused = observed(ok=False, errno="EOPNOTSUPP")
    assert failures(pinning.pin_checks(refused, want, {"acquired": 512, "released": 512})) == []
    [m] = failures(pinning.pin_checks(refused, want, {"acquired": 512, "released": 0}))
    assert m.name == "nr_foll_pin_released" and m.observed == "+0 during the pin"
    # exact: one page more is a failure ('>0' would have let it through)
    exact = {"pin": "ok", "verify": "exact", "foll_pin_acquired": 512}
    [m] = failures(pinning.pin_checks(observed(), exact, {"acquired": 513, "released": 0}))
    assert m.expected == "512" and m.observed == "+513 during the pin"
    # no counters at all is not a pass
    [m] = failures(pinning.pin_checks(observed(), exact, None))
    assert m.observed == "no counters in /proc/vmstat"
