"""Expected-outcome tables: mode × case → what the kernel promises, and where it says so.

A table is YAML (testcases/expectations/*.yaml):

    sources:                      # optional: named citations rows can refer to
      gup-devmap: "mm/gup.c ... v4.5+"
    rows:
      - mode: [fsdax-*, devdax-*] # fnmatch patterns, a string or a list
        case: read-readonly-*
        expect: {transfer: {errno: EFAULT}, content_changed: false}
        source: gup-devmap        # a key of `sources`, or the citation itself
      - mode: fsdax-*
        case: write-untouched-2M
        kernel: ">=6.1,<6.2"      # optional: the row applies to these releases only
        expect: {pmd_nopage: 1}
        source: "..."

For (mode, case, kernel release) every matching row is merged in file order: a later row
replaces the keys it sets, so per-kernel overrides are rows placed after the general ones.
Every value keeps the source of the row that set it, for the report. The keys `expect` may
use, and their values, are the family's vocabulary (harness.odirect.VOCABULARY, ...), given
to load().

Pure: loading validates everything and reports the first problem as one line
"FILE: row N (mode M, case C): problem".
"""

from __future__ import annotations

import fnmatch
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .yamlfile import YamlFileError, read_yaml


class ExpectationError(ValueError):
    """Bad data in an expectation table (one line naming the file and the row)."""


# --------------------------------------------------------------------------- count rules

_RULE_RE = re.compile(r"^\s*(>=|<=|==|!=|>|<)?\s*(\d+)\s*$")
_OPS: dict[str, Callable[[int, int], bool]] = {
    ">=": operator.ge, "<=": operator.le, "==": operator.eq, "!=": operator.ne,
    ">": operator.gt, "<": operator.lt,
}


@dataclass(frozen=True)
class CountRule:
    op: str
    value: int

    @property
    def text(self) -> str:
        return str(self.value) if self.op == "==" else f"{self.op}{self.value}"

    def holds(self, n: int) -> bool:
        return _OPS[self.op](n, self.value)


