"""Known kernel bugs: which test fails with which finding on which kernels (DESIGN.md outcomes).

The table is YAML (testcases/known_failures.yaml):

    known_failures:
      - test: "test_remove.py::test_remove_pinned_devdax[rdma]"   # `*` is the only wildcard
        kernel: ">=6.1,<6.2"                                       # release range
        finding: "BUG: unable to handle page fault in unpin_user_page_range_dirty_lock"
        also: ["WARNING in ..."]   # optional: other reports the same bug prints
        reference: "what the bug is, where it was found or fixed"

A test that fails on a matching kernel with the recorded finding, and no finding outside
`finding` + `also`, is `known_failure`; a test with a matching record that passes cleanly is
`fixed`. Anything else (another finding, a failure without the finding, another kernel) is
judged as usual. Pure: loading validates and reports the first problem as one line.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .expectations import KernelRange
from .yamlfile import YamlFileError, read_yaml

_KEYS = {"test", "kernel", "finding", "also", "reference", "note"}


class KnownFailuresError(ValueError):
    """Bad data in the known-failures table (one line naming the file and the entry)."""


@dataclass(frozen=True)
class KnownFailure:
    test: str
    kernel: KernelRange
    finding: str
    reference: str
    also: tuple[str, ...] = ()
    note: str = ""

    def applies(self, test_id: str, release: str | None) -> bool:
        return (release is not None and _test_regex(self.test).fullmatch(_short_id(test_id))
                is not None and self.kernel.contains(release))

    def explains(self, titles: Iterable[str]) -> bool:
        """The findings are this bug: its own title is among them and nothing unrelated."""
        titles = set(titles)
        return self.finding in titles and titles <= {self.finding, *self.also}

    def to_json(self) -> dict[str, str]:
        return {"title": self.finding, "kernel": self.kernel.text, "reference": self.reference,
                **({"note": self.note} if self.note else {})}


@dataclass(frozen=True)
class Verdict:
    outcome: str             # "known_failure" or "fixed"
    entry: KnownFailure


class KnownFailures:
    def __init__(self, path: str, entries: list[KnownFailure]):
        self.path = path
        self.entries = entries

    def for_test(self, test_id: str, release: str | None) -> list[KnownFailure]:
        return [e for e in self.entries if e.applies(test_id, release)]

    def judge(self, test_id: str, release: str | None, passed: bool,
              finding_titles: Iterable[str]) -> Verdict | None:
        """known_failure / fixed for a test with a record on this kernel, else None."""
        entries = self.for_test(test_id, release)
        titles = list(finding_titles)
        if not entries:
            return None
        if passed and not titles:
            return Verdict("fixed", entries[0])
        if passed:
            return None
        for entry in entries:
            if entry.explains(titles):
                return Verdict("known_failure", entry)
        return None


def _short_id(test_id: str) -> str:
    """'testcases/test_remove.py::t[x]' -> 'test_remove.py::t[x]' (the table's form)."""
    path, sep, rest = test_id.partition("::")
    return f"{path.rsplit('/', 1)[-1]}{sep}{rest}"


def _test_regex(pattern: str) -> re.Pattern[str]:
    # fnmatch would read the [...] of parametrized ids as character classes.
    return re.compile(".*".join(re.escape(part) for part in pattern.split("*")))


def parse(data: Any, path: str = "<known failures>") -> KnownFailures:
    if not isinstance(data, dict) or set(data) != {"known_failures"}:
        raise KnownFailuresError(f"{path}: expected a mapping with only `known_failures`")
    raw = data["known_failures"] or []
    if not isinstance(raw, list):
        raise KnownFailuresError(f"{path}: known_failures must be a list")
    entries = []
    for i, item in enumerate(raw, 1):
        try:
            entries.append(_entry(item))
        except ValueError as e:
            raise KnownFailuresError(f"{path}: entry {i}: {e}") from None
    return KnownFailures(path, entries)


def _text(item: dict, key: str, required: bool = True) -> str:
    value = item.get(key, "")
    if not isinstance(value, str) or (required and not value.strip()):
        raise ValueError(f"{key} must be non-empty text, not {value!r}")
    return " ".join(value.split())


def _entry(item: Any) -> KnownFailure:
    if not isinstance(item, dict):
        raise ValueError(f"an entry must be a mapping, not {item!r}")
    unknown = set(item) - _KEYS
    if unknown:
        raise ValueError(f"unknown key {sorted(unknown)[0]!r} "
                         f"(allowed: {', '.join(sorted(_KEYS))})")
    also = item.get("also") or []
    if not isinstance(also, list) or not all(isinstance(t, str) and t for t in also):
        raise ValueError("also must be a list of finding titles")
    return KnownFailure(test=_text(item, "test"), kernel=KernelRange.parse(item.get("kernel")),
                        finding=_text(item, "finding"), reference=_text(item, "reference"),
                        also=tuple(also), note=_text(item, "note", required=False))


def load(path: str | Path) -> KnownFailures:
    path = Path(path)
    try:
        data = read_yaml(path)
    except YamlFileError as e:
        raise KnownFailuresError(str(e)) from None
    return parse(data, str(path))
