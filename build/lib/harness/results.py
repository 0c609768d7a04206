"""The results of a run: the model behind summary.json and the writers of the other reports.

Layout (DESIGN.md): results/<run-id>/{summary.json, junit.xml, report.html, summary.md,
console.log, tests/<test-id>/...}. Writers are pure (summary in, text out) so they are unit
tested and `nvdimm-harness report DIR` can rewrite them from summary.json alone; given the
results directory, junit.xml and report.html also inline each failing test's dmesg.txt.
"""

from __future__ import annotations

import html
import json
import os
import re
import secrets
import time
import xml.etree.ElementTree as ET
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import quote

from . import kmsg
from .errors import EXIT_INFRA, EXIT_OK, EXIT_TEST_FAILED

OUTCOMES = ("passed", "failed", "error", "skipped", "crashed", "timeout", "known_failure",
            "fixed")
FAILING_OUTCOMES = frozenset({"failed", "error", "crashed", "timeout"})
# Known kernel bugs and bugs that no longer reproduce are shown before everything else.
FIRST_OUTCOMES = ("known_failure", "fixed")
# The order counts are printed in: what needs attention first.
COUNT_ORDER = ("failed", "crashed", "timeout", "error", "known_failure", "fixed", "passed",
               "skipped")


@dataclass
class TestRecord:

    __test__ = False  # not a pytest test class
    # Keys of a summary.json record this version does not know (a newer harness, `merge`):
    # kept so that `nvdimm-harness report DIR` does not drop them when it rewrites the file.
    _extra: ClassVar[dict[str, Any]] = {}
    id: str
    outcome: str
    duration_s: float = 0.0
    message: str = ""
    kernel_findings: list[dict[str, Any]] = field(default_factory=list)
    artifacts: list[str] = field(default_factory=list)
    expected: str = ""
    observed: str = ""
    trace_counts: dict[str, int] = field(default_factory=dict)
    known_issue: dict[str, Any] | None = None
    # Every expectation the test compared (harness/checks.py Check.to_json()), any outcome.
    checks: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.outcome not in OUTCOMES:
            raise ValueError(f"unknown outcome {self.outcome!r}")


@dataclass
class RunSummary:
    _extra: ClassVar[dict[str, Any]] = {}  # as TestRecord._extra
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
    # "K/N" when this run is one shard of the suite (--shard), else "".
    shard: str = ""
    # Set by `nvdimm-harness merge` and --jobs: the runs joined into this one (harness/merge.py).
    merge: dict[str, Any] = field(default_factory=dict)
    # ndctl-test: the upstream suite that ran (source, version, suite), else empty.
    upstream: dict[str, Any] = field(default_factory=dict)

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
        for record, out in zip(self.tests, data["tests"], strict=True):
            for k, v in record._extra.items():
                out.setdefault(k, v)
        for k, v in self._extra.items():
            data.setdefault(k, v)
        data["verdict"] = self.verdict()
        data["counts"] = self.counts()
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RunSummary:
        known = set(cls.__dataclass_fields__)
        fields = {k: v for k, v in data.items() if k in known}
        test_fields = set(TestRecord.__dataclass_fields__)
        tests = []
        for t in data.get("tests", []):
            record = TestRecord(**{k: v for k, v in t.items() if k in test_fields})
            record._extra = {k: v for k, v in t.items() if k not in test_fields}
            tests.append(record)
        fields["tests"] = tests
        run = cls(**fields)
        # verdict and counts are derived: recomputed on every write.
        run._extra = {k: v for k, v in data.items()
                      if k not in known and k not in ("verdict", "counts")}
        return run


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
    try:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)  # a full disk leaves the old file, never half a new one
        raise


def load_summary(results_dir: Path) -> RunSummary:
    return RunSummary.from_json(json.loads((results_dir / "summary.json").read_text()))


# -- text from kernel logs -------------------------------------------------------------------
_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b[@-Z\\-_]")
# XML 1.0 allows no C0 control but \t \n \r, no lone surrogate (json.loads makes them from
# "\ud800") and not U+FFFE/U+FFFF; DEL and C1 are legal but only noise from a serial line.
# \r goes too: the console writes \r\n.
_UNPRINTABLE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")


def clean_text(text: str) -> str:
    """Text safe for XML 1.0, HTML and a terminal: no escape sequences or control bytes."""
    return _UNPRINTABLE.sub("", _ANSI.sub("", text))


def _first_line(text: str, limit: int = 300) -> str:
    line = clean_text(text).strip().split("\n", 1)[0].strip()
    return line if len(line) <= limit else line[:limit - 1] + "…"


