"""Patch series parsing, patch failure messages and kernel-tree checks (no build)."""

import subprocess
from pathlib import Path

import pytest

from harness.errors import UsageError
from harness.kernel import check_tree, failing_hunk, parse_series, tree_identity

DEMO = Path(__file__).resolve().parent.parent / "data" / "patches" / \
    "0001-pmem-probe-marker.patch"


@pytest.fixture
def fake_tree(tmp_path):
    tree = tmp_path / "linux"
    (tree / "arch" / "x86").mkdir(parents=True)
    (tree / "Kconfig").write_text("mainmenu \"Linux\"\n")
    (tree / "Makefile").write_text("VERSION = 6\nPATCHLEVEL = 1\nSUBLEVEL = 0\n")
    return tree


def test_mbox_series_and_subject(fake_tree):
    series = parse_series(str(DEMO), fake_tree)
    assert series.kind == "mbox"
    assert series.subjects() == ["[PATCH] nvdimm/pmem: log a marker on probe "
                                 "(nvdimm-harness demo)"]


def test_directory_series_in_order(fake_tree, tmp_path):
    d = tmp_path / "series"
    d.mkdir()
    (d / "0002-b.patch").write_text(DEMO.read_text().replace("log a marker", "second"))
    (d / "0001-a.patch").write_text(DEMO.read_text())
    plain = "--- a/x\n+++ b/x\n@@ -1 +1 @@\n-a\n+b\n"
    (d / "0003-c.diff").write_text(plain)
    series = parse_series(str(d), fake_tree)
    assert [f.name for f in series.files] == ["0001-a.patch", "0002-b.patch", "0003-c.diff"]
    assert series.subjects()[1].endswith("second on probe (nvdimm-harness demo)")
    assert series.subjects()[2] == "0003-c.diff"


def test_not_a_patch(fake_tree, tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("just some text\n")
    with pytest.raises(UsageError, match="not a patch"):
        parse_series(str(notes), fake_tree)


def test_missing_patch_path(fake_tree):
    with pytest.raises(UsageError, match="no such file"):
        parse_series("/nonexistent/series.mbox", fake_tree)


def test_commit_range_needs_git(fake_tree):
    with pytest.raises(UsageError, match="needs a git tree"):
        parse_series("v6.1..HEAD", fake_tree)


def test_commit_range_in_a_git_tree(fake_tree):
    git = ["git", "-C", str(fake_tree), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-qm", "base"], check=True)
    (fake_tree / "Kconfig").write_text("mainmenu \"Linux 2\"\n")
    subprocess.run([*git, "commit", "-qam", "mm: change"], check=True)
    series = parse_series("HEAD~1..HEAD", fake_tree)
    assert series.kind == "range" and series.subjects(fake_tree) == ["mm: change"]
    assert tree_identity(fake_tree).startswith("git:")


def test_not_a_kernel_tree(tmp_path):
    with pytest.raises(UsageError, match="not a Linux kernel tree"):
        check_tree(tmp_path)


def test_tree_identity_changes_with_content(fake_tree):
    before = tree_identity(fake_tree)
    (fake_tree / "Makefile").write_text("VERSION = 6\nPATCHLEVEL = 2\n")
    assert tree_identity(fake_tree) != before


@pytest.mark.parametrize("output, expected", [
    ("Applying: x\nerror: patch failed: drivers/nvdimm/pmem.c:626\nerror: ...",
     "hunk failed in drivers/nvdimm/pmem.c:626"),
    ("patching file drivers/nvdimm/pmem.c\nHunk #1 FAILED at 626.\n1 out of 1 hunk FAILED",
     "Hunk #1 FAILED at 626 in drivers/nvdimm/pmem.c"),
    ("can't find file to patch at input line 5", "a file it patches does not exist in the tree"),
])
def test_failing_hunk_names_the_file(output, expected):
    assert failing_hunk(output) == expected
