"""A/B: what changed between two runs, a baseline and the same suite with patches applied.

`nvdimm-harness compare BASELINE PATCHED` answers the question a kernel developer asks
before sending a series: did my patches break a test, make the kernel print something new,
change what the kernel answers, or make something much slower? Pure (two RunSummary in,
markdown or HTML out) except `load_run()`/`compare_dirs()`, which read summary.json.

Outcome classes (DESIGN.md outcomes):
- good: passed, fixed (a test with a known-bug record that passed: a clean pass too);
- known: known_failure (failed with exactly a recorded known kernel bug);
- failing: failed, error, crashed, timeout;
- skipped: not comparable, so a change to or from skipped is shown but never judged.
"""

from __future__ import annotations

import html
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from .errors import EXIT_OK, EXIT_TEST_FAILED, UsageError
from .results import FAILING_OUTCOMES, RunSummary, TestRecord, load_summary

GOOD_OUTCOMES = frozenset({"passed", "fixed"})
# A duration change smaller than this is noise: TCG vs KVM, a busy host, a guest restart.
NOISE_RATIO = 0.5
NOISE_S = 5.0
MAX_DURATION_CHANGES = 10
OUTSIDE_TESTS = "outside tests"


@dataclass
class OutcomeChange:
    before: TestRecord
    after: TestRecord
    why: str = ""

    @property
    def id(self) -> str:
        return self.after.id


@dataclass
class FindingChange:
    kind: str
    title: str
    where: list[str]  # test ids, or OUTSIDE_TESTS for the run's own findings


@dataclass
class DurationChange:
    id: str
    before_s: float
    after_s: float

    @property
    def delta_s(self) -> float:
        return self.after_s - self.before_s


@dataclass
class Comparison:
    baseline: RunSummary
    patched: RunSummary
    baseline_label: str = "baseline"
    patched_label: str = "patched"
    regressions: list[OutcomeChange] = field(default_factory=list)
    fixed: list[OutcomeChange] = field(default_factory=list)
    # Outcome changes that are neither: to/from skipped, one failure for another, ...
    other_changes: list[OutcomeChange] = field(default_factory=list)
    new_tests: list[TestRecord] = field(default_factory=list)
    removed_tests: list[TestRecord] = field(default_factory=list)
    new_findings: list[FindingChange] = field(default_factory=list)
    gone_findings: list[FindingChange] = field(default_factory=list)
    behaviour_changes: list[OutcomeChange] = field(default_factory=list)
    duration_changes: list[DurationChange] = field(default_factory=list)  # biggest first
    duration_changes_total: int = 0  # before the cap

    @property
    def new_infra_error(self) -> bool:
        """The patched run broke down (e.g. its kernel never booted) and the baseline did not."""
        return bool(self.patched.infra_error) and not self.baseline.infra_error

    def regressed(self) -> bool:
        return bool(self.regressions or self.new_findings or self.new_infra_error)

    def exit_code(self) -> int:
        return EXIT_TEST_FAILED if self.regressed() else EXIT_OK

    def headline(self) -> str:
        parts = []
        if self.new_infra_error:
            parts.append("the patched run did not complete")
        if self.regressions:
            parts.append(_plural(len(self.regressions), "regression"))
        if self.new_findings:
            parts.append(_plural(len(self.new_findings), "new kernel finding"))
        if not parts:
            parts.append("no regressions")
        if self.fixed:
            parts.append(f"{len(self.fixed)} fixed")
        return ", ".join(parts)