DMESG_HTML_LINES = 200   # per failing test in report.html
DMESG_JUNIT_LINES = 80   # per failing test in junit.xml
_DMESG_CONTEXT = 20      # lines kept before the first finding when the excerpt starts there
_DMESG_LINE_CHARS = 400


@dataclass(frozen=True)
class LogExcerpt:
    """A bounded piece of a test's dmesg.txt: the first finding with some context before it,
    or the tail (a timeout's sysrq-w dump, a panic's last words)."""

    path: str               # relative to the results directory
    lines: list[str]        # cleaned, long lines cut
    first: int              # 1-based line number of lines[0] in the file
    total: int              # lines in the file
    marked: frozenset[int]  # 1-based line numbers of finding headers inside the excerpt

    def text(self) -> str:
        return "\n".join(self.lines)


def dmesg_path(t: TestRecord) -> str:
    for a in t.artifacts:
        if a == "dmesg.txt" or a.endswith("/dmesg.txt"):
            return a
    return f"tests/{result_dir_name(t.id)}/dmesg.txt"


def dmesg_excerpt(results_dir: Path, t: TestRecord, max_lines: int) -> LogExcerpt | None:
    rel = dmesg_path(t)
    base = results_dir.resolve()
    path = (base / rel).resolve()
    if not path.is_relative_to(base):  # a hand-edited summary.json must not read /etc
        return None
    try:
        raw = path.read_bytes()
    except OSError:
        return None
    # Line numbers as the scanner counts them (kmsg: text.split("\n")); kernel logs carry
    # invalid UTF-8 and control characters.
    lines = clean_text(raw.decode("utf-8", errors="replace")).split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    total = len(lines)
    marked = {f["line"] for f in t.kernel_findings
              if isinstance(f.get("line"), int) and 0 < f["line"] <= total}
    if not marked and t.kernel_findings:
        # An older summary.json: its findings carry no line numbers, the scanner finds them.
        marked = {f.line for f in kmsg.scan_kernel_log("\n".join(lines))}
    start = max(0, total - max_lines)
    if marked and min(marked) - 1 < start:
        start = max(0, min(marked) - 1 - _DMESG_CONTEXT)
    window = [line if len(line) <= _DMESG_LINE_CHARS else line[:_DMESG_LINE_CHARS] + "…"
              for line in lines[start:start + max_lines]]
    return LogExcerpt(rel, window, start + 1, total,
                      frozenset(n for n in marked if start < n <= start + len(window)))


def _excerpt_heading(x: LogExcerpt) -> str:
    if not x.lines:
        return f"{x.path}: empty"
    last = x.first + len(x.lines) - 1
    if x.first == 1 and last == x.total:
        return f"{x.path} ({x.total} lines)"
    return f"{x.path}, lines {x.first}-{last} of {x.total}"


def _findings_line(f: dict[str, Any]) -> str:
    line = f" (line {f['line']})" if isinstance(f.get("line"), int) else ""
    # file:line of the faulting code, when the kernel was built with debuginfo (symbolize)
    location = f" at {f['location']}" if f.get("location") else ""
    source = f" [{f['source']}]" if f.get("source") else ""  # a merged run: which input
    return f"{f.get('kind', '?')}: {f.get('title', '')}{location}{line}{source}"


def _duration(seconds: float) -> str:
    if seconds < 100:
        return f"{seconds:.1f}s"
    s = round(seconds)
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


def _counts_text(run: RunSummary) -> str:
    c = run.counts()
    return ", ".join(f"{c[o]} {o}" for o in COUNT_ORDER if c[o])


# -- junit.xml -------------------------------------------------------------------------------
def junit_names(test_id: str) -> tuple[str, str]:
    """(classname, name) as pytest's junitxml makes them: testcases.test_pin, test_pin[x]."""
    base, bracket, params = test_id.partition("[")  # parameters may contain "::"
    parts = base.split("::")
    if len(parts) == 1:
        # ndctl's upstream tests (ndctl/<suite>/<name>): their suite is the class
        suite, slash, name = test_id.rpartition("/")
        return (suite.replace("/", "."), name) if slash else ("nvdimm-harness", test_id)
    module = parts[0].removesuffix(".py").replace("/", ".")
    return ".".join([module, *parts[1:-1]]), parts[-1] + bracket + params


