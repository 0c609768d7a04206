"""The results of a run: the model behind summary.json and the writers of the other reports.

Layout (DESIGN.md): results/<run-id>/{summary.json, junit.xml, report.html, summary.md,
console.log, tests/<test-id>/...}. Writers are pure (summary in, text out) so they are unit
tested and `nvdimm-harness report DIR` can rewrite them from summary.json alone.
"""

from __future__ import annotations

import html
import json
import os
import re
import secrets
import time
import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .errors import EXIT_INFRA, EXIT_OK, EXIT_TEST_FAILED

OUTCOMES = ("passed", "failed", "error", "skipped", "crashed", "timeout", "known_failure",
            "fixed")
FAILING_OUTCOMES = frozenset({"failed", "error", "crashed", "timeout"})
# Known kernel bugs and bugs that no longer reproduce are shown before everything else.
FIRST_OUTCOMES = ("known_failure", "fixed")


@dataclass
class TestRecord:

    __test__ = False  # not a pytest test class
    id: str
    outcome: str
    duration_s: float = 0.0
    message: str = ""
    kernel_findings: list[dict[str, Any]] = field(default_factory=list)
    artifacts: list[str] = field(default_factory=list)
    expected: str = ""
    observed: str = ""
    trace_counts: dict[str, int] = field(default_factory=dict)
    known_issue: dict[str, str] | None = None

    def __post_init__(self) -> None:
        if self.outcome not in OUTCOMES:
            raise ValueError(f"unknown outcome {self.outcome!r}")


@dataclass
class RunSummary:
    run_id: str
    started: str
    duration_s: float = 0.0
    host: dict[str, Any] = field(default_factory=dict)
    qemu: dict[str, Any] = field(default_factory=dict)
    kernel: dict[str, Any] = field(default_factory=dict)
    profile: dict[str, Any] = field(default_factory=dict)
    tests: list[TestRecord] = field(default_factory=list)
    # Findings in the kernel log outside any test (boot, between tests): they fail the run.
    run_findings: list[dict[str, Any]] = field(default_factory=list)
    # Set when the machinery failed (guest never booted, QEMU died): exit 3.
    infra_error: str = ""
    boot: dict[str, Any] = field(default_factory=dict)

    def counts(self) -> dict[str, int]:
        c = dict.fromkeys(OUTCOMES, 0)
        for t in self.tests:
            c[t.outcome] += 1
        return c

    def verdict(self) -> str:
        if self.infra_error:
            return "error"
        if self.run_findings or any(t.outcome in FAILING_OUTCOMES for t in self.tests):
            return "failed"
        return "passed"

    def exit_code(self) -> int:
        return {"error": EXIT_INFRA, "failed": EXIT_TEST_FAILED}.get(self.verdict(), EXIT_OK)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["verdict"] = self.verdict()
        data["counts"] = self.counts()
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RunSummary:
        known = {f for f in cls.__dataclass_fields__}
        fields = {k: v for k, v in data.items() if k in known}
        test_fields = set(TestRecord.__dataclass_fields__)
        fields["tests"] = [TestRecord(**{k: v for k, v in t.items() if k in test_fields})
                           for t in data.get("tests", [])]
        return cls(**fields)


def new_run_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(2)


def result_dir_name(test_id: str) -> str:
    """A file-system-safe directory name for a pytest node id."""
    name = test_id.split("::", 1)[-1] if "::" in test_id else test_id
    return re.sub(r"[^A-Za-z0-9_.=+-]+", "_", name).strip("_")[:180] or "test"


def ordered_tests(run: RunSummary) -> list[TestRecord]:
    """Known kernel bugs and fixed ones first, then failures, then the rest, stable."""
    def rank(t: TestRecord) -> int:
        if t.outcome in FIRST_OUTCOMES:
            return 0
        return 1 if t.outcome in FAILING_OUTCOMES else 2
    return sorted(run.tests, key=rank)


# -- summary.json ----------------------------------------------------------------------------
def write_json_atomic(path: Path, data: Any) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")
    os.replace(tmp, path)


def load_summary(results_dir: Path) -> RunSummary:
    return RunSummary.from_json(json.loads((results_dir / "summary.json").read_text()))


# -- junit.xml -------------------------------------------------------------------------------
def _strip_control(text: str) -> str:
    # XML 1.0 forbids most control characters; kernel logs are full of them.
    return re.sub(r"[\x00-\x08\x0b\x0c\x0e-\x1f]", "", text)


