"""tracefs parsing and the huge-page check, on trace lines captured in a Debian 6.1 guest.

tests/data/trace/ (each the raw /sys/kernel/tracing/trace of one nvh-odirect run on a
fresh fsdax namespace):
  ext4-write-prefaulted-64M-nopage.txt      mkfs.ext4 -E stride=512,...: 32 PMD faults, NOPAGE
  xfs-write-prefaulted-8M-nopage.txt        mkfs.xfs -d su=2m,sw=1, dax_pmd_fault + _done
  xfs-default-read-untouched-4M-fallback.txt  plain mkfs.xfs -m reflink=0: FALLBACK
  ext4-write-untouched-4K.txt               1 PMD FALLBACK, then 1 PTE fault
"""

from pathlib import Path

import pytest

from harness import trace
from harness.checks import failures
from harness.ssh import CommandResult

DATA = Path(__file__).resolve().parent.parent / "data" / "trace"
EVENTS = ("fs_dax:dax_pmd_fault_done", "fs_dax:dax_pte_fault_done")


def load(name, events=EVENTS):
    return trace.TraceCapture.from_text((DATA / name).read_text(), events)


def test_pmd_nopage_trace_parses_into_records_and_counts():
    cap = load("ext4-write-prefaulted-64M-nopage.txt")
    assert len(cap.records) == 32
    first = cap.records[0]
    assert first.event == "fs_dax:dax_pmd_fault_done"
    assert first.task == "nvh-odirect" and first.cpu == 0
    assert first.result == "NOPAGE" and first.result_flags == ["NOPAGE"]
    assert first.fields["sharing"] == "shared"
    assert first.fields["fault_flags"] == "WRITE|ALLOW_RETRY|KILLABLE|USER|INTERRUPTIBLE"
    assert first.fields["pgoff"] == "0x0" and first.fields["max_pgoff"] == "0x4000"
    assert int(cap.records[1].fields["pgoff"], 16) == 0x200   # the next 2 MiB
    assert cap.counts() == {"fs_dax:dax_pmd_fault_done": 32,
                            "fs_dax:dax_pmd_fault_done:NOPAGE": 32,
                            "fs_dax:dax_pte_fault_done": 0}
    assert cap.lost == 0


def test_fault_start_events_have_no_result():
    cap = load("xfs-write-prefaulted-8M-nopage.txt",
               ("fs_dax:dax_pmd_fault", "fs_dax:dax_pmd_fault_done"))
    counts = cap.counts()
    assert counts["fs_dax:dax_pmd_fault"] == 4
    assert counts["fs_dax:dax_pmd_fault_done"] == 4
    assert counts["fs_dax:dax_pmd_fault_done:NOPAGE"] == 4
    assert not any(k.startswith("fs_dax:dax_pmd_fault:") for k in counts)


def test_pte_fault_lines_parse():
    cap = load("ext4-write-untouched-4K.txt")
    pte = [r for r in cap.records if r.event == "fs_dax:dax_pte_fault_done"]
    assert len(pte) == 1
    assert pte[0].fields["pgoff"] == "0x0" and pte[0].result == "NOPAGE"
    assert "vm_start" not in pte[0].fields
    assert cap.counts()["fs_dax:dax_pmd_fault_done:FALLBACK"] == 1


def test_unknown_events_keep_their_bare_name_and_key_value_fields():
    line = ("  kworker/u4:1-42      [001] d..1.   12.000001: sched_foo: comm=bar pid=7 "
            "prio=120\n")
    [r] = trace.parse_trace(line)
    assert r.task == "kworker/u4:1" and r.pid == 42
    assert r.event == "sched_foo" and r.fields == {"comm": "bar", "pid": "7", "prio": "120"}


def test_task_names_with_spaces_dashes_and_empty_fault_flags():
    line = ("   my prog-x-77    [000] .....   5.5: dax_pmd_fault_done: dev 259:1 ino 0xc "
            "shared  address 0x7f0000000000 vm_start 0x7f0000000000 vm_end 0x7f0000200000 "
            "pgoff 0x0 max_pgoff 0x200 NOPAGE|MAJOR")
    [r] = trace.parse_trace(line, EVENTS)
    assert r.task == "my prog-x" and r.pid == 77
    assert r.fields["fault_flags"] == "" and r.result_flags == ["NOPAGE", "MAJOR"]
    assert trace.count_events([r]) == {"fs_dax:dax_pmd_fault_done": 1,
                                       "fs_dax:dax_pmd_fault_done:NOPAGE": 1,
                                       "fs_dax:dax_pmd_fault_done:MAJOR": 1}


def test_a_full_ring_buffer_is_reported_as_lost_events():
    text = ("# tracer: nop\n#\n# entries-in-buffer/entries-written: 24001/32832   #P:2\n"
            + (DATA / "ext4-write-prefaulted-64M-nopage.txt").read_text().split("\n", 12)[-1])
    cap = trace.TraceCapture.from_text(text, EVENTS)
    assert cap.lost == 8831
    assert cap.counts()[trace.LOST_KEY] == 8831


