"""Judging removal observations, ndctl's status as errno, the removal table."""

from pathlib import Path

from harness import expectations, removal
from harness.checks import failures
from harness.ssh import CommandResult

ROOT = Path(__file__).resolve().parents[2]
TABLE = ROOT / "testcases" / "expectations" / "remove.yaml"


def result(status, stderr=""):
    return CommandResult("ndctl disable-namespace namespace0.0", status, "", stderr, 0.1)


def test_ndctl_status_is_a_negative_errno():
    assert removal.command_result(result(0)) == {"ok": True, "status": 0}
    busy = removal.command_result(result(240, "namespace0.0 is active"))
    assert busy["errno"] == "EBUSY" and not busy["ok"]
    echo = removal.command_result(result(1, "sh: echo: write error: Device or resource busy"))
    assert echo["errno"] == "EBUSY"


def obs(**kw):
    base = {"command": {"ok": False, "status": 240, "errno": "EBUSY"},
            "state_before": "fsdax enabled", "state_after": "fsdax enabled",
            "touched": {"event": "touched", "sigbus": False}, "data_intact": True,
            "action_s": 0.4}
    base.update(kw)
    return base


def test_refused_removal_matches_and_each_difference_is_caught():
    table = expectations.load(TABLE, removal.VOCABULARY)
    expect = table.lookup("fsdax-ext4", "mapped-disable").values
    assert failures(removal.removal_checks(obs(), expect)) == []
    done = failures(removal.removal_checks(obs(command={"ok": True, "status": 0},
                                     state_after="fsdax disabled"), expect))
    assert [m.name for m in done] == ["removal", "namespace after the removal"]
    lost = failures(removal.removal_checks(obs(data_intact=False,
                                     touched={"sigbus": True, "si_code": "BUS_ADRERR"}), expect))
    assert [m.name for m in lost] == ["the old mapping", "data"]
    silent = failures(removal.removal_checks(obs(touched=None), expect))
    assert [m.name for m in silent] == ["the old mapping"] and "no answer" in str(silent[0])


def test_revocation_expected_for_devdax():
    table = expectations.load(TABLE, removal.VOCABULARY)
    expect = table.lookup("devdax-2M", "mapped-disable").values
    revoked = obs(command={"ok": True, "status": 0}, state_after="devdax disabled",
                  touched={"sigbus": True, "si_code": "BUS_ADRERR", "pass": "read",
                           "read_sigbus": True, "read_pages_ok": 0})
    revoked.pop("data_intact")
    assert failures(removal.removal_checks(revoked, expect)) == []
    still = dict(revoked, touched={"sigbus": False, "read_sigbus": False})
    assert [m.name for m in failures(removal.removal_checks(still, expect))] == [
        "the old mapping", "reading the old mapping"]
    assert "SIGBUS BUS_ADRERR on read" in removal.describe_removal(revoked)
    old_workload = dict(revoked, touched={"sigbus": True, "si_code": "BUS_ADRERR"})
    assert "older nvh-pin" in str(failures(removal.removal_checks(old_workload, expect))[0])


def test_fsdax_unbind_reads_stale_and_faults_on_write():
    """6.1: the writeback in del_gendisk() write-protects the mapping; reads go on."""
    table = expectations.load(TABLE, removal.VOCABULARY)
    expect = table.lookup("fsdax-xfs", "mapped-unbind", "6.1.0-56-amd64").values
    stale = {"command": {"ok": True, "status": 0},
             "touched": {"sigbus": True, "si_code": "BUS_ADRERR", "pass": "write",
                         "read_sigbus": False, "read_pages_ok": 512,
                         "read_pages_as_written": 512, "pages": 512},
             "umount": {"ok": True, "status": 0}}
    assert failures(removal.removal_checks(stale, expect)) == []
    assert "reads ok (512 of 512 pages as written before), SIGBUS BUS_ADRERR on write" in \
        removal.describe_removal(stale)
    other = dict(stale, touched={**stale["touched"], "read_pages_as_written": 3})
    assert [str(m) for m in failures(removal.removal_checks(other, expect))] == [
        "reading the old mapping: expected every page still reads the bytes stored before, "
        "observed readable"]
    # readable is satisfied by old data too
    assert failures(removal.removal_checks(stale, dict(expect, read_after="readable"))) == []
    zapped = dict(stale, touched={**stale["touched"], "pass": "read", "read_sigbus": True})
    assert [m.name for m in failures(removal.removal_checks(zapped, expect))] == [
        "reading the old mapping"]


def test_inflight_io_corruption_and_hang():
    expect = {"command": "ok", "io": "full_or_error"}
    ok = {"command": {"ok": True}, "io": {"full": False, "corrupt": False, "detail": "EIO"}}
    assert failures(removal.removal_checks(ok, expect)) == []
    bad = dict(ok, io={"full": True, "corrupt": True, "detail": "mismatch at 4096"})
    assert [m.name for m in failures(removal.removal_checks(bad, expect))] == ["in-flight O_DIRECT"]
    hung = dict(ok, hung=True, action_s=90)
    assert failures(removal.removal_checks(hung, expect))[0].name == "removal"


def test_action_commands():
    assert removal.action_command("unbind", bound="pfn0.1") == \
        "echo pfn0.1 > /sys/bus/nd/drivers/nd_pmem/unbind"
    assert removal.action_command("destroy") == "ndctl destroy-namespace -f namespace0.0"


