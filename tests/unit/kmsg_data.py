"""The real console logs of tests/data/kmsg/, for the unit tests that replay them."""

from pathlib import Path

DATA = Path(__file__).resolve().parents[1] / "data" / "kmsg"


def body(name: str) -> list[str]:
    """A data log's lines without its "# expect/source" header."""
    return [ln for ln in (DATA / name).read_text().splitlines() if not ln.startswith("# ")]
