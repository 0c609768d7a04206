"""`--shard K/N`: a stable slice of the suite, so N CI jobs together run every test once.

Round-robin over the collected order (test i goes to shard i % N + 1) rather than contiguous
blocks: neighbouring tests are the same family with similar durations, so dealing them out
like cards gives shards of similar length. The order is pytest's collection order after
`-k`, which is the same on every machine for the same checkout and expression.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

from .errors import UsageError

T = TypeVar("T")


@dataclass(frozen=True)
class Shard:
    index: int  # K, 1-based
    total: int  # N

    def __str__(self) -> str:
        return f"{self.index}/{self.total}"

    def split(self, items: Sequence[T]) -> tuple[list[T], list[T]]:
        """(this shard's items, everybody else's), both in the original order."""
        mine = [it for i, it in enumerate(items) if i % self.total == self.index - 1]
        others = [it for i, it in enumerate(items) if i % self.total != self.index - 1]
        return mine, others


def parse_shard(text: str, option: str = "--shard") -> Shard:
    """'K/N' with 1 <= K <= N; anything else is a UsageError naming the option."""
    m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text or "")
    if not m:
        raise UsageError(f"{option}: {text!r} is not K/N (two whole numbers, e.g. 1/2)")
    k, n = int(m.group(1)), int(m.group(2))
    if n < 1:
        raise UsageError(f"{option}: {text!r}: N (the number of shards) must be at least 1")
    if not 1 <= k <= n:
        raise UsageError(f"{option}: {text!r}: K must be between 1 and N ({n})")
    return Shard(k, n)
