"""One compared expectation: what the table (or the harness) expected, what the guest showed.

Every judging function (odirect.odirect_checks, pinning.pin_checks, removal.removal_checks,
trace.pmd_checks, ...) returns a Check for every comparison it made, the ones that
held as well as the ones that did not, so that summary.json can say what a verdict rests
on (DESIGN.md: `checks: [{name, expected, observed, ok, source}]`) and a known kernel bug
can be told apart from a second deviation in the same test (harness/known_failures.py).
Pure.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any


@dataclass(frozen=True)
class Check:
    name: str          # what was compared, e.g. "O_DIRECT transfer", "the old mapping"
    expected: str
    observed: str
    ok: bool
    source: str = ""   # the citation of the expectation row (kernel file, version), if any
    key: str = ""      # the expectation-table key it judges ("transfer", "mapping_after")

    def __str__(self) -> str:
        return f"{self.name}: expected {self.expected}, observed {self.observed}"

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "expected": self.expected, "observed": self.observed,
                "ok": self.ok, "source": self.source, **({"key": self.key} if self.key else {})}


def failed(name: str, expected: str, observed: str, key: str = "") -> Check:
    """A comparison that did not hold."""
    return Check(name, expected, observed, False, key=key)


def completed(observed: dict[str, Any]) -> Check:
    """Every workload's first check: it ran all its steps (its JSON says `completed`)."""
    done = bool(observed.get("completed"))
    return Check("workload", "all steps completed", "completed" if done else
                 f"stopped: {observed.get('error') or 'unknown error'}", done)


def result(name: str, want: Any, success: str, ok: bool, errno: str | None, observed: str,
           key: str, refusal: str = "refused with {errno}") -> Check:
    """The check of a table's `v_result` value (harness.expectations): `want` is the success
    word ("ok", "full"), or {errno: ENAME} for a refusal with exactly that errno."""
    if isinstance(want, dict):
        return Check(name, refusal.format(errno=want["errno"]), observed,
                     not ok and errno == want["errno"], key=key)
    return Check(name, success, observed, ok, key=key)


def with_sources(checks: Iterable[Check], sources: dict[str, str]) -> list[Check]:
    """Each check keyed by an expectation key gets the citation of the row that set it."""
    return [replace(c, source=sources.get(c.key, c.source)) if c.key and not c.source else c
            for c in checks]


def failures(checks: Iterable[Check]) -> list[Check]:
    return [c for c in checks if not c.ok]


def format_failures(checks: Iterable[Check]) -> str:
    """The failed checks, one per line ('' when all held): an assertion's message."""
    return "\n".join(str(c) for c in failures(checks))


def unobserved(expect: dict[str, Any], checks: Iterable[Check], table: str) -> list[Check]:
    """A failed check for every key of the expectation that no check judged: a table
    that promises something its test never compares must not pass quietly."""
    judged = {c.key for c in checks}
    return [Check(f"{key} ({table})", "observed and compared", "not observed by this test",
                  False, key=key) for key in expect if key not in judged]