def junit_xml(run: RunSummary, excerpt_chars: int = 8000,
              results_dir: Path | None = None) -> str:
    """JUnit XML as GitLab's junit report and the GitHub junit actions read it:
    testsuites/testsuite/testcase(classname, name, time), failure/error/skipped with a
    message, the test's dmesg excerpt in system-out (when results_dir is given)."""
    totals = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    suites = ET.Element("testsuites", {"name": "nvdimm-harness"})
    suite = ET.SubElement(suites, "testsuite", {
        "name": "nvdimm-harness", "time": f"{run.duration_s:.3f}",
        "timestamp": clean_text(run.started),
        "hostname": clean_text(str(run.host.get("hostname", ""))),
    })
    props = ET.SubElement(suite, "properties")
    for name, value in (("kernel.release", run.kernel.get("release", "")),
                        ("kernel.source", run.kernel.get("source", "")),
                        ("kernel.config_hash", run.kernel.get("config_hash", "")),
                        ("kernel.patches", len(run.kernel.get("patches") or [])),
                        ("qemu.version", run.qemu.get("version", "")),
                        ("qemu.accel", run.qemu.get("accel", "")),
                        ("verdict", run.verdict())):
        ET.SubElement(props, "property", {"name": name, "value": clean_text(str(value or ""))})

    def dmesg_out(case: ET.Element, t: TestRecord) -> None:
        x = dmesg_excerpt(results_dir, t, DMESG_JUNIT_LINES) if results_dir else None
        if x is None or not x.lines:
            return
        text = x.text()
        # Keep the finding when the excerpt starts at it, else the end of the log.
        text = text[:excerpt_chars] if x.marked and min(x.marked) <= x.first + _DMESG_CONTEXT \
            else text[-excerpt_chars:]
        ET.SubElement(case, "system-out").text = f"{_excerpt_heading(x)}:\n{text}\n"

    for t in run.tests:
        classname, name = junit_names(t.id)
        case = ET.SubElement(suite, "testcase", {"classname": clean_text(classname),
                                                  "name": clean_text(name),
                                                  "time": f"{t.duration_s:.3f}"})
        totals["tests"] += 1
        message = _first_line(t.message) or t.outcome
        if t.outcome in FIRST_OUTCOMES:
            k = t.known_issue or {}
            cprops = ET.SubElement(case, "properties")
            for pname, value in (("outcome", t.outcome),
                                 ("known_issue.title", k.get("title", "")),
                                 ("known_issue.reference", k.get("reference", ""))):
                ET.SubElement(cprops, "property", {"name": pname,
                                                   "value": clean_text(str(value))})
        if t.outcome in ("failed", "crashed", "timeout", "error"):
            kind = "error" if t.outcome == "error" else "failure"
            totals["errors" if kind == "error" else "failures"] += 1
            el = ET.SubElement(case, kind, {"message": message, "type": t.outcome})
            el.text = clean_text(_failure_body(t))[:excerpt_chars]
            dmesg_out(case, t)
        elif t.outcome == "skipped":
            totals["skipped"] += 1
            ET.SubElement(case, "skipped", {"message": message})
        elif t.outcome == "known_failure":
            # Skipped, not passed: the run exits 0 on a known kernel bug, so junit consumers
            # (GitLab, the GitHub junit actions) must not count it as a failure, and none of
            # them fails a pipeline on <skipped>; unlike a pass it stays visible, with the
            # bug's title as the skip reason. pytest's junitxml writes xfail the same way.
            totals["skipped"] += 1
            el = ET.SubElement(case, "skipped", {
                "type": "known_failure",
                "message": _first_line(f"known kernel bug: {_known_issue_line(t)}", 500)})
            el.text = clean_text(_failure_body(t))[:excerpt_chars]
            dmesg_out(case, t)
        elif t.outcome == "fixed":
            # A pass: the known bug did not reproduce (the properties say which).
            ET.SubElement(case, "system-out").text = clean_text(
                f"fixed: known kernel bug no longer reproduces: {_known_issue_line(t)}\n")
    if run.infra_error or run.run_findings:
        case = ET.SubElement(suite, "testcase", {"classname": "nvdimm-harness",
                                                  "name": "run", "time": "0.000"})
        totals["tests"] += 1
        kind = "error" if run.infra_error else "failure"
        totals["errors" if kind == "error" else "failures"] += 1
        findings = [_findings_line(f) + " in console.log" for f in run.run_findings]
        text = "\n".join(x for x in (run.infra_error, "\n".join(findings)) if x)
        el = ET.SubElement(case, kind, {"message": _first_line(text, 500), "type": "run"})
        el.text = clean_text(text)[:excerpt_chars]
    for el in (suites, suite):
        for k, v in totals.items():
            el.set(k, str(v))
    suites.set("time", f"{run.duration_s:.3f}")
    ET.indent(suites)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suites, encoding="unicode") \
        + "\n"


def failed_checks(t: TestRecord) -> list[dict[str, Any]]:
    return [c for c in t.checks if not c.get("ok")]