# -- comparing -------------------------------------------------------------------------------
def compare_runs(baseline: RunSummary, patched: RunSummary, baseline_label: str = "baseline",
                 patched_label: str = "patched") -> Comparison:
    comp = Comparison(baseline, patched, baseline_label, patched_label)
    before = {t.id: t for t in baseline.tests}
    after_ids = {t.id for t in patched.tests}
    comp.removed_tests = [t for t in baseline.tests if t.id not in after_ids]
    durations = []
    for a in patched.tests:
        b = before.get(a.id)
        if b is None:
            comp.new_tests.append(a)
            continue
        change = _judge(b, a)
        if change is not None:
            kind, why = change
            {"regression": comp.regressions, "fixed": comp.fixed,
             "other": comp.other_changes}[kind].append(OutcomeChange(b, a, why))
        elif (b.observed or a.observed) and (b.observed != a.observed):
            comp.behaviour_changes.append(OutcomeChange(b, a))
        if "skipped" not in (a.outcome, b.outcome) and _beyond_noise(b.duration_s, a.duration_s):
            durations.append(DurationChange(a.id, b.duration_s, a.duration_s))
    durations.sort(key=lambda d: abs(d.delta_s), reverse=True)
    comp.duration_changes = durations[:MAX_DURATION_CHANGES]
    comp.duration_changes_total = len(durations)
    base_findings, patched_findings = _findings(baseline), _findings(patched)
    comp.new_findings = [f for t, f in patched_findings.items() if t not in base_findings]
    comp.gone_findings = [f for t, f in base_findings.items() if t not in patched_findings]
    return comp


def _judge(b: TestRecord, a: TestRecord) -> tuple[str, str] | None:
    """('regression'|'fixed'|'other', why) for an outcome change; None when it is the same."""
    if a.outcome == b.outcome or {a.outcome, b.outcome} <= GOOD_OUTCOMES:
        if a.outcome == "known_failure" and _known_title(a) != _known_title(b):
            return "regression", "fails with a different known kernel bug"
        return None
    if "skipped" in (a.outcome, b.outcome):
        return "other", "skipped in one run: not compared"
    if b.outcome in GOOD_OUTCOMES and a.outcome in FAILING_OUTCOMES:
        return "regression", ""
    if b.outcome == "known_failure" and a.outcome in FAILING_OUTCOMES:
        # Not known_failure any more: the findings are no longer exactly the known bug.
        return "regression", "no longer only the known kernel bug"
    if b.outcome in FAILING_OUTCOMES | {"known_failure"} and a.outcome in GOOD_OUTCOMES:
        return "fixed", ""
    if b.outcome in FAILING_OUTCOMES and a.outcome in FAILING_OUTCOMES:
        return "other", "still failing"
    if b.outcome in GOOD_OUTCOMES and a.outcome == "known_failure":
        return "other", "now fails with a known kernel bug"
    return "other", ""


def _known_title(t: TestRecord) -> str:
    return (t.known_issue or {}).get("title", "")


def _beyond_noise(before_s: float, after_s: float) -> bool:
    return abs(after_s - before_s) > max(NOISE_RATIO * before_s, NOISE_S)


def _findings(run: RunSummary) -> dict[str, FindingChange]:
    """Kernel findings by title, in the order first seen, with where each was seen."""
    out: dict[str, FindingChange] = {}

    def add(finding: dict, where: str) -> None:
        title = str(finding.get("title", ""))
        if not title:
            return
        entry = out.setdefault(title, FindingChange(str(finding.get("kind", "?")), title, []))
        if where not in entry.where:
            entry.where.append(where)

    for t in run.tests:
        for f in t.kernel_findings:
            add(f, t.id)
    for f in run.run_findings:
        add(f, OUTSIDE_TESTS)
    return out


# -- loading ---------------------------------------------------------------------------------
def load_run(results_dir: Path) -> RunSummary:
    """summary.json of a results directory; anything wrong is one UsageError line."""
    path = results_dir / "summary.json"
    if not results_dir.is_dir():
        raise UsageError(f"{results_dir}: no such results directory")
    if not path.is_file():
        raise UsageError(f"{results_dir}: no summary.json (not a results directory)")
    try:
        run = load_summary(results_dir)
    except json.JSONDecodeError as e:
        raise UsageError(f"{path}: not valid JSON ({e.msg}, line {e.lineno})") from None
    except OSError as e:
        raise UsageError(f"{path}: {e.strerror}") from None
    except (TypeError, ValueError, AttributeError, KeyError) as e:
        raise UsageError(f"{path}: not a run summary: {e}") from None
    problem = _shape_problem(run)
    if problem:
        raise UsageError(f"{path}: not a run summary: {problem}")
    return run


