"""Joining results directories: CI shards (`nvdimm-harness merge`) and --jobs workers."""

import json
import xml.etree.ElementTree as ET

import pytest

from harness.cli import main
from harness.errors import UsageError
from harness.merge import load_source, load_sources, merge_dirs, merge_summaries
from harness.results import RunSummary, TestRecord, load_summary, result_dir_name


def summary_dict(run_id, tests, shard="", release="6.1.0-56-amd64", duration=100.0,
                 infra_error="", run_findings=(), qemu="7.2.22", config_hash=None):
    return {
        "run_id": run_id, "started": f"2026-11-22T00:00:0{run_id[-1]}+0000",
        "duration_s": duration, "host": {"hostname": f"runner-{run_id}"},
        "qemu": {"version": qemu, "accel": "tcg"},
        "kernel": {"release": release, "source": "distro", "patches": [],
                   "config_hash": config_hash},
        "profile": {"name": "default"}, "boot": {"boots": 1, "first_boot_s": 12.0},
        "tests": [{"id": i, "outcome": o, "duration_s": 1.0,
                   "artifacts": [f"tests/{result_dir_name(i)}/dmesg.txt"]} for i, o in tests],
        "run_findings": list(run_findings), "infra_error": infra_error, "shard": shard,
        "verdict": "ignored", "counts": {},
    }


def results_dir(tmp_path, name, data, console="boot\nlog\n"):
    d = tmp_path / name
    d.mkdir()
    (d / "summary.json").write_text(json.dumps(data))
    if console is not None:
        (d / "console.log").write_text(console)
    for t in data["tests"]:
        art = d / t["artifacts"][0]
        art.parent.mkdir(parents=True)
        art.write_text(f"dmesg of {t['id']}\n")
    return d


T = "testcases/test_odirect.py::test_odirect"


def two_shards(tmp_path, **second):
    a = results_dir(tmp_path, "shard-1", summary_dict("run1", [(f"{T}[a]", "passed"),
                                                               (f"{T}[c]", "passed")],
                                                      shard="1/2", duration=300.0))
    b = results_dir(tmp_path, "shard-2", summary_dict("run2", [(f"{T}[b]", "failed")],
                                                      shard="2/2", duration=200.0, **second),
                    console="no newline at the end")
    return a, b


def test_shards_merge_into_one_run(tmp_path):
    a, b = two_shards(tmp_path)
    out = tmp_path / "merged"
    run, warnings = merge_dirs(load_sources([a, b]), out, "merged-id")
    assert warnings == []
    assert [t.id for t in run.tests] == [f"{T}[a]", f"{T}[c]", f"{T}[b]"]
    assert run.shard == ""  # every shard is here: the whole suite
    assert run.duration_s == 300.0 and run.merge["duration_sum_s"] == 500.0
    assert run.started == "2026-11-22T00:00:01+0000"
    assert run.boot["boots"] == 2
    assert [s["label"] for s in run.merge["sources"]] == ["shard-1", "shard-2"]
    assert run.verdict() == "failed" and run.exit_code() == 1
    # Everything a report links to is there.
    on_disk = load_summary(out)
    assert [t.id for t in on_disk.tests] == [t.id for t in run.tests]
    for t in on_disk.tests:
        assert (out / t.artifacts[0]).read_text() == f"dmesg of {t.id}\n"
    for name in ("junit.xml", "report.html", "summary.md"):
        assert (out / name).stat().st_size > 0
    assert len(list(ET.parse(out / "junit.xml").getroot().iter("testcase"))) == 3
    console = (out / "console.log").read_text().splitlines()
    assert console[0].startswith("===== nvdimm-harness merge: shard-1 (run run1, shard 1/2)")
    assert console[1:3] == ["boot", "log"]
    assert console[3].startswith("===== nvdimm-harness merge: shard-2")
    assert console[4] == "no newline at the end"
    # Inputs are copied, not moved.
    assert (a / "tests").is_dir() and (b / "summary.json").is_file()


def test_duplicate_test_ids_are_an_error_naming_them(tmp_path):
    a = results_dir(tmp_path, "a", summary_dict("run1", [(f"{T}[a]", "passed")], shard="1/2"))
    b = results_dir(tmp_path, "b", summary_dict("run2", [(f"{T}[a]", "passed")], shard="1/2"))
    out = tmp_path / "merged"
    with pytest.raises(UsageError, match=r"1 test id\(s\) in more than one input.*\[a\] \(a, b\)"):
        merge_dirs(load_sources([a, b]), out, "x")
    assert not out.exists()  # nothing half-written


def test_differing_kernels_are_kept_with_a_warning(tmp_path):
    a, b = two_shards(tmp_path, release="6.1.0-57-amd64", qemu="8.2.0")
    run, warnings = merge_dirs(load_sources([a, b]), tmp_path / "m", "x")
    assert any("kernel release: 6.1.0-56-amd64 (shard-1); 6.1.0-57-amd64 (shard-2)" in w
               for w in warnings), warnings
    assert any("QEMU version" in w for w in warnings)
    assert run.merge["warnings"] == warnings
    assert run.kernel["release"] == "6.1.0-56-amd64"  # the first input's, the others in sources
    assert run.merge["sources"][1]["kernel_release"] == "6.1.0-57-amd64"
    assert "warning:** inputs differ in kernel release" in (tmp_path / "m" / "summary.md") \
        .read_text()