def _checks_text(t: TestRecord) -> str:
    """The checks that did not hold, with their source, and how many held."""
    bad = failed_checks(t)
    if not t.checks:
        return ""
    lines = [f"checks: {len(t.checks) - len(bad)} of {len(t.checks)} held"]
    for c in bad:
        lines.append(f"  FAILED {c.get('name')}: expected {c.get('expected')}, observed "
                     f"{c.get('observed')}" + (f" [{c['source']}]" if c.get("source") else ""))
    return "\n".join(lines)


def _failure_body(t: TestRecord) -> str:
    parts = [t.message, _checks_text(t)]
    if t.expected or t.observed:
        parts.append(f"expected: {t.expected}\nobserved: {t.observed}")
    if t.kernel_findings:
        parts.append("kernel findings (dmesg.txt):\n" + "\n".join(
            f"  {_findings_line(f)}" for f in t.kernel_findings))
    if t.known_issue:
        parts.append(f"known kernel bug: {_known_issue_line(t)}")
    if t.artifacts:
        parts.append("files: " + " ".join([*t.artifacts, "console.log"]))
    return "\n\n".join(p for p in parts if p)


def _known_issue_line(t: TestRecord) -> str:
    k = t.known_issue or {}
    return " ".join(x for x in (k.get("title", ""), f"({k['reference']})"
                                if k.get("reference") else "") if x)


# -- summary.md ------------------------------------------------------------------------------
def markdown(run: RunSummary, max_failures: int = 30) -> str:
    k = run.kernel
    patches = k.get("patches") or []
    config = f", config {str(k['config_hash'])[:12]}" if k.get("config_hash") else ""
    lines = [
        f"## nvdimm-harness: {run.verdict().upper()}",
        "",
        f"- kernel: `{k.get('release') or '?'}` ({k.get('source') or '?'})"
        + (f", {len(patches)} patches" if patches else "") + config,
        f"- QEMU {run.qemu.get('version') or '?'}, accel {run.qemu.get('accel') or '?'}",
        *([f"- ndctl {run.upstream.get('version')} test suite "
           f"`{run.upstream.get('suite')}` from `{run.upstream.get('source')}`"]
          if run.upstream else []),
        f"- {len(run.tests)} tests in {_duration(run.duration_s)}: "
        + (_counts_text(run) or "none ran"),
    ]
    if run.shard:
        lines.append(f"- shard {clean_text(run.shard)} of the suite")
    if run.merge.get("sources"):
        n = len(run.merge["sources"])
        labels = ", ".join(clean_text(str(s.get("label", "?"))) for s in run.merge["sources"])
        lines.append(f"- {n} guests in parallel (--jobs): {labels}"
                     if run.merge.get("kind") == "jobs" else f"- merged from {n} runs: {labels}")
        lines += [f"- **warning:** {clean_text(w)}" for w in run.merge.get("warnings") or []]
    if run.infra_error:
        lines += ["", f"**Infrastructure error:** {_first_line(run.infra_error)}"]
    if run.run_findings:
        lines += ["", "**Kernel findings outside tests** (console.log):"]
        lines += [f"- {clean_text(_findings_line(f))}" for f in run.run_findings]
    firsts = [t for t in run.tests if t.outcome in FIRST_OUTCOMES]
    if firsts:
        lines += ["", "### Known kernel bugs"]
        for t in firsts:
            title = (t.known_issue or {}).get("title", "")
            ref = _first_line((t.known_issue or {}).get("reference", ""), 160)
            lines.append(f"- `{t.id}`: {t.outcome} — {clean_text(title)}"
                         + (f" ({ref})" if ref else ""))
    failing = [t for t in run.tests if t.outcome in FAILING_OUTCOMES]
    if failing:
        lines += ["", "### Failures"]
        for t in failing[:max_failures]:
            f = t.kernel_findings[0] if t.kernel_findings else {}
            where = f", {f['location']}" if f.get("location") else ""
            finding = f" [{clean_text(f.get('title', '') + where)}]" if f else ""
            lines.append(f"- `{t.id}`: {t.outcome}{finding} {_first_line(t.message, 200)}"
                         .rstrip())
            for c in failed_checks(t)[:5]:
                lines.append(f"  - check {clean_text(str(c.get('name')))}: expected "
                             f"{_first_line(str(c.get('expected')), 160)}, observed "
                             f"{_first_line(str(c.get('observed')), 160)}")
        if len(failing) > max_failures:
            lines.append(f"- … and {len(failing) - max_failures} more (report.html)")
    reasons = Counter(_first_line(t.message.removeprefix("Skipped: "), 200)
                      or "no reason given" for t in run.tests if t.outcome == "skipped")
    if reasons:
        # Never silently: what did not run here, and why (a missing kernel option, no
        # nested virtualization...), one line per reason.
        lines += ["", "### Skipped"]
        lines += [f"- {n} test{'s' if n > 1 else ''}: {clean_text(r)}"
                  for r, n in reasons.items()]
    return "\n".join(lines) + "\n"