def _shape_problem(run: RunSummary) -> str:
    """The first field the comparison relies on that has the wrong type, or ''."""
    if not isinstance(run.kernel, dict):
        return "kernel must be a mapping"
    if not isinstance(run.run_findings, list) or \
            not all(isinstance(f, dict) for f in run.run_findings):
        return "run_findings must be a list of mappings"
    for i, t in enumerate(run.tests):
        if not isinstance(t.id, str) or not t.id:
            return f"tests[{i}].id must be text"
        if isinstance(t.duration_s, bool) or not isinstance(t.duration_s, (int, float)):
            return f"tests[{i}].duration_s must be a number"
        if not isinstance(t.kernel_findings, list) or \
                not all(isinstance(f, dict) for f in t.kernel_findings):
            return f"tests[{i}].kernel_findings must be a list of mappings"
        for name in ("message", "expected", "observed"):
            if not isinstance(getattr(t, name), str):
                return f"tests[{i}].{name} must be text"
        if t.known_issue is not None and not isinstance(t.known_issue, dict):
            return f"tests[{i}].known_issue must be a mapping"
    return ""


def compare_dirs(baseline_dir: Path, patched_dir: Path) -> Comparison:
    return compare_runs(load_run(baseline_dir), load_run(patched_dir),
                        str(baseline_dir), str(patched_dir))


# -- markdown --------------------------------------------------------------------------------
def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _code(text: str) -> str:
    """Inline code that survives backticks in the text."""
    text = " ".join(str(text).split())
    fence = "``" if "`" in text else "`"
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else ""


def _counts_text(run: RunSummary) -> str:
    counts = ", ".join(f"{n} {o}" for o, n in run.counts().items() if n)
    return f"{_plural(len(run.tests), 'test')}" + (f" ({counts})" if counts else "")


def _kernel_text(run: RunSummary) -> str:
    k = run.kernel
    patches = k.get("patches") or []
    count = {0: "no patches", 1: "1 patch"}.get(len(patches), f"{len(patches)} patches")
    return f"{k.get('release') or '?'} ({k.get('source') or '?'}), {count}"


def _outcome_text(t: TestRecord) -> str:
    if t.outcome in ("known_failure", "fixed") and _known_title(t):
        return f"{t.outcome} ({_known_title(t)})"
    return t.outcome


def _failure_text(t: TestRecord) -> str:
    """What went wrong, in one line: the first finding and the first message line."""
    parts = []
    if t.kernel_findings:
        parts.append(f"[{t.kernel_findings[0].get('title', '?')}]")
    if t.message:
        parts.append(_first_line(t.message))
    return " ".join(parts)


def _change_line(c: OutcomeChange) -> str:
    after = c.after.outcome if _known_title(c.after) == _known_title(c.before) \
        else _outcome_text(c.after)
    line = f"- {_code(c.id)}: {_outcome_text(c.before)} → {after}"
    if c.why:
        line += f" ({c.why})"
    detail = _failure_text(c.after) if c.after.outcome not in GOOD_OUTCOMES else ""
    return f"{line}: {detail}" if detail else line


def _where_text(where: list[str]) -> str:
    shown = ", ".join(_code(w) if w != OUTSIDE_TESTS else w for w in where[:3])
    return shown + (f" and {len(where) - 3} more" if len(where) > 3 else "")


