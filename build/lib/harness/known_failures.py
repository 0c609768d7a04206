"""Known kernel bugs: which test fails with which finding on which kernels (DESIGN.md outcomes).

The table is YAML (testcases/known_failures.yaml):

    known_failures:
      - test: "test_remove.py::test_remove_pinned_devdax[rdma]"   # `*` is the only wildcard
        kernel: ">=6.1,<6.2"                                       # release range
        finding: "BUG: unable to handle kernel paging request in unpin_user_page_range_dirty_lock"
                                   # or a list: the titles the bug prints on different kernels
                                   # (plain and --config debug); any one of them is the bug
        also: ["WARNING in ..."]   # optional: other reports the same bug prints
        checkers: [KASAN]          # optional: only a kernel built with these can see it
        consequences:              # optional: checks of the test the bug makes fail
          - check: "umount"        # a check name, exactly as summary.json records it
            reason: "umount is where the oops happens; the process dies with it"
        reference: "what the bug is, where it was found or fixed"

A known bug never hides another deviation (DESIGN.md). A test that fails on a matching
kernel is `known_failure` only when the bug is all that went wrong: the recorded finding is
there, no finding outside `finding` + `also`, and every check of the test held except those
listed in `consequences`. With the finding but anything else wrong (an unrelated finding, a
failed check the bug does not explain) the verdict is `failed`, with a message that names
the known bug and what else differed. A test with a matching record that passes cleanly,
every check held, is `fixed`. A failure without the finding is judged as usual. Pure:
loading validates and reports the first problem as one line.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .checks import Check
from .expectations import KernelRange
from .yamlfile import YamlFileError, read_yaml

_KEYS = {"test", "kernel", "finding", "also", "checkers", "consequences", "reference", "note"}


class KnownFailuresError(ValueError):
    """Bad data in the known-failures table (one line naming the file and the entry)."""


@dataclass(frozen=True)
class KnownFailure:
    tests: tuple[str, ...]  # pytest id patterns without the directory (ndctl-test's ids
    # whole); `*` is the wildcard
    kernel: KernelRange
    findings: tuple[str, ...]  # any one of them is the bug (plain and debug kernels' titles)
    reference: str
    also: tuple[str, ...] = ()
    note: str = ""
    # check name -> why this bug makes that check fail
    consequences: tuple[tuple[str, str], ...] = ()
    # debug checkers (KASAN, PROVE_LOCKING, ...) a kernel needs to see the bug at all: on a
    # kernel without them the test passes and that is no fix
    checkers: tuple[str, ...] = ()

    def applies(self, test_id: str, release: str | None,
                checkers: Iterable[str] = ()) -> bool:
        return (release is not None
                and any(_test_regex(t).fullmatch(_short_id(test_id)) for t in self.tests)
                and self.kernel.contains(release)
                and set(self.checkers) <= set(checkers))

    @property
    def finding(self) -> str:
        return self.findings[0]

    def unexplained(self, checks: Iterable[Check]) -> list[Check]:
        """The failed checks this bug does not account for."""
        explained = {name for name, _ in self.consequences}
        return [c for c in checks if not c.ok and c.name not in explained]

    def to_json(self) -> dict[str, Any]:
        return {"title": self.finding, "kernel": self.kernel.text, "reference": self.reference,
                **({"note": self.note} if self.note else {}),
                **({"consequences": [{"check": n, "reason": r} for n, r in self.consequences]}
                   if self.consequences else {})}


@dataclass(frozen=True)
class Verdict:
    outcome: str             # "known_failure", "fixed", or "failed" (the bug and more)
    entry: KnownFailure
    # For "failed": names the known bug and every other deviation.
    message: str = ""


class KnownFailures:
    def __init__(self, path: str, entries: list[KnownFailure]):
        self.path = path
        self.entries = entries

    def for_test(self, test_id: str, release: str | None,
                 checkers: Iterable[str] = ()) -> list[KnownFailure]:
        return [e for e in self.entries if e.applies(test_id, release, checkers)]

    def judge(self, test_id: str, release: str | None, passed: bool,
              finding_titles: Iterable[str], checks: Iterable[Check] = (),
              checkers: Iterable[str] = ()) -> Verdict | None:
        """known_failure / fixed / failed for a test with a record on this kernel (`checkers`:
        the debug checkers it was built with); None when no record applies or the record's
        finding is not there (judged as usual)."""
        entries = self.for_test(test_id, release, checkers)
        titles = list(finding_titles)
        checks = list(checks)
        if not entries:
            return None
        if passed:
            # A pass with a failed check cannot happen (the test asserts them); be strict.
            clean = not titles and all(c.ok for c in checks)
            return Verdict("fixed", entries[0]) if clean else None
        for entry in entries:
            seen = [f for f in entry.findings if f in titles]
            if not seen:
                continue
            unrelated = [t for t in titles if t not in {*entry.findings, *entry.also}]
            unexplained = entry.unexplained(checks)
            if not unrelated and not unexplained:
                return Verdict("known_failure", entry)
            return Verdict("failed", entry,
                           _more_than_the_bug(seen[0], unrelated, unexplained))
        return None


def _more_than_the_bug(finding: str, unrelated: list[str], unexplained: list[Check]) -> str:
    lines = [f"the known kernel bug ({finding}) happened, and something it does not "
             "explain differed as well:"]
    lines += [f"  check {c}" + (f" [{c.source}]" if c.source else "") for c in unexplained]
    lines += [f"  kernel finding: {t}" for t in unrelated]
    return "\n".join(lines)


def _short_id(test_id: str) -> str:
    """'testcases/test_remove.py::t[x]' -> 'test_remove.py::t[x]' (the table's form); an id
    that is no pytest node id (ndctl/dax/dm.sh) stays whole."""
    path, sep, rest = test_id.partition("::")
    return f"{path.rsplit('/', 1)[-1]}{sep}{rest}" if sep else test_id


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
    return KnownFailure(tests=_titles(item.get("test"), "test", "a test id pattern"),
                        kernel=KernelRange.parse(item.get("kernel")),
                        findings=_titles(item.get("finding"), "finding", "a title"),
                        reference=_text(item, "reference"),
                        also=tuple(also), note=_text(item, "note", required=False),
                        checkers=_checkers(item.get("checkers")),
                        consequences=_consequences(item.get("consequences")))


def _checkers(raw: Any) -> tuple[str, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list) or not all(isinstance(c, str) and c.isupper() for c in raw):
        raise ValueError(f"checkers must be a list of config names like KASAN, not {raw!r}")
    return tuple(raw)


def _titles(raw: Any, key: str, what: str) -> tuple[str, ...]:
    """One text or a list of them (`finding`, `test`)."""
    items = raw if isinstance(raw, list) else [raw]
    if not items or not all(isinstance(t, str) and t.strip() for t in items):
        raise ValueError(f"{key} must be {what} or a list of them, not {raw!r}")
    return tuple(" ".join(t.split()) for t in items)


def _consequences(raw: Any) -> tuple[tuple[str, str], ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise ValueError("consequences must be a list of {check, reason}")
    out = []
    for c in raw:
        if not isinstance(c, dict) or set(c) != {"check", "reason"}:
            raise ValueError(f"a consequence must be {{check: NAME, reason: TEXT}}, not {c!r}")
        out.append((_text(c, "check"), _text(c, "reason")))
    return tuple(out)


def load(path: str | Path) -> KnownFailures:
    path = Path(path)
    try:
        data = read_yaml(path)
    except YamlFileError as e:
        raise KnownFailuresError(str(e)) from None
    return parse(data, str(path))