# -- report.html -----------------------------------------------------------------------------
# One file, no scripts, no external anything: it is opened from a CI artifact or a mail.
_CSS = """
*{box-sizing:border-box}
body{font:13px/1.4 system-ui,"DejaVu Sans",sans-serif;margin:0;color:#1b1b1b;background:#fff}
main{padding:0 16px 32px}
code,pre,.id,.mono,td.num{font-family:"DejaVu Sans Mono",ui-monospace,Menlo,Consolas,monospace}
code,.mono,.id{font-size:12px}
a{color:#0b57d0}
.banner{display:flex;flex-wrap:wrap;gap:6px 18px;align-items:baseline;padding:10px 16px;
 color:#fff;margin-bottom:12px}
.banner .verdict{font-size:24px;font-weight:700;letter-spacing:.06em}
.banner .counts{font-size:15px;font-weight:600}
.banner .where{font-size:13px;opacity:.9;margin-left:auto}
.v-passed{background:#1e6b2f}.v-failed{background:#b3261e}.v-error{background:#5b2a86}
.alert{border:1px solid #b3261e;border-left:6px solid #b3261e;background:#fdf0ef;
 padding:6px 10px;margin:0 0 12px}
.alert h2{font-size:14px;margin:0 0 4px;color:#b3261e}
.alert ul{margin:0;padding-left:18px}
dl.meta{display:grid;grid-template-columns:max-content 1fr;gap:2px 14px;margin:0 0 14px}
dl.meta dt{color:#555;font-weight:600}dl.meta dd{margin:0}
dl.meta ol{margin:2px 0;padding-left:22px}
.dim{color:#666}
table.tests{border-collapse:collapse;width:100%}
table.tests>*>tr>th{text-align:left;background:#eceff1;padding:4px 6px;font-weight:600;
 border-bottom:1px solid #b0bec5}
table.tests>*>tr>td{padding:2px 6px;border-bottom:1px solid #e4e7ea;vertical-align:top}
table.tests tr.group th{background:#fff;color:#37474f;font-size:12px;padding-top:12px;
 border-bottom:2px solid #90a4ae;text-transform:uppercase;letter-spacing:.04em}
td.num{text-align:right;white-space:nowrap;font-size:12px}
td.oc{white-space:nowrap;width:1%}
.id{word-break:break-all}.id .mod{color:#78909c}
.o{display:inline-block;min-width:7.5em;padding:0 6px;border-radius:3px;font-size:12px;
 font-weight:600;text-align:center;color:#fff}
.o-passed{background:#2e7d32}.o-failed,.o-crashed,.o-timeout,.o-error{background:#c62828}
.o-known_failure{background:#e65100}.o-fixed{background:#00695c}
.o-skipped{background:#eceff1;color:#546e7a}
tr.r-failing>td{background:#fdecea}tr.r-known>td{background:#fff4e5}
table.tests>*>tr.more>td{padding:0 6px 6px 24px;border-bottom:1px solid #cfd8dc}
tr.r-skipped td{color:#607d8b}
.kind{font:600 11px "DejaVu Sans Mono",monospace;color:#b3261e;text-transform:uppercase}
details>summary{cursor:pointer;padding:2px 0;font-weight:600}
details>summary .mono,details>summary .dim{font-weight:400}
.body{padding:2px 0 0 14px}
.body p{margin:4px 0}
table.eo{border-collapse:collapse;margin:4px 0}
table.eo th{text-align:left;vertical-align:top;padding:1px 10px 1px 0;color:#555}
table.eo td{padding:1px 0;font:12px "DejaVu Sans Mono",monospace;white-space:pre-wrap}
pre{margin:4px 0;padding:6px 8px;font-size:12px;line-height:1.35;overflow:auto;
 white-space:pre}
pre.msg{background:#f5f5f5;border:1px solid #e0e0e0;white-space:pre-wrap;max-height:20em}
pre.log{background:#16181d;color:#d7dae0;max-height:36em;border-radius:2px}
pre.log .hit{background:#7a1c1c;color:#fff;display:inline-block;width:100%}
.loghead{font-size:12px;color:#555;margin-top:6px}
.files a{margin-right:10px}
"""


def _esc(value: Any) -> str:
    return html.escape(clean_text(str(value)))


def _href(path: str) -> str:
    return html.escape(quote(clean_text(path)))


def _id_html(test_id: str) -> str:
    module, sep, name = test_id.partition("::")
    if not sep:
        return _esc(test_id)
    return f'<span class="mod">{_esc(module)}::</span>{_esc(name)}'


def _location_html(f: dict[str, Any]) -> str:
    return f' <code class="dim">{_esc(f["location"])}</code>' if f.get("location") else ""