def markdown(comp: Comparison) -> str:
    b, p = comp.baseline, comp.patched
    lines = [f"## nvdimm-harness compare: {comp.headline()}", ""]
    for label, name, run in (("baseline", comp.baseline_label, b),
                             ("patched", comp.patched_label, p)):
        lines.append(f"- {label} {_code(name)}: kernel {_kernel_text(run)}; "
                     f"{_counts_text(run)}; verdict {run.verdict().upper()}")
        for subject in run.kernel.get("patches") or []:
            lines.append(f"  - {subject}")
    for label, run in (("baseline", b), ("patched", p)):
        if run.infra_error:
            lines += ["", f"**The {label} run did not complete:** "
                      f"{_first_line(run.infra_error)}"]

    def section(title: str, body: list[str]) -> None:
        if body:
            lines.extend(["", f"### {title}", *body])

    section("Regressions", [_change_line(c) for c in comp.regressions])
    section("New kernel findings", [f"- {f.kind}: {f.title} — in {_where_text(f.where)}"
                                    for f in comp.new_findings])
    section("Fixed", [_change_line(c) for c in comp.fixed])
    section("Kernel findings gone", [f"- {f.kind}: {f.title} — was in {_where_text(f.where)}"
                                     for f in comp.gone_findings])
    behaviour = []
    for c in comp.behaviour_changes:
        behaviour.append(f"- {_code(c.id)} ({c.after.outcome})")
        for label, t in (("baseline", c.before), ("patched", c.after)):
            behaviour.append(f"  - {label}: expected {_code(t.expected or '-')}, "
                             f"observed {_code(t.observed or '-')}")
    section("Behaviour changes (same outcome, the kernel answered differently)", behaviour)
    section("Other outcome changes", [_change_line(c) for c in comp.other_changes])
    section("New tests", _test_list(comp.new_tests, "not in the baseline run",
                                    lambda t: f"- {_code(t.id)}: {t.outcome}"))
    section("Removed tests", _test_list(comp.removed_tests, "not in the patched run",
                                        lambda t: f"- {_code(t.id)} (was {t.outcome})"))
    durations = [f"- {_code(d.id)}: {d.before_s:.1f}s → {d.after_s:.1f}s "
                 f"({d.delta_s:+.1f}s{_percent(d)})" for d in comp.duration_changes]
    if comp.duration_changes_total > len(comp.duration_changes):
        durations.append(f"- … and {comp.duration_changes_total - len(comp.duration_changes)}"
                         " more")
    section(f"Duration changes (more than {NOISE_RATIO:.0%} and {NOISE_S:.0f}s)", durations)
    if not (comp.regressions or comp.new_findings or comp.fixed or comp.gone_findings
            or comp.behaviour_changes or comp.other_changes or comp.new_tests
            or comp.removed_tests or comp.duration_changes):
        lines += ["", "No differences."]
    return "\n".join(lines) + "\n"


# Comparing a `-k` subset with a full run makes every other test "removed": past this many,
# say how many and of which outcomes, and list only the first few.
LIST_LIMIT = 20
LIST_HEAD = 10


def _test_list(tests: list[TestRecord], where: str, line) -> list[str]:
    if len(tests) <= LIST_LIMIT:
        return [line(t) for t in tests]
    counts = Counter(t.outcome for t in tests)
    by_outcome = ", ".join(f"{n} {o}" for o, n in sorted(counts.items()))
    return [f"{len(tests)} tests {where} ({by_outcome}); a `-k` subset compared with a "
            "full run? The first ones:", *[line(t) for t in tests[:LIST_HEAD]],
            f"- … and {len(tests) - LIST_HEAD} more (all of them in the HTML report)"]


def _percent(d: DurationChange) -> str:
    return f", {d.delta_s / d.before_s:+.0%}" if d.before_s > 0 else ""