def parse_count_rule(value: Any) -> CountRule:
    """0 / "0" / "==0" / ">0" / ">=32": a rule on an event count."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a count rule")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"{value} is not a count")
        return CountRule("==", value)
    m = _RULE_RE.match(str(value))
    if not m:
        raise ValueError(f"{value!r} is not a count rule (use e.g. 0, \">0\", \">=32\")")
    return CountRule(m.group(1) or "==", int(m.group(2)))


# ------------------------------------------------------------------------ kernel releases

_RELEASE_RE = re.compile(r"^(\d+)\.(\d+)(?:\.(\d+))?")
_RANGE_PART_RE = re.compile(r"^\s*(>=|<=|==|!=|>|<)\s*(\d+(?:\.\d+){0,2})\s*$")


def parse_release(release: str) -> tuple[int, int, int]:
    """'6.1.0-56-amd64' -> (6, 1, 0); '6.9' -> (6, 9, 0)."""
    m = _RELEASE_RE.match(release.strip())
    if not m:
        raise ValueError(f"{release!r} is not a kernel release")
    return int(m.group(1)), int(m.group(2)), int(m.group(3) or 0)


@dataclass(frozen=True)
class KernelRange:
    text: str
    parts: tuple[tuple[str, tuple[int, int, int]], ...]

    @classmethod
    def parse(cls, text: str) -> KernelRange:
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f"{text!r} is not a kernel range (use e.g. \">=6.1,<6.5\")")
        parts = []
        for chunk in text.split(","):
            m = _RANGE_PART_RE.match(chunk)
            if not m:
                raise ValueError(f"{chunk.strip()!r} in {text!r} is not OP VERSION "
                                 "(use e.g. \">=6.1,<6.5\")")
            parts.append((m.group(1), parse_release(m.group(2))))
        return cls(text, tuple(parts))

    def contains(self, release: str) -> bool:
        v = parse_release(release)
        return all(_OPS[op](v, bound) for op, bound in self.parts)


# ----------------------------------------------------------------------- the vocabulary

# The `expect` keys a table may use, each with its validator (raises ValueError). Every
# family has its own: harness.odirect.VOCABULARY, harness.pinning.VOCABULARY,
# harness.removal.VOCABULARY, built from the validators below.
Vocabulary = dict[str, Callable[[Any], None]]


def v_result(key: str, success: str) -> Callable[[Any], None]:
    """`success` (e.g. "full", "ok") or {errno: ENAME}."""
    def check(v: Any) -> None:
        if v == success:
            return
        if isinstance(v, dict) and set(v) == {"errno"} and isinstance(v["errno"], str) \
                and re.match(r"^E[A-Z0-9]+$", v["errno"]):
            return
        raise ValueError(f"{key} must be \"{success}\" or {{errno: ENAME}}, not {v!r}")
    return check


def v_exact(key: str) -> Callable[[Any], None]:
    def check(v: Any) -> None:
        if v != "exact":
            raise ValueError(f"{key} must be \"exact\", not {v!r}")
    return check


def v_bool(key: str) -> Callable[[Any], None]:
    def check(v: Any) -> None:
        if not isinstance(v, bool):
            raise ValueError(f"{key} must be true or false, not {v!r}")
    return check


def v_one_of(key: str, *allowed: str) -> Callable[[Any], None]:
    def check(v: Any) -> None:
        if v not in allowed:
            raise ValueError(f"{key} must be one of {', '.join(allowed)}, not {v!r}")
    return check


def v_rule(key: str) -> Callable[[Any], None]:
    def check(v: Any) -> None:
        try:
            parse_count_rule(v)
        except ValueError as e:
            raise ValueError(f"{key}: {e}") from None
    return check


_ROW_KEYS = {"mode", "case", "expect", "source", "kernel", "note"}


def format_value(key: str, value: Any) -> str:
    if key == "transfer":
        return "transfer full" if value == "full" else f"transfer -1 {value['errno']}"
    if key in ("compare", "file_compare"):
        return f"{key} {value}"
    if isinstance(value, dict) and "errno" in value:
        return f"{key} fails {value['errno']}"
    if key in ("pmd_nopage", "pmd_fallback", "devdax_pmd_faults", "devdax_pte_faults"):
        return f"{key} {parse_count_rule(value).text}"
    if isinstance(value, bool):
        return f"{key} {'true' if value else 'false'}"
    return f"{key} {value}"


# -------------------------------------------------------------------------- the table

@dataclass(frozen=True)
class Row:
    number: int                    # 1-based position in `rows`
    modes: tuple[str, ...]
    cases: tuple[str, ...]
    expect: dict[str, Any]
    source: str
    kernel: KernelRange | None = None
    note: str = ""

    def matches(self, mode: str, case: str, release: str | None) -> bool:
        if not any(fnmatch.fnmatchcase(mode, p) for p in self.modes):
            return False
        if not any(fnmatch.fnmatchcase(case, p) for p in self.cases):
            return False
        if self.kernel is None:
            return True
        return release is not None and self.kernel.contains(release)


@dataclass(frozen=True)
class Expectation:
    mode: str
    case: str
    release: str | None
    values: dict[str, Any]
    sources: dict[str, str]        # key -> source of the row that set it
    rows: tuple[int, ...] = field(default=())

    def describe(self) -> str:
        """'transfer full, compare exact [mm/gup.c ...]; pmd_nopage >=32 [fs/dax.c ...]'."""
        groups: dict[str, list[str]] = {}
        for key, value in self.values.items():
            groups.setdefault(self.sources[key], []).append(format_value(key, value))
        return "; ".join(f"{', '.join(items)} [{src}]" for src, items in groups.items())


class ExpectationTable:
    def __init__(self, path: str, rows: list[Row]):
        self.path = path
        self.rows = rows

    def lookup(self, mode: str, case: str, release: str | None = None) -> Expectation:
        values: dict[str, Any] = {}
        sources: dict[str, str] = {}
        used = []
        for row in self.rows:
            if row.matches(mode, case, release):
                used.append(row.number)
                for key, value in row.expect.items():
                    values.pop(key, None)  # keep file order of the latest setter
                    values[key] = value
                    sources[key] = row.source
        if not values:
            raise LookupError(f"{self.path}: no row for mode {mode}, case {case}"
                              f"{f', kernel {release}' if release else ''}")
        return Expectation(mode, case, release, values, sources, tuple(used))


def _as_patterns(value: Any, what: str) -> tuple[str, ...]:
    items = value if isinstance(value, list) else [value]
    if not items or not all(isinstance(x, str) and x.strip() for x in items):
        raise ValueError(f"{what} must be a pattern or a list of patterns, not {value!r}")
    return tuple(x.strip() for x in items)


def parse_table(data: Any, path: str, vocabulary: Vocabulary) -> ExpectationTable:
    if not isinstance(data, dict):
        raise ExpectationError(f"{path}: expected a mapping with `rows`, got "
                               f"{type(data).__name__}")
    unknown = set(data) - {"sources", "rows"}
    if unknown:
        raise ExpectationError(f"{path}: unknown top-level key {sorted(unknown)[0]!r} "
                               "(allowed: sources, rows)")
    sources = data.get("sources") or {}
    if not isinstance(sources, dict) or not all(
            isinstance(k, str) and isinstance(v, str) and v.strip()
            for k, v in sources.items()):
        raise ExpectationError(f"{path}: sources must map names to citation text")
    raw_rows = data.get("rows")
    if not isinstance(raw_rows, list) or not raw_rows:
        raise ExpectationError(f"{path}: `rows` must be a non-empty list")
    rows = []
    for i, raw in enumerate(raw_rows, 1):
        where = f"{path}: row {i}"
        if isinstance(raw, dict):
            where += f" (mode {raw.get('mode')}, case {raw.get('case')})"
        try:
            rows.append(_parse_row(i, raw, sources, vocabulary))
        except ValueError as e:
            raise ExpectationError(f"{where}: {e}") from None
    return ExpectationTable(path, rows)


def _parse_row(number: int, raw: Any, sources: dict[str, str], vocabulary: Vocabulary) -> Row:
    if not isinstance(raw, dict):
        raise ValueError(f"a row must be a mapping, not {raw!r}")
    unknown = set(raw) - _ROW_KEYS
    if unknown:
        raise ValueError(f"unknown key {sorted(unknown)[0]!r} "
                         f"(allowed: {', '.join(sorted(_ROW_KEYS))})")
    for key in ("mode", "case", "expect", "source"):
        if key not in raw:
            raise ValueError(f"missing {key!r}")
    modes = _as_patterns(raw["mode"], "mode")
    cases = _as_patterns(raw["case"], "case")
    expect = raw["expect"]
    if not isinstance(expect, dict) or not expect:
        raise ValueError("expect must be a non-empty mapping")
    for key, value in expect.items():
        if key not in vocabulary:
            raise ValueError(f"unknown expectation {key!r} "
                             f"(known: {', '.join(vocabulary)})")
        vocabulary[key](value)
    source = raw["source"]
    if not isinstance(source, str) or not source.strip():
        raise ValueError("source must name the kernel code that promises the result")
    source = sources.get(source.strip(), source.strip())
    kernel = KernelRange.parse(raw["kernel"]) if "kernel" in raw else None
    note = raw.get("note") or ""
    if not isinstance(note, str):
        raise ValueError("note must be text")
    return Row(number, modes, cases, dict(expect), " ".join(source.split()), kernel, note)


def load(path: str | Path, vocabulary: Vocabulary) -> ExpectationTable:
    path = Path(path)
    try:
        data = read_yaml(path)
    except YamlFileError as e:
        raise ExpectationError(str(e)) from None
    return parse_table(data, str(path), vocabulary)


def uncovered(table: ExpectationTable, cells: list[tuple[str, str]],
              required: tuple[str, ...], release: str | None = None) -> list[str]:
    """Cells (mode, case) whose expectation on `release` (None: rows without a kernel
    range only) lacks a required key."""
    missing = []
    for mode, case in cells:
        try:
            exp = table.lookup(mode, case, release)
        except LookupError:
            missing.append(f"{mode}-{case}: no row")
            continue
        for key in required:
            if key not in exp.values:
                missing.append(f"{mode}-{case}: no {key}")
    return missing
