"""Headless Chromium for the report tests (tests/e2e/test_report_browser.py, test_matrix_61_612.py).

Chromium comes from tools/install-host-deps.sh (Debian's `chromium`); a missing browser fails
the test instead of skipping it, so a machine that lost it is noticed.
"""

import shutil
import subprocess
from pathlib import Path

import pytest


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if path := shutil.which(name):
            return path
    pytest.fail("chromium not found: tools/install-host-deps.sh installs it (apt: chromium)")


def render(browser: str, page: Path, *args: str, profile: Path) -> subprocess.CompletedProcess:
    argv = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
            "--hide-scrollbars", f"--user-data-dir={profile}", *args, page.as_uri()]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, f"{argv}: exit {proc.returncode}\n{proc.stderr[-2000:]}"
    return proc