# -- HTML ------------------------------------------------------------------------------------
_CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222}
.banner{padding:.8em 1em;font-size:1.4em;font-weight:600;border-radius:4px;color:#fff}
.regressed{background:#c62828}.clean{background:#2e7d32}
table{border-collapse:collapse;margin-top:.5em;width:100%}
td,th{border-bottom:1px solid #ddd;padding:.3em .5em;text-align:left;vertical-align:top}
.o-passed{color:#2e7d32}.o-failed,.o-crashed,.o-timeout,.o-error{color:#c62828;font-weight:600}
.o-known_failure,.o-fixed{color:#ef6c00;font-weight:600}.o-skipped{color:#777}
h2{margin-top:1.5em}code{background:#f6f6f6;padding:0 .2em}
.warn{color:#c62828;font-weight:600}
"""


def report_html(comp: Comparison) -> str:
    e = html.escape
    b, p = comp.baseline, comp.patched

    def outcome(t: TestRecord) -> str:
        return f"<span class='o-{e(t.outcome)}'>{e(_outcome_text(t))}</span>"

    def table(head: list[str], rows: list[list[str]]) -> str:
        return ("<table><tr>" + "".join(f"<th>{e(h)}</th>" for h in head) + "</tr>"
                + "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows)
                + "</table>")

    def changes(cs: list[OutcomeChange]) -> str:
        return table(["test", "baseline", "patched", "why / what"], [
            [f"<code>{e(c.id)}</code>", outcome(c.before), outcome(c.after),
             e(" — ".join(x for x in (c.why, _failure_text(c.after)
                                      if c.after.outcome not in GOOD_OUTCOMES else "") if x))]
            for c in cs])

    def findings(fs: list[FindingChange]) -> str:
        return table(["kind", "title", "where"], [
            [e(f.kind), e(f.title), "<br>".join(e(w) for w in f.where)] for f in fs])

    def run_rows(label: str, name: str, run: RunSummary) -> list[str]:
        patches = "".join(f"<li>{e(str(s))}</li>" for s in run.kernel.get("patches") or [])
        return [e(label), f"<code>{e(name)}</code><br>{e(run.run_id)}",
                e(_kernel_text(run)) + (f"<ul>{patches}</ul>" if patches else ""),
                e(_counts_text(run)), e(run.verdict().upper())]

    sections = []

    def section(title: str, body: str, present: bool) -> None:
        if present:
            sections.append(f"<h2>{e(title)}</h2>{body}")

    for label, run in (("baseline", b), ("patched", p)):
        if run.infra_error:
            sections.append(f"<p class='warn'>The {e(label)} run did not complete:</p>"
                            f"<pre>{e(run.infra_error)}</pre>")
    section("Regressions", changes(comp.regressions), bool(comp.regressions))
    section("New kernel findings", findings(comp.new_findings), bool(comp.new_findings))
    section("Fixed", changes(comp.fixed), bool(comp.fixed))
    section("Kernel findings gone", findings(comp.gone_findings), bool(comp.gone_findings))
    section("Behaviour changes (same outcome, the kernel answered differently)", table(
        ["test", "outcome", "baseline expected / observed", "patched expected / observed"],
        [[f"<code>{e(c.id)}</code>", outcome(c.after),
          f"{e(c.before.expected or '-')}<br><b>{e(c.before.observed or '-')}</b>",
          f"{e(c.after.expected or '-')}<br><b>{e(c.after.observed or '-')}</b>"]
         for c in comp.behaviour_changes]), bool(comp.behaviour_changes))
    section("Other outcome changes", changes(comp.other_changes), bool(comp.other_changes))
    section("New tests", table(["test", "outcome"], [
        [f"<code>{e(t.id)}</code>", outcome(t)] for t in comp.new_tests]), bool(comp.new_tests))
    section("Removed tests", table(["test", "baseline outcome"], [
        [f"<code>{e(t.id)}</code>", outcome(t)] for t in comp.removed_tests]),
        bool(comp.removed_tests))
    more = comp.duration_changes_total - len(comp.duration_changes)
    section(f"Duration changes (more than {NOISE_RATIO:.0%} and {NOISE_S:.0f}s)", table(
        ["test", "baseline", "patched", "change"],
        [[f"<code>{e(d.id)}</code>", f"{d.before_s:.1f}s", f"{d.after_s:.1f}s",
          e(f"{d.delta_s:+.1f}s{_percent(d)}")] for d in comp.duration_changes])
        + (f"<p>… and {more} more</p>" if more > 0 else ""), bool(comp.duration_changes))
    if not sections:
        sections.append("<p>No differences.</p>")
    status = "regressed" if comp.regressed() else "clean"
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>nvdimm-harness compare {e(b.run_id)} vs {e(p.run_id)}</title>
<style>{_CSS}</style></head><body>
<div class="banner {status}">{e(comp.headline())}</div>
{table(["run", "results", "kernel", "tests", "verdict"],
       [run_rows("baseline", comp.baseline_label, b),
        run_rows("patched", comp.patched_label, p)])}
{"".join(sections)}
</body></html>
"""
