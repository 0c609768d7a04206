"""`nvdimm-harness matrix`: the same tests on Debian's 6.1 (the image's kernel) and trixie's
6.12 (fetched as a package by the harness), one report with both as columns, rendered by
headless Chromium."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from browser import chromium, render

ROOT = Path(__file__).resolve().parents[2]
NVH = [sys.executable, "-m", "harness.cli"]
# One O_DIRECT cell whose devdax fault line changed format in v6.6, one KVM cell.
SELECTION = ("test_odirect[devdax-2M-mem-read-untouched-2M] or "
             "test_kvm_access[devdax-2M-mem-guest-writes]")

pytestmark = pytest.mark.e2e


def test_matrix_of_61_and_612(tmp_path):
    out = tmp_path / "matrix"
    proc = subprocess.run([*NVH, "matrix", "--kernels", "default,trixie", "-k", SELECTION,
                           "--results", str(out)], cwd=ROOT, capture_output=True, text=True,
                          timeout=1800)
    assert proc.returncode in (0, 1), proc.stderr[-3000:]
    data = json.loads((out / "matrix.json").read_text())
    releases = [k["release"] for k in data["kernels"]]
    assert releases[0].startswith("6.1.") and releases[1].startswith("6.12."), releases
    assert data["kernels"][1]["source"] == "package"
    assert data["kernels"][1]["package"].startswith("linux-image-6.12")
    ids = [t["id"] for t in data["tests"]]
    assert len(ids) == 2 and all(len(t["outcomes"]) == 2 for t in data["tests"])
    # Each column is an ordinary results directory with its own summary.json.
    for label in ("default", "trixie"):
        summary = json.loads((out / label / "summary.json").read_text())
        assert {t["id"] for t in summary["tests"]} == set(ids)
    md = (out / "matrix.md").read_text()
    assert "| default | `6.1." in md and "| trixie | `6.12." in md

    profile = tmp_path / "chromium"
    dom = render(chromium(), out / "matrix.html", "--dump-dom", profile=profile).stdout
    assert "Kernel matrix" in dom and "id=\"all\"" in dom
    for release in releases:
        assert release in dom
    for test_id in ids:
        assert test_id in dom
    shot = tmp_path / "matrix.png"
    render(chromium(), out / "matrix.html", f"--screenshot={shot}", "--window-size=1400,900",
           profile=profile)
    assert shot.stat().st_size > 5000
