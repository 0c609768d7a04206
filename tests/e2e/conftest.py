"""Shared by the end-to-end tests: no QEMU of ours may outlive a test.

"Ours" is exact even on a machine where other people's guests start and stop meanwhile:
`no_new_qemu` puts a tag in the environment that every process the test starts inherits,
QEMU included, and only QEMUs carrying this test's tag count.
"""

import os
import subprocess
import time
import uuid
from pathlib import Path

import pytest

OUR_QEMU = "nvdimm-harness,process=nvh-"
TAG_VAR = "NVH_E2E_TAG"


def _environ(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return b""


def our_qemus() -> set[int]:
    out = subprocess.run(["pgrep", "-f", OUR_QEMU], capture_output=True, text=True).stdout
    pids = {int(p) for p in out.split()}
    tag = os.environ.get(TAG_VAR)
    if tag:
        mark = f"{TAG_VAR}={tag}".encode()
        pids = {p for p in pids if mark in _environ(p).split(b"\0")}
    return pids


def processes_under(path: Path) -> list[str]:
    """Live processes whose command line or working directory is under `path` (a build's
    make and gcc, mmdebstrap's apt and dpkg), as 'pid command' lines."""
    needle = str(path)
    found = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit() or int(d.name) == os.getpid():
            continue
        try:
            stat = (d / "stat").read_text()
            if stat.rsplit(")", 1)[1].split()[0] == "Z":
                continue
            cmd = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            try:
                cwd = os.readlink(d / "cwd")
            except OSError:
                cwd = ""
        except OSError:
            continue
        if needle in cmd or cwd.startswith(needle):
            found.append(f"{d.name} {cmd[:200]}")
    return found


@pytest.fixture
def no_new_qemu(monkeypatch):
    monkeypatch.setenv(TAG_VAR, uuid.uuid4().hex)
    before = our_qemus()
    yield
    deadline = time.monotonic() + 10
    while our_qemus() - before and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not our_qemus() - before, "a QEMU of ours outlived the run"


@pytest.fixture
def list_our_qemus():
    """The pids of QEMUs started by nvdimm-harness (by this test, with no_new_qemu), as a
    function to poll."""
    return our_qemus


@pytest.fixture
def list_processes_under():
    """processes_under(path) as a function to call."""
    return processes_under


ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def kernel_tree() -> Path:
    """The kernel tree the kernel-building e2e tests build: NVH_TEST_KERNEL_TREE, else
    Debian's linux-source-6.1 fetched and unpacked once."""
    tree = os.environ.get("NVH_TEST_KERNEL_TREE") or subprocess.run(
        [str(ROOT / "tools" / "fetch-linux-source.sh")], capture_output=True, text=True,
        check=True).stdout.strip()
    return Path(tree)