# -- the huge-page check: a missing PMD fault is a failure with a clear message ------------

HUGE = {"pmd_nopage": ">=32", "pmd_fallback": 0}


def test_pmd_faults_that_map_pmds_pass():
    assert failures(trace.pmd_checks(load("ext4-write-prefaulted-64M-nopage.txt").counts(),
                                  HUGE)) == []


def test_fallback_to_pte_faults_fails_with_counts_and_an_excerpt():
    cap = load("xfs-default-read-untouched-4M-fallback.txt",
               ("fs_dax:dax_pmd_fault", "fs_dax:dax_pmd_fault_done"))
    mismatches = failures(trace.pmd_checks(cap.counts(), {"pmd_nopage": ">0", "pmd_fallback": 0}))
    assert [str(m) for m in mismatches] == [
        "fs_dax:dax_pmd_fault_done with result NOPAGE: expected >0, observed 0 "
        "(2 PMD faults: NOPAGE 0, FALLBACK 2)",
        "fs_dax:dax_pmd_fault_done with result FALLBACK: expected 0, observed 2 "
        "(2 PMD faults: NOPAGE 0, FALLBACK 2)",
    ]
    excerpt = cap.excerpt("fs_dax:dax_pmd_fault_done", exclude_result="NOPAGE")
    assert excerpt.count("\n") == 1 and excerpt.rstrip().endswith("FALLBACK")
    assert "dax_pmd_fault_done: dev 259:1" in excerpt


def test_no_pmd_fault_at_all_is_a_failure_naming_the_pte_faults():
    counts = trace.TraceCapture.from_text(
        (DATA / "ext4-write-untouched-4K.txt").read_text().replace("dax_pmd_fault_done",
                                                                  "dax_pmd_other"),
        EVENTS).counts()
    [m] = failures(trace.pmd_checks(counts, HUGE))
    assert m.expected == ">=32"
    assert m.observed == "0 (0 PMD faults: NOPAGE 0, FALLBACK 0; 1 PTE faults)"


def test_cells_without_pmd_expectations_are_not_judged():
    assert failures(trace.pmd_checks({}, {"transfer": "full"})) == []


# -- capture(): the tracefs commands, and cleanup when the block fails ----------------------

class FakeGuest:
    def __init__(self, trace_text="", fail_on=None):
        self.commands = []
        self.trace_text = trace_text
        self.fail_on = fail_on

    def run(self, command, timeout_s=120):
        self.commands.append(command)
        out = ""
        if command.startswith("cat /sys/kernel/tracing/buffer_size_kb"):
            out = "1410\n"
        elif command == "cat /sys/kernel/tracing/trace":
            out = self.trace_text
        status = 1 if self.fail_on and self.fail_on in command else 0
        return CommandResult(command, status, out, "", 0.01)

    def succeed(self, command, timeout_s=120):
        result = self.run(command, timeout_s)
        assert result.status == 0
        return result.stdout


def test_capture_enables_clears_and_collects():
    text = (DATA / "ext4-write-prefaulted-64M-nopage.txt").read_text()
    guest = FakeGuest(text)
    with trace.capture(guest, ["fs_dax:dax_pmd_fault_done", "fs_dax:*"]) as cap:
        assert not cap.collected
    setup = guest.commands[1]
    assert "echo 0 > /sys/kernel/tracing/tracing_on" in setup
    assert "echo 8192 > /sys/kernel/tracing/buffer_size_kb" in setup
    assert "echo > /sys/kernel/tracing/trace" in setup
    assert "echo 1 > /sys/kernel/tracing/events/fs_dax/dax_pmd_fault_done/enable" in setup
    assert "echo 1 > /sys/kernel/tracing/events/fs_dax/enable" in setup
    assert setup.endswith("echo 1 > /sys/kernel/tracing/tracing_on")
    assert cap.collected and cap.counts()["fs_dax:dax_pmd_fault_done:NOPAGE"] == 32
    assert "echo 1410 > /sys/kernel/tracing/buffer_size_kb" in guest.commands[-1]


def test_capture_disables_events_when_the_block_fails():
    guest = FakeGuest("")
    with pytest.raises(RuntimeError), trace.capture(guest, ["fs_dax:dax_pmd_fault_done"]):
        raise RuntimeError("workload blew up")
    stop = next(c for c in guest.commands[2:] if c.startswith("echo 0 > "))
    assert "echo 0 > /sys/kernel/tracing/events/fs_dax/dax_pmd_fault_done/enable" in stop


@pytest.mark.parametrize("bad", ["fs_dax", "fs_dax:x; reboot", "../x:y", "fs dax:y"])
def test_event_names_are_validated(bad):
    with pytest.raises(ValueError, match="bad trace event"):
        trace.validate_event(bad)
