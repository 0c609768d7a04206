"""End to end: `nvdimm-harness run` boots a real guest (QEMU, Debian kernel, ndctl)."""

import json
import os
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NVH = [sys.executable, "-m", "harness.cli"]

pytestmark = pytest.mark.e2e


# One of each family from the default suite (the whole suite is `make run`, ~25 min under
# TCG): O_DIRECT into a DAX mapping, a long-term pin granted and one refused, a refused
# removal, and the removal under an rxe pin that oopses Debian's 6.1 (a known kernel bug:
# it must come out as known_failure, listed first, and not fail the run); a KVM guest on a
# devdax slot, the slot's device removed under a live VM, and QEMU booting on /dev/dax0.0.
SAMPLE = ("untouched_mapping or test_pin[devdax-2M-mem-rdma] or test_pin[fsdax-xfs-dev-rdma]"
          " or test_remove_busy_fsdax[disable-ext4] or test_remove_pinned_devdax[rdma]"
          " or test_kvm_access[devdax-2M-dev-guest-writes]"
          " or test_kvm_remove_mapped_devdax[disable] or test_kvm_qemu_boots_on_devdax")


def test_default_run_passes_and_writes_results(tmp_path, no_new_qemu):
    results = tmp_path / "results"
    proc = subprocess.run([*NVH, "run", "-k", SAMPLE, "--results", str(results)], cwd=ROOT,
                          capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert f"results: {results}" in proc.stdout
    summary = json.loads((results / "summary.json").read_text())
    assert summary["qemu"]["accel"] in ("tcg", "kvm")
    assert summary["kernel"]["source"] == "distro"
    assert summary["kernel"]["release"].startswith("6.1.0-")
    assert summary["kernel"]["release"].endswith("-amd64")
    outcomes = {t["id"].rsplit("::", 1)[-1]: t["outcome"] for t in summary["tests"]}
    assert len(outcomes) == 9, outcomes
    known = outcomes.pop("test_remove_pinned_devdax[rdma]")
    assert known == "known_failure", summary["tests"]
    assert set(outcomes.values()) == {"passed"}, outcomes
    bug = next(t for t in summary["tests"] if t["outcome"] == "known_failure")
    assert bug["known_issue"]["title"] == \
        "BUG: unable to handle kernel paging request in unpin_user_page_range_dirty_lock"
    # The known oops is the only deviation: every check the test made held, the namespace
    # works again included (issue 14: a known bug never hides another deviation).
    names = {c["name"]: c["ok"] for c in bug["checks"]}
    assert names.get("the old mapping") and names.get("namespace usable again"), bug["checks"]
    explained = {c["check"] for c in bug["known_issue"].get("consequences", [])}
    assert all(ok for name, ok in names.items() if name not in explained), bug["checks"]
    for test in summary["tests"]:
        assert test["checks"], f"{test['id']} recorded no checks"
        assert all(c["ok"] for c in test["checks"]) or test["outcome"] != "passed", test
    md = (results / "summary.md").read_text()
    assert "Known kernel bugs" in md and "unpin_user_page_range_dirty_lock" in md
    cases = list(ET.parse(results / "junit.xml").getroot().iter("testcase"))
    assert len(cases) == 9 and all(c.find("failure") is None and c.find("error") is None
                                   for c in cases)
    for name in ("report.html", "summary.md", "console.log"):
        assert (results / name).stat().st_size > 0
    for test in summary["tests"]:
        assert any(a.endswith("dmesg.txt") for a in test["artifacts"])
        for a in test["artifacts"]:
            assert (results / a).is_file()


def test_ctrl_c_mid_run_leaves_no_qemu(tmp_path, no_new_qemu, list_our_qemus):
    results = tmp_path / "results"
    proc = subprocess.Popen([*NVH, "run", "--results", str(results)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    # Interrupt once QEMU is up and booting: the most expensive moment to leak it.
    deadline = time.monotonic() + 600
    while not list_our_qemus() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.5)
    assert list_our_qemus(), "the run never started QEMU"
    time.sleep(3)
    os.killpg(proc.pid, signal.SIGINT)  # what the terminal does on Ctrl-C
    try:
        out, _ = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        pytest.fail("the run did not stop within 60 s of Ctrl-C")
    assert proc.returncode == 130, out[-2000:]
    summary = json.loads((results / "summary.json").read_text())
    assert "interrupted" in summary["infra_error"]
    assert (results / "console.log").stat().st_size > 0  # partial results are kept


def test_sigterm_to_boot_stops_the_guest_and_cleans_up(tmp_path, no_new_qemu):
    # A private TMPDIR for the guest's workdir: other runs on the machine come and go in /tmp.
    private_tmp = tmp_path / "tmp"
    private_tmp.mkdir()
    kept = tmp_path / "boot"
    proc = subprocess.Popen([*NVH, "boot", "--accel", "tcg", "--results", str(kept)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "TMPDIR": str(private_tmp)})
    lines = []
    for line in proc.stdout:  # wait until the guest is up and the ssh line is printed
        lines.append(line)
        if line.startswith("guest up"):
            break
    assert any(line.startswith("guest up") for line in lines), "".join(lines)[-2000:]
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 143, out[-2000:]
    assert not list(private_tmp.iterdir()), f"left behind: {list(private_tmp.iterdir())}"
    # The console outlives the guest (an oops met by hand is worth keeping).
    assert "nvh: guest ready" in (kept / "console.log").read_text(errors="replace")
    assert f"console log kept in {kept / 'console.log'}" in out


def test_a_corrupted_byte_fails_its_cell_with_the_offset(tmp_path, no_new_qemu):
    """The workloads' self-test hooks, end to end: one byte flipped in the guest by
    nvh-odirect (at bytes/2 of the observed side) and by nvh-pin's verification (at
    size/2) must fail the real cells, naming the byte."""
    results = tmp_path / "results"
    cells = "test_odirect[devdax-2M-mem-read-untouched-4K] or test_pin[anon-vmsplice]"
    proc = subprocess.run([*NVH, "run", "-k", cells, "--results", str(results)], cwd=ROOT,
                          capture_output=True, text=True, timeout=1800,
                          env={**os.environ, "NVH_ODIRECT_CORRUPT": "1",
                               "NVH_PIN_CORRUPT": "1"})
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-3000:]
    summary = json.loads((results / "summary.json").read_text())
    tests = {t["id"].rsplit("::", 1)[-1]: t for t in summary["tests"]}
    odirect = tests["test_odirect[devdax-2M-mem-read-untouched-4K]"]
    assert odirect["outcome"] == "failed"
    [bad] = [c for c in odirect["checks"] if not c["ok"]]
    assert bad["name"] == "compare" and "first at offset 2048" in bad["observed"], bad
    assert "first at offset 2048" in odirect["message"]
    pin = tests["test_pin[anon-vmsplice]"]
    assert pin["outcome"] == "failed"
    [bad] = [c for c in pin["checks"] if not c["ok"]]
    assert bad["name"] == "data through the pin" and "1 bytes differ" in bad["observed"], bad


def test_kvm_family_is_skipped_with_the_reason_when_the_cpu_hides_svm(tmp_path, no_new_qemu):
    """Without svm/vmx in the guest's CPU the KVM family cannot run: skipped, with the
    reason in the report, never silently passed or failed."""
    results = tmp_path / "results"
    profile = ROOT / "tests" / "data" / "profiles" / "no-nested-virt.yaml"
    proc = subprocess.run([*NVH, "run", "--profile", str(profile), "-k",
                           "test_kvm_access[anon-guest-writes] or test_kvm_qemu_boots_on_devdax",
                           "--results", str(results)], cwd=ROOT, capture_output=True, text=True,
                          timeout=1200)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    summary = json.loads((results / "summary.json").read_text())
    assert summary["profile"]["cpu"] == "max,-svm,-vmx"
    assert len(summary["tests"]) == 2
    for test in summary["tests"]:
        assert test["outcome"] == "skipped", test
        assert "no nested virtualization" in test["message"], test
    assert "no nested virtualization" in (results / "summary.md").read_text()
