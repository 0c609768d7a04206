"""End to end: `--jobs 2` (two guests at once, one results directory) and `--shard K/N`
runs joined with `merge` cover the same tests as one plain run."""

import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NVH = [sys.executable, "-m", "harness.cli"]

pytestmark = pytest.mark.e2e

# Six quick O_DIRECT cells (4 KiB transfers) in three buffer modes: each guest gets a few.
SUBSET = "test_odirect and 4K and not unaligned and (fsdax-ext4-mem or devdax-2M-mem or anon)"


def selected_ids() -> set[str]:
    """What -k SUBSET selects, from pytest's own collection (boots nothing)."""
    out = subprocess.run([sys.executable, "-m", "pytest", "testcases", "--collect-only", "-q",
                          "-p", "no:cacheprovider", "-o", "testpaths=testcases", "-k", SUBSET],
                         cwd=ROOT, capture_output=True, text=True, check=True).stdout
    return {line for line in out.splitlines() if "::" in line}


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*NVH, *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=1200)


def summary(results: Path) -> dict:
    return json.loads((results / "summary.json").read_text())


def test_two_jobs_write_one_results_directory(tmp_path, no_new_qemu):
    expected = selected_ids()
    assert len(expected) == 6, expected
    results = tmp_path / "jobs2"
    proc = run("run", "-k", SUBSET, "--jobs", "2", "--results", str(results))
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-4000:]
    assert proc.stdout.count(f"results: {results}") == 1
    assert output.count("nvdimm-harness: results in") == 1
    s = summary(results)
    assert {t["id"] for t in s["tests"]} == expected
    assert {t["outcome"] for t in s["tests"]} == {"passed"}, s["tests"]
    assert s["merge"]["kind"] == "jobs"
    assert sorted(src["label"] for src in s["merge"]["sources"]) == ["gw0", "gw1"]
    assert s["boot"]["boots"] == 2  # one guest per worker
    assert not (results / "workers").exists()
    for t in s["tests"]:
        for a in t["artifacts"]:
            assert (results / a).is_file(), a
    cases = ET.parse(results / "junit.xml").getroot().iter("testcase")
    assert {c.get("name") for c in cases} == {i.split("::")[-1] for i in expected}
    console = (results / "console.log").read_text(errors="replace")
    assert "===== nvdimm-harness merge: gw0" in console
    assert "===== nvdimm-harness merge: gw1" in console
    for id_ in expected:  # each test's kernel-log marker is in the one console
        assert f"begin {id_}" in console


def test_shards_merged_equal_the_unsharded_selection(tmp_path, no_new_qemu):
    expected = selected_ids()
    shards = []
    for k in (1, 2):
        results = tmp_path / f"shard-{k}"
        proc = run("run", "-k", SUBSET, "--shard", f"{k}/2", "--results", str(results))
        assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
        s = summary(results)
        assert s["shard"] == f"{k}/2" and len(s["tests"]) == 3
        shards.append(results)
    merged = tmp_path / "merged"
    proc = run("merge", *map(str, shards), "--out", str(merged))
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    s = summary(merged)
    assert {t["id"] for t in s["tests"]} == expected
    assert s["shard"] == "" and s["infra_error"] == ""
    assert len(s["merge"]["sources"]) == 2
    for t in s["tests"]:
        for a in t["artifacts"]:
            assert (merged / a).is_file(), a