def junit_xml(run: RunSummary, excerpt_chars: int = 8000) -> str:
    counts = run.counts()
    failures = counts["failed"] + counts["crashed"] + counts["timeout"]
    suite = ET.Element("testsuite", {
        "name": "nvdimm-harness",
        "tests": str(len(run.tests)),
        "failures": str(failures),
        "errors": str(counts["error"]),
        "skipped": str(counts["skipped"]),
        "time": f"{run.duration_s:.3f}",
        "timestamp": run.started,
        "hostname": str(run.host.get("hostname", "")),
    })
    props = ET.SubElement(suite, "properties")
    for name, value in (("kernel.release", run.kernel.get("release", "")),
                        ("kernel.source", run.kernel.get("source", "")),
                        ("qemu.version", run.qemu.get("version", "")),
                        ("qemu.accel", run.qemu.get("accel", ""))):
        ET.SubElement(props, "property", {"name": name, "value": str(value)})
    for t in run.tests:
        module, _, name = t.id.rpartition("::")
        classname = module.replace("/", ".").removesuffix(".py") or "nvdimm-harness"
        case = ET.SubElement(suite, "testcase", {"classname": classname, "name": name or t.id,
                                                  "time": f"{t.duration_s:.3f}"})
        message = _strip_control(t.message.splitlines()[0] if t.message else t.outcome)
        body = _strip_control(_failure_body(t))[-excerpt_chars:]
        if t.outcome in ("failed", "crashed", "timeout"):
            el = ET.SubElement(case, "failure", {"message": message, "type": t.outcome})
            el.text = body
        elif t.outcome == "error":
            el = ET.SubElement(case, "error", {"message": message, "type": "error"})
            el.text = body
        elif t.outcome == "skipped":
            ET.SubElement(case, "skipped", {"message": message})
        if t.outcome in FIRST_OUTCOMES:
            out = ET.SubElement(case, "system-out")
            out.text = _strip_control(f"{t.outcome}: {_known_issue_line(t)}\n{t.message}")
    if run.infra_error or run.run_findings:
        case = ET.SubElement(suite, "testcase", {"classname": "nvdimm-harness",
                                                  "name": "run", "time": "0"})
        kind = "error" if run.infra_error else "failure"
        text = run.infra_error or "\n".join(f"{f['kind']}: {f['title']}"
                                            for f in run.run_findings)
        el = ET.SubElement(case, kind, {"message": _strip_control(text.splitlines()[0]),
                                        "type": "run"})
        el.text = _strip_control(text)
        suite.set("tests", str(len(run.tests) + 1))
    ET.indent(suite)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suite, encoding="unicode") \
        + "\n"


def _failure_body(t: TestRecord) -> str:
    parts = [t.message]
    if t.expected or t.observed:
        parts.append(f"expected: {t.expected}\nobserved: {t.observed}")
    if t.kernel_findings:
        parts.append("kernel findings:\n" + "\n".join(
            f"  {f['kind']}: {f['title']}" for f in t.kernel_findings))
    return "\n\n".join(p for p in parts if p)


def _known_issue_line(t: TestRecord) -> str:
    k = t.known_issue or {}
    return " ".join(x for x in (k.get("title", ""), f"({k['reference']})"
                                if k.get("reference") else "") if x)


# -- summary.md ------------------------------------------------------------------------------
def markdown(run: RunSummary) -> str:
    c = run.counts()
    k = run.kernel
    lines = [
        f"## nvdimm-harness: {run.verdict().upper()}",
        "",
        f"- kernel: `{k.get('release', '?')}` ({k.get('source', '?')})"
        + (f", {len(k['patches'])} patches" if k.get("patches") else ""),
        f"- QEMU {run.qemu.get('version', '?')}, accel {run.qemu.get('accel', '?')}",
        f"- {len(run.tests)} tests: " + ", ".join(f"{n} {o}" for o, n in c.items() if n)
        + f" in {run.duration_s:.0f}s",
    ]
    if run.infra_error:
        lines += ["", f"**Infrastructure error:** {run.infra_error.splitlines()[0]}"]
    firsts = [t for t in run.tests if t.outcome in FIRST_OUTCOMES]
    if firsts:
        lines += ["", "### Known kernel bugs"]
        lines += [f"- `{t.id}`: {t.outcome} — {_known_issue_line(t)}" for t in firsts]
    failing = [t for t in run.tests if t.outcome in FAILING_OUTCOMES]
    if failing:
        lines += ["", "### Failures"]
        for t in failing:
            first = t.message.splitlines()[0] if t.message else ""
            finding = f" [{t.kernel_findings[0]['title']}]" if t.kernel_findings else ""
            lines.append(f"- `{t.id}`: {t.outcome}{finding} {first}".rstrip())
    if run.run_findings:
        lines += ["", "### Kernel findings outside tests"]
        lines += [f"- {f['kind']}: {f['title']}" for f in run.run_findings]
    return "\n".join(lines) + "\n"


