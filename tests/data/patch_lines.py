"""Where a demonstration patch's line lands in the patched file, counted from its hunk: the
e2e tests check that a finding is located exactly there."""

from __future__ import annotations

import re
from pathlib import Path


def line_added_by(patch: Path, needle: str) -> int:
    """The line number, in the patched file, of the first line of `patch` containing `needle`."""
    line = None
    for text in patch.read_text().splitlines():
        if text.startswith("@@"):
            line = int(re.search(r"\+(\d+)", text).group(1))
        elif line is not None and not text.startswith("-"):
            if needle in text:
                return line
            line += 1
    raise AssertionError(f"no line with {needle!r} in {patch.name}")