def _row_finding(t: TestRecord) -> str:
    """The last column: what a reader needs to know about the test in one line."""
    k = t.known_issue or {}
    if t.outcome == "known_failure":
        return f'<span class="kind">known</span> {_esc(k.get("title", ""))}'
    if t.outcome == "fixed":
        return f'<span class="kind">fixed</span> {_esc(k.get("title", ""))} ' \
               f'<span class="dim">no longer reproduces</span>'
    if t.kernel_findings:
        f = t.kernel_findings[0]
        more = len(t.kernel_findings) - 1
        return f'<span class="kind">{_esc(f.get("kind", ""))}</span> ' \
               f'{_esc(f.get("title", ""))}{_location_html(f)}' \
               + (f' <span class="dim">+{more} more</span>' if more else "")
    if t.outcome != "passed" and t.message:
        return f'<span class="dim">{_esc(_first_line(t.message, 200))}</span>'
    if t.trace_counts:
        # What the kernel did for a passing DAX test (PMD vs PTE faults, fallbacks) at a glance.
        return '<span class="dim">trace: ' + ", ".join(
            f"{_esc(n)}={_esc(v)}" for n, v in sorted(t.trace_counts.items())) + "</span>"
    return ""


def _log_html(x: LogExcerpt) -> str:
    out = []
    for n, line in enumerate(x.lines, x.first):
        text = html.escape(line)
        out.append(f'<span class="hit">{text}</span>' if n in x.marked else text)
    before = x.first - 1
    after = x.total - (x.first + len(x.lines) - 1)
    head = f'<a href="{_href(x.path)}">{_esc(x.path)}</a>, ' \
        + (f"lines {x.first}–{x.first + len(x.lines) - 1} of {x.total}" if before or after
           else f"{x.total} lines") \
        + (" (first kernel finding highlighted)" if x.marked else "")
    if not x.lines:
        return f'<div class="loghead">{head}: empty</div>'
    text = "\n".join(out)
    return f'<div class="loghead">{head}</div><pre class="log">{text}</pre>'


def _checks_html(t: TestRecord) -> str:
    """Failed checks first (with their source), then a count of the ones that held."""
    bad = failed_checks(t)
    rows = "".join(
        f"<tr><th>{_esc(c.get('name', ''))}</th><td>expected {_esc(c.get('expected', ''))}"
        f"<br>observed <b>{_esc(c.get('observed', ''))}</b>"
        + (f"<br><span class='dim'>{_esc(c['source'])}</span>" if c.get("source") else "")
        + "</td></tr>" for c in bad)
    held = len(t.checks) - len(bad)
    head = f"<p><b>checks</b>: {held} of {len(t.checks)} held" \
        + (", failed:" if bad else "") + "</p>"
    return head + (f'<table class="eo">{rows}</table>' if rows else "")


def _detail_html(t: TestRecord, results_dir: Path | None, is_open: bool) -> str:
    k = t.known_issue or {}
    log = dmesg_excerpt(results_dir, t, DMESG_HTML_LINES) \
        if results_dir is not None and t.outcome != "fixed" else None
    if t.outcome in FIRST_OUTCOMES:  # the row has the title already
        bits = [x for x in (f"kernel {k['kernel']}" if k.get("kernel") else "",
                            _first_line(str(k.get("reference", "")), 160)) if x]
        summary = "known kernel bug" + (f' <span class="dim">{_esc(" · ".join(bits))}</span>'
                                        if bits else "")
    elif t.message.strip() and t.kernel_findings:  # the row shows the finding, not this
        summary = f'<span class="mono">{_esc(_first_line(t.message, 240))}</span>'
    else:  # the row shows the message: say what is inside instead of repeating it
        inside = [x for x, present in (("expected vs observed", t.expected or t.observed),
                                       ("trace events", t.trace_counts),
                                       ("dmesg", log is not None),
                                       ("files", True)) if present]
        summary = f'details <span class="dim">{", ".join(inside)}</span>'
    body = []
    message_in_summary = t.outcome not in FIRST_OUTCOMES and bool(t.kernel_findings)
    if t.message.strip() and ("\n" in t.message.strip() or not message_in_summary):
        body.append(f'<pre class="msg">{_esc(t.message.strip())}</pre>')
    if t.expected or t.observed:
        body.append(f'<table class="eo"><tr><th>expected</th><td>{_esc(t.expected)}</td></tr>'
                    f'<tr><th>observed</th><td>{_esc(t.observed)}</td></tr></table>')
    if t.checks:
        body.append(_checks_html(t))
    if k:
        body.append(f"<p><b>known kernel bug</b> ({_esc(t.outcome)}): {_esc(k.get('title', ''))}"
                    + (f" <span class='dim'>kernel {_esc(k['kernel'])}</span>"
                       if k.get("kernel") else "") + "</p>")
        if k.get("reference"):
            body.append(f"<p class='dim'>{_esc(k['reference'])}</p>")
    if t.kernel_findings:
        body.append("<p><b>kernel findings</b>: " + "; ".join(
            f'<span class="kind">{_esc(f.get("kind", ""))}</span> {_esc(f.get("title", ""))}'
            + _location_html(f) + (f' <span class="dim">line {f["line"]}</span>'
                                   if isinstance(f.get("line"), int) else "")
            for f in t.kernel_findings) + "</p>")
    if t.trace_counts:
        body.append("<p><b>trace events</b>: <span class='mono'>" + ", ".join(
            f"{_esc(n)}={_esc(v)}" for n, v in sorted(t.trace_counts.items())) + "</span></p>")
    if log is not None:
        body.append(_log_html(log))
    links = [f'<a href="{_href(a)}">{_esc(a.rsplit("/", 1)[-1])}</a>' for a in t.artifacts]
    links.append('<a href="console.log">console.log</a>')
    body.append(f'<p class="files"><b>files</b>: {"".join(links)}</p>')
    return f'<details{" open" if is_open else ""}><summary>{summary}</summary>' \
           f'<div class="body">{"".join(body)}</div></details>'