def test_config_hash_difference_is_a_warning_but_missing_values_are_not():
    a = RunSummary.from_json(summary_dict("r1", [], config_hash="aaa"))
    b = RunSummary.from_json(summary_dict("r2", [], config_hash="bbb"))
    c = RunSummary.from_json(summary_dict("r3", [], config_hash=None))
    _, warnings = merge_summaries([("a", a), ("b", b)], "x")
    assert warnings == ["inputs differ in kernel config hash: aaa (a); bbb (b)"]
    _, warnings = merge_summaries([("a", a), ("c", c)], "x")
    assert warnings == []


def test_run_findings_keep_their_source_and_infra_errors_survive():
    finding = {"kind": "warning", "title": "WARNING in foo", "line": 3}
    a = RunSummary.from_json(summary_dict("r1", [(f"{T}[a]", "passed")], shard="1/2",
                                          run_findings=[finding]))
    b = RunSummary.from_json(summary_dict("r2", [], shard="2/2",
                                          infra_error="boot failed: kernel panic"))
    run, _ = merge_summaries([("s1", a), ("s2", b)], "x")
    assert run.run_findings == [{**finding, "source": "s1"}]
    assert run.infra_error == "[s2] boot failed: kernel panic"
    assert run.exit_code() == 3


def test_a_missing_shard_makes_the_merged_run_incomplete():
    runs = [(f"s{k}", RunSummary.from_json(summary_dict(f"r{k}", [(f"{T}[{k}]", "passed")],
                                                        shard=f"{k}/3")))
            for k in (1, 3)]
    run, _ = merge_summaries(runs, "x")
    assert "shard(s) 2/3 not among the inputs" in run.infra_error
    assert run.shard == "1/3,3/3" and run.exit_code() == 3


def test_mixed_shard_settings_are_a_warning():
    a = RunSummary.from_json(summary_dict("r1", [(f"{T}[a]", "passed")], shard="1/2"))
    b = RunSummary.from_json(summary_dict("r2", [(f"{T}[b]", "passed")], shard=""))
    run, warnings = merge_summaries([("a", a), ("b", b)], "x")
    assert warnings == ["inputs mix shard settings: a=1/2, b=unsharded"]
    assert run.exit_code() == 0


def test_workers_of_one_run_keep_its_shard():
    runs = [(f"gw{i}", RunSummary.from_json(summary_dict(f"r{i}", [(f"{T}[{i}]", "passed")],
                                                         shard="2/4"))) for i in range(2)]
    run, warnings = merge_summaries(runs, "x", kind="jobs")
    assert run.shard == "2/4" and warnings == [] and run.merge["kind"] == "jobs"


def test_move_mode_moves_the_test_directories(tmp_path):
    a, b = two_shards(tmp_path)
    out = tmp_path / "run"
    merge_dirs([load_source(a, "gw0"), load_source(b, "gw1")], out, "x", move=True)
    assert not any((a / "tests").iterdir())
    assert (out / "tests" / result_dir_name(f"{T}[b]") / "dmesg.txt").is_file()


def test_same_directory_twice_is_refused(tmp_path):
    a, _ = two_shards(tmp_path)
    with pytest.raises(UsageError, match="given twice"):
        load_sources([a, tmp_path / "." / "shard-1"])


def test_round_trip_keeps_records(tmp_path):
    a, b = two_shards(tmp_path)
    run, _ = merge_dirs(load_sources([a, b]), tmp_path / "m", "x")
    again = RunSummary.from_json(json.loads((tmp_path / "m" / "summary.json").read_text()))
    assert again.merge == run.merge and again.shard == ""
    assert isinstance(again.tests[0], TestRecord)


# -- the command ------------------------------------------------------------------------------
def test_merge_command_exit_code_is_the_verdict(tmp_path, capsys):
    a, b = two_shards(tmp_path, release="6.1.0-57-amd64")
    status = main(["merge", str(a), str(b), "--out", str(tmp_path / "m")])
    out, err = capsys.readouterr()
    assert status == 1  # shard 2 has a failed test
    assert f"results: {tmp_path / 'm'}" in out
    assert "nvdimm-harness: warning: inputs differ in kernel release" in err


def test_merge_command_passing_shards_exit_0(tmp_path, capsys):
    a = results_dir(tmp_path, "s1", summary_dict("run1", [(f"{T}[a]", "passed")], shard="1/2"))
    b = results_dir(tmp_path, "s2", summary_dict("run2", [(f"{T}[b]", "skipped")], shard="2/2"))
    assert main(["merge", str(a), str(b), "--out", str(tmp_path / "m")]) == 0


@pytest.mark.parametrize("make_args, text", [
    (lambda a, b, t: [str(a), str(t / "nope")], "no summary.json (not a results directory)"),
    (lambda a, b, t: [str(a), str(b), "--out", str(a)], "exists and is not empty"),
    (lambda a, b, t: [str(a), str(a)], "given twice"),
])
def test_merge_command_bad_input_is_one_line_exit_2(tmp_path, capsys, make_args, text):
    a, b = two_shards(tmp_path)
    status = main(["merge", *make_args(a, b, tmp_path)])
    err = capsys.readouterr().err
    assert status == 2 and text in err and err.count("\n") == 1, err


def test_merge_command_duplicates_exit_2(tmp_path, capsys):
    a = results_dir(tmp_path, "a", summary_dict("run1", [(f"{T}[a]", "passed")]))
    b = results_dir(tmp_path, "b", summary_dict("run2", [(f"{T}[a]", "passed")]))
    status = main(["merge", str(a), str(b), "--out", str(tmp_path / "m")])
    err = capsys.readouterr().err
    assert status == 2 and f"{T}[a] (a, b)" in err and err.count("\n") == 1