# -- issue 14 item 2: a SIGSEGV is not an intact mapping ----------------------------------

def test_sigsegv_on_touch_is_neither_intact_nor_sigbus():
    """nvh-pin catches SIGSEGV too and reports sigbus false with signal SIGSEGV; the old
    judging read that as 'intact' (a refused fsdax removal would have passed)."""
    table = expectations.load(TABLE, removal.VOCABULARY)
    segv = {"event": "touched", "sigbus": False, "signal": "SIGSEGV", "si_code": "SEGV_MAPERR",
            "pass": "write", "read_sigbus": False, "read_pages_ok": 512, "pages": 512}
    refused = table.lookup("fsdax-ext4", "mapped-disable").values
    [m] = failures(removal.removal_checks(obs(touched=segv), refused))
    assert m.name == "the old mapping" and m.observed == "sigsegv"
    revoked = table.lookup("devdax-2M", "mapped-disable").values
    segv_on_read = dict(segv, pass_="read")
    segv_on_read.update({"pass": "read", "read_pages_ok": 0})
    names = [m.name for m in failures(removal.removal_checks(
        obs(command={"ok": True, "status": 0}, state_after="devdax disabled",
            touched=segv_on_read), revoked))]
    assert names == ["the old mapping", "reading the old mapping"]
    assert "SIGSEGV SEGV_MAPERR on read" in removal.describe_removal(obs(touched=segv_on_read))


def test_every_comparison_is_a_check_with_its_key():
    table = expectations.load(TABLE, removal.VOCABULARY)
    expect = table.lookup("fsdax-ext4", "mapped-disable").values
    checks = removal.removal_checks(obs(), expect)
    assert all(c.ok for c in checks)
    assert {c.key for c in checks} == {"command", "namespace_unchanged", "mapping_after",
                                       "data_intact"}


# -- issue 14 item 4: umount after an unbind is judged ------------------------------------

def test_umount_after_unbind_is_judged():
    table = expectations.load(TABLE, removal.VOCABULARY)
    expect = table.lookup("fsdax-xfs", "mapped-unbind").values
    assert expect["umount"] == "ok"
    unbound = {"command": {"ok": True, "status": 0}, "action_s": 0.2,
               "touched": {"sigbus": True, "signal": "SIGBUS", "si_code": "BUS_ADRERR",
                           "pass": "write", "read_sigbus": False, "read_pages_ok": 512,
                           "read_pages_as_written": 512, "pages": 512},
               "umount": {"ok": True, "status": 0}}
    assert failures(removal.removal_checks(unbound, expect)) == []
    killed = dict(unbound, umount={"ok": False, "status": 137, "errno": None,
                                   "stderr": "Killed"})
    [m] = failures(removal.removal_checks(killed, expect))
    assert m.name == "umount" and m.observed == "status 137: Killed"


# -- issue 14 item 3: "in flight" is a precondition, checked -------------------------------

def test_removal_not_during_the_io_is_a_precondition_error():
    import pytest

    from harness.errors import PreconditionNotMet
    during = {"in_flight": {"before_removal": True, "after_removal": True}, "action_s": 0.3}
    removal.require_in_flight(during, 4)  # nothing raised
    for seen, words in (({"before_removal": False, "after_removal": True}, "not seen in flight"),
                        ({"before_removal": True, "after_removal": False}, "had finished"),
                        (None, "not seen in flight")):
        with pytest.raises(PreconditionNotMet, match=words):
            removal.require_in_flight({"in_flight": seen, "action_s": 5.1}, 4)


def test_inflight_result_tells_full_error_and_corrupt():
    ok = CommandResult("nvh-odirect", 0, '{"size": 4096, "transfer": {"ret": 4096}, '
                                         '"compare": {"mismatch_offset": -1}}', "", 4.1)
    assert removal.inflight_result(ok, "nvh-odirect")["full"]
    bad = CommandResult("nvh-odirect", 0, '{"size": 4096, "transfer": {"ret": 4096}, '
                                          '"compare": {"mismatch_offset": 12}}', "", 4.1)
    assert removal.inflight_result(bad, "nvh-odirect")["corrupt"]
    assert removal.inflight_result(None, "x") == {"full": False,
                                                  "detail": "the O_DIRECT never finished"}


def test_an_expected_key_the_test_never_observed_fails():
    """remove.yaml once promised mapping_after and data_intact for the in-flight cases,
    whose test has no mapping holder: written down, never compared."""
    checks = removal.removal_checks({"command": {"ok": True, "status": 0}},
                                    {"command": "ok", "mapping_after": "sigbus"})
    [missing] = [c for c in checks if not c.ok]
    assert missing.name == "mapping_after (remove.yaml)"
    assert missing.observed == "not observed by this test"


def test_a_guest_that_died_during_the_action_observed_neither_its_result_nor_the_state():
    """Seen on the debug kernel: the panic came while ndctl was still running. Nothing
    was returned, so neither 'refused' nor 'changed' may be claimed."""
    table = expectations.load(TABLE, removal.VOCABULARY)
    expect = table.lookup("devdax-2M", "inflight-disable").values
    obs = {"state_before": "devdax enabled", "state_after": None}
    failed = failures(removal.removal_checks(obs, expect))
    assert {c.name: c.observed for c in failed} == {
        "command (remove.yaml)": "not observed by this test",
        "namespace_unchanged (remove.yaml)": "not observed by this test",
        "io (remove.yaml)": "not observed by this test"}