def _profile_text(p: dict[str, Any]) -> str:
    if not p:
        return "?"
    parts = [str(p.get("name", "?"))]
    parts += [str(p[k]) for k in ("machine",) if p.get(k)]
    if p.get("cpus"):
        parts.append(f"{p['cpus']} vCPUs")
    if p.get("memory"):
        parts.append(f"{p['memory']} RAM")
    dimms = p.get("nvdimms") or []
    if dimms and isinstance(dimms[0], dict):
        d = dimms[0]
        parts.append(f"{len(dimms)} × NVDIMM {d.get('size', '?')} (label "
                     f"{d.get('label_size', '?')}, align {d.get('align', '?')})")
    return ", ".join(parts)


# Failing tests' details are open when there are few of them: the page then shows the whole
# story without a click; a run with dozens of failures stays a scannable table.
_OPEN_FAILURES = 5


def report_html(run: RunSummary, results_dir: Path | None = None) -> str:
    """The page a person reads first. With results_dir, failing tests inline their dmesg."""
    e = _esc
    k = run.kernel
    verdict = run.verdict()
    word = {"passed": "PASS", "failed": "FAIL", "error": "INFRA ERROR"}[verdict]
    counts = _counts_text(run) or "no test ran"
    if run.run_findings:
        counts += f" + {len(run.run_findings)} kernel finding(s) outside tests"
    where = " · ".join(x for x in (
        str(k.get("release") or "kernel ?"),
        f"QEMU {run.qemu.get('version') or '?'} {run.qemu.get('accel') or '?'}",
        _duration(run.duration_s)) if x)

    alerts = []
    if run.infra_error:
        alerts.append(f'<div class="alert"><h2>Infrastructure error: the run did not '
                      f'complete</h2><pre class="msg">{e(run.infra_error)}</pre></div>')
    if run.run_findings:
        alerts.append(
            '<div class="alert"><h2>Kernel findings outside tests (boot, between tests): '
            'they fail the run</h2><ul>' + "".join(
                f'<li><span class="kind">{e(f.get("kind", ""))}</span> {e(f.get("title", ""))}'
                + _location_html(f)
                + ' <a href="console.log">console.log</a>'
                + (f' <span class="dim">line {f["line"]}</span>'
                   if isinstance(f.get("line"), int) else "")
                + (f' <span class="dim">({e(f["source"])})</span>' if f.get("source") else "")
                + "</li>"
                for f in run.run_findings)
            + '</ul></div>')

    patches = k.get("patches") or []
    meta = [
        ("kernel", f'<code>{e(k.get("release") or "?")}</code> ({e(k.get("source") or "?")})'
                   + (f', config <code>{e(k["config_hash"])}</code>' if k.get("config_hash")
                      else "")
                   + (f' <span class="dim">{e(k["description"])}</span>'
                      if k.get("description") else "")),
    ]
    if patches:
        meta.append((f"series ({len(patches)})",
                     "<ol>" + "".join(f"<li>{e(p)}</li>" for p in patches) + "</ol>"))
    accel_reason = run.qemu.get("accel_reason")
    meta += [
        ("QEMU", f'{e(run.qemu.get("version") or "?")}, accel '
                 f'<b>{e(run.qemu.get("accel") or "?")}</b>'
                 + (f' <span class="dim">{e(accel_reason)}</span>' if accel_reason else "")),
    ]
    if run.profile:
        meta.append(("profile", e(_profile_text(run.profile))))
    if run.boot:
        b = run.boot
        meta.append(("boots", e(f"{b.get('boots', '?')}" + (
            f", first boot to SSH {b['first_boot_s']}s" if b.get("first_boot_s") else "")
            + (f", image {b['image']}" if b.get("image") else ""))))
    h = run.host
    if h:
        meta.append(("host", e(", ".join(str(x) for x in (
            h.get("hostname"), f"{h['cpus']} CPUs" if h.get("cpus") else "",
            f"Linux {h['kernel']}" if h.get("kernel") else "") if x))))
    if run.shard:
        meta.append(("shard", f"<code>{e(run.shard)}</code> of the suite"))
    if run.merge.get("sources"):
        srcs = run.merge["sources"]
        meta.append((f"merged ({len(srcs)})", "; ".join(
            e(f"{s.get('label', '?')}: {s.get('tests', '?')} tests, {s.get('verdict', '?')}"
              + (f", shard {s['shard']}" if s.get("shard") else "")
              + (f", {s['hostname']}" if s.get("hostname") else ""))
            for s in srcs if isinstance(s, dict))
            + "".join(f'<br><span class="kind">warning</span> {e(w)}'
                      for w in run.merge.get("warnings") or [])))
    meta += [
        ("run", f'<code>{e(run.run_id)}</code>, started {e(run.started)}, '
                f'{e(_duration(run.duration_s))}'),
        ("files", '<a href="console.log">console.log</a> · <a href="summary.json">'
                  'summary.json</a> · <a href="junit.xml">junit.xml</a> · '
                  '<a href="summary.md">summary.md</a>'),
    ]

    failing = [t for t in run.tests if t.outcome in FAILING_OUTCOMES]
    open_failures = len(failing) <= _OPEN_FAILURES
    groups = (("Known kernel bugs", [t for t in run.tests if t.outcome in FIRST_OUTCOMES]),
              ("Failures", failing),
              ("Passed and skipped", [t for t in run.tests if t.outcome in ("passed",
                                                                           "skipped")]))
    rows = []
    for title, tests in groups:
        if not tests:
            continue
        rows.append(f'<tr class="group"><th colspan="4">{title} ({len(tests)})</th></tr>')
        for t in tests:
            cls = "r-failing" if t.outcome in FAILING_OUTCOMES else \
                "r-known" if t.outcome in FIRST_OUTCOMES else f"r-{t.outcome}"
            rows.append(
                f'<tr class="{cls}"><td class="id">{_id_html(t.id)}</td>'
                f'<td class="oc"><span class="o o-{e(t.outcome)}">{e(t.outcome)}</span></td>'
                f'<td class="num">{e(_duration(t.duration_s))}</td>'
                f'<td>{_row_finding(t)}</td></tr>')
            if t.outcome in FAILING_OUTCOMES or t.outcome in FIRST_OUTCOMES:
                is_open = t.outcome in FAILING_OUTCOMES and open_failures
                rows.append(f'<tr class="more {cls}"><td colspan="4">'
                            f'{_detail_html(t, results_dir, is_open)}</td></tr>')
    table = ('<table class="tests"><thead><tr><th>test</th><th>outcome</th><th>time</th>'
             '<th>first kernel finding / message / trace events</th></tr></thead><tbody>'
             + "\n".join(rows) + "</tbody></table>") if rows else "<p>No test ran.</p>"

    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{word}: nvdimm-harness {e(run.run_id)}</title>
<style>{_CSS}</style></head><body>
<header class="banner v-{verdict}"><span class="verdict">{word}</span>
<span class="counts">{e(counts)}</span><span class="where">{e(where)}</span></header>
<main>
{"".join(alerts)}
<dl class="meta">{"".join(f"<dt>{e(n)}</dt><dd>{v}</dd>" for n, v in meta)}</dl>
{table}
</main></body></html>
"""


def write_reports(run: RunSummary, results_dir: Path) -> None:
    from .ktap import ktap

    results_dir.mkdir(parents=True, exist_ok=True)
    write_json_atomic(results_dir / "summary.json", run.to_json())
    for name, text in (("junit.xml", junit_xml(run, results_dir=results_dir)),
                       ("summary.md", markdown(run)),
                       ("results.ktap", ktap(run)),
                       ("report.html", report_html(run, results_dir))):
        tmp = results_dir / f".{name}.tmp{os.getpid()}"
        # Explicit UTF-8 (the XML and HTML say so), whatever the locale; clean_text has
        # removed what UTF-8 cannot encode, "replace" is the last resort.
        try:
            tmp.write_text(text, encoding="utf-8", errors="replace")
            os.replace(tmp, results_dir / name)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