# -- report.html -----------------------------------------------------------------------------
_CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222}
.banner{padding:.8em 1em;font-size:1.4em;font-weight:600;border-radius:4px;color:#fff}
.passed{background:#2e7d32}.failed{background:#c62828}.error{background:#6a1b9a}
table{border-collapse:collapse;margin-top:1em;width:100%}
td,th{border-bottom:1px solid #ddd;padding:.3em .5em;text-align:left;vertical-align:top}
.o-passed{color:#2e7d32}.o-failed,.o-crashed,.o-timeout,.o-error{color:#c62828;font-weight:600}
.o-known_failure,.o-fixed{color:#ef6c00;font-weight:600}.o-skipped{color:#777}
pre{background:#f6f6f6;padding:.5em;overflow-x:auto;max-height:30em;font-size:12px}
dl{display:grid;grid-template-columns:max-content auto;gap:.2em 1em}dt{font-weight:600}
"""


def report_html(run: RunSummary) -> str:
    e = html.escape
    k = run.kernel
    c = run.counts()
    rows = []
    for t in ordered_tests(run):
        first = t.kernel_findings[0]["title"] if t.kernel_findings else ""
        detail = ""
        if t.outcome not in ("passed", "skipped") or t.message:
            body = [f"<pre>{e(t.message)}</pre>" if t.message else ""]
            if t.expected or t.observed:
                body.append(f"<dl><dt>expected</dt><dd>{e(t.expected)}</dd>"
                            f"<dt>observed</dt><dd>{e(t.observed)}</dd></dl>")
            if t.known_issue:
                body.append(f"<p>known kernel bug: {e(_known_issue_line(t))}</p>")
            if t.trace_counts:
                body.append("<p>trace events: " + ", ".join(
                    f"{e(n)}={v}" for n, v in sorted(t.trace_counts.items())) + "</p>")
            for a in t.artifacts:
                body.append(f'<a href="{e(a)}">{e(a)}</a> ')
            is_open = " open" if t.outcome in FAILING_OUTCOMES else ""
            detail = f"<details{is_open}><summary>details</summary>{''.join(body)}</details>"
        rows.append(
            f"<tr><td>{e(t.id)}{detail}</td><td class='o-{e(t.outcome)}'>{e(t.outcome)}</td>"
            f"<td>{t.duration_s:.1f}s</td><td>{e(first)}</td></tr>"
        )
    infra = f"<h2>Infrastructure error</h2><pre>{e(run.infra_error)}</pre>" \
        if run.infra_error else ""
    findings = ""
    if run.run_findings:
        findings = "<h2>Kernel findings outside tests</h2><ul>" + "".join(
            f"<li>{e(f['kind'])}: {e(f['title'])}</li>" for f in run.run_findings) + "</ul>"
    patches = "".join(f"<li>{e(p)}</li>" for p in k.get("patches", []))
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>nvdimm-harness {e(run.run_id)}</title>
<style>{_CSS}</style></head><body>
<div class="banner {e(run.verdict())}">{e(run.verdict().upper())}: {len(run.tests)} tests,
{", ".join(f"{n} {e(o)}" for o, n in c.items() if n)}</div>
<dl>
<dt>run</dt><dd>{e(run.run_id)}, started {e(run.started)}, {run.duration_s:.0f}s</dd>
<dt>kernel</dt><dd>{e(str(k.get("release", "?")))} ({e(str(k.get("source", "?")))})
 config {e(str(k.get("config_hash") or "-"))}</dd>
<dt>QEMU</dt><dd>{e(str(run.qemu.get("version", "?")))}, accel
 {e(str(run.qemu.get("accel", "?")))} — {e(str(run.qemu.get("accel_reason", "")))}</dd>
<dt>profile</dt><dd>{e(str(run.profile.get("name", "?")))}</dd>
<dt>console</dt><dd><a href="console.log">console.log</a></dd>
</dl>
{f"<h3>Patches</h3><ul>{patches}</ul>" if patches else ""}
{infra}{findings}
<table><tr><th>test</th><th>outcome</th><th>duration</th><th>first finding</th></tr>
{"".join(rows)}
</table></body></html>
"""


def write_reports(run: RunSummary, results_dir: Path) -> None:
    results_dir.mkdir(parents=True, exist_ok=True)
    write_json_atomic(results_dir / "summary.json", run.to_json())
    for name, text in (("junit.xml", junit_xml(run)), ("summary.md", markdown(run)),
                       ("report.html", report_html(run))):
        tmp = results_dir / f".{name}.tmp{os.getpid()}"
        tmp.write_text(text)
        os.replace(tmp, results_dir / name)
