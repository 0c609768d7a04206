#!/usr/bin/env python3
"""Run one test of the guest suite under pytest and say its outcome in TAP, for avocado.

    pytest_tap.py NODEID [harness pytest options: --kernel, --profile, --accel, ...]

avocado's `tap` runner starts this once per test (see runnables.py, which writes the
recipe). pytest boots a guest of its own for the test and writes the harness's results
directory into the avocado test's output directory ($AVOCADO_TEST_OUTPUTDIR/nvdimm-harness:
summary.json, junit.xml, report.html, console.log, tests/<test>/dmesg.txt ...); pytest's own
output goes to stderr, which avocado keeps in the test's `stderr` and `debug.log`.

The outcome comes from that summary.json (the harness's contract, DESIGN.md), and stdout
carries nothing but TAP, which avocado's tap runner turns into its statuses:

    passed, fixed        ok 1 - ID                      PASS
    known_failure        not ok 1 - ID # TODO reason     PASS (TAP's "expected failure")
    skipped              ok 1 - ID # SKIP reason         SKIP
    failed, crashed      not ok 1 - ID                  FAIL
    error, timeout,      Bail out! reason               ERROR
    infra failure, no such test, interrupted

The exit status says the same for an `exec-test` runnable: 0 PASS, 77 SKIP (with
`runner.exectest.exitcodes.skip: [77]` in the runnable's config), 1 FAIL, 3 ERROR.

No pytest or avocado import: only the standard library and a pytest child process.
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RESULTS_SUBDIR = "nvdimm-harness"

EXIT_PASS, EXIT_FAIL, EXIT_ERROR, EXIT_SKIP = 0, 1, 3, 77
PASS_OUTCOMES = ("passed", "fixed")
FAIL_OUTCOMES = ("failed", "crashed")
ERROR_OUTCOMES = ("error", "timeout")
# pytest's exit statuses that are not about a test's result.
PYTEST_STATUS = {2: "interrupted or stopped by the harness (2 = bad input)",
                 3: "internal error / infrastructure failure",
                 4: "pytest usage error", 5: "no test collected"}


@dataclass
class Verdict:
    status: str  # avocado's: PASS SKIP FAIL ERROR
    tap: list[str]
    notes: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return {"PASS": EXIT_PASS, "SKIP": EXIT_SKIP, "FAIL": EXIT_FAIL}.get(self.status,
                                                                            EXIT_ERROR)

    def text(self) -> str:
        """The whole stdout: plan, diagnostics as TAP comments, then the result line."""
        lines = ["1..1"] + [f"# {n}" if n else "#" for n in self.notes] + self.tap
        return "\n".join(lines) + "\n"


def _one_line(text: str, limit: int = 300) -> str:
    line = " ".join(text.split())
    return line[:limit] + ("..." if len(line) > limit else "")


def _comment_lines(label: str, text: str, max_lines: int = 40) -> list[str]:
    lines = text.rstrip().splitlines() or [""]
    out = [f"{label}: {lines[0]}"] + [f"  {line}" for line in lines[1:max_lines]]
    if len(lines) > max_lines:
        out.append(f"  ... ({len(lines) - max_lines} more lines in the results directory)")
    return out


def verdict(nodeid: str, summary: dict | None, pytest_status: int,
            results: Path | None = None) -> Verdict:
    """What avocado should hear about `nodeid`, from the run's summary.json (None when the
    run wrote none) and pytest's exit status."""
    name = nodeid.replace("#", "_")
    notes: list[str] = [f"test: {nodeid}"]
    if results is not None:
        notes.append(f"results: {results}")
    if summary is None:
        why = PYTEST_STATUS.get(pytest_status, "see stderr")
        return Verdict("ERROR", [f"Bail out! pytest exited {pytest_status} ({why}) "
                                 "without writing summary.json"], notes)
    record = next((t for t in summary.get("tests", []) if t.get("id") == nodeid), None)
    infra = summary.get("infra_error") or ""
    if record is None:
        if infra:
            notes += _comment_lines("infrastructure error", infra)
            return Verdict("ERROR", [f"Bail out! {_one_line(infra)}"], notes)
        why = PYTEST_STATUS.get(pytest_status, "see stderr")
        return Verdict("ERROR", [f"Bail out! no result for {nodeid}: pytest exited "
                                 f"{pytest_status} ({why})"], notes)
    outcome = record.get("outcome", "")
    message = record.get("message") or ""
    notes.append(f"outcome: {outcome} ({record.get('duration_s', 0)} s in pytest)")
    if message:
        notes += _comment_lines("message", message)
    for finding in record.get("kernel_findings") or []:
        notes.append(f"kernel finding: {finding.get('kind')}: {finding.get('title')}")
    issue = record.get("known_issue") or {}
    if issue:
        notes.append(f"known kernel bug: {issue.get('title') or issue.get('finding')} "
                     f"({issue.get('reference', '')})")
    # Kernel findings outside every test frame (at boot, say) fail `nvdimm-harness run`;
    # with one test per run they belong to this test.
    outside = summary.get("run_findings") or []
    for finding in outside:
        notes.append(f"kernel finding outside the test: {finding.get('kind')}: "
                     f"{finding.get('title')}")
    if infra:
        notes += _comment_lines("infrastructure error", infra)

    if outcome in ERROR_OUTCOMES or (infra and outcome not in FAIL_OUTCOMES):
        reason = message or infra or outcome
        return Verdict("ERROR", [f"Bail out! {outcome}: {_one_line(reason)}"], notes)
    if outcome in FAIL_OUTCOMES or (outside and outcome not in ("skipped",)):
        return Verdict("FAIL", [f"not ok 1 - {name}"], notes)
    if outcome == "skipped":
        return Verdict("SKIP", [f"ok 1 - {name} # SKIP {_one_line(message or 'skipped')}"],
                       notes)
    if outcome == "known_failure":
        reason = issue.get("title") or issue.get("finding") or message or "known kernel bug"
        return Verdict("PASS", [f"not ok 1 - {name} # TODO known kernel bug: "
                                f"{_one_line(reason)}"], notes)
    if outcome in PASS_OUTCOMES:
        return Verdict("PASS", [f"ok 1 - {name}"], notes)
    return Verdict("ERROR", [f"Bail out! unknown outcome {outcome!r}"], notes)


def results_dir() -> Path:
    base = os.environ.get("AVOCADO_TEST_OUTPUTDIR")
    if base:
        return Path(base) / RESULTS_SUBDIR
    # By hand, outside avocado: like `nvdimm-harness run`, under results/.
    return ROOT / "results" / f"avocado-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"


def _die_with_parent() -> None:
    """SIGTERM when the avocado runner that started us dies (avocado ends a task, e.g. on
    its timeout, by terminating the runner only): we pass it on to pytest, which stops its
    guest and writes the results, instead of running on, orphaned."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def run_pytest(nodeid: str, options: list[str], results: Path) -> int:
    cmd = [sys.executable, "-m", "pytest", nodeid, "-v", "-p", "no:cacheprovider",
           "--rootdir", str(ROOT), "-o", "testpaths=testcases", "--results", str(results),
           *options]
    print(f"nvdimm-harness/avocado: {' '.join(cmd)}", file=sys.stderr, flush=True)
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    # pytest's output to our stderr: stdout is for TAP only.
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdin=subprocess.DEVNULL,
                            stdout=sys.stderr.fileno(), stderr=sys.stderr.fileno())
    signalled = False

    def on_term(signum, _frame):
        nonlocal signalled
        if not signalled and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)  # conftest: stop the guest, write results
        signalled = True

    def on_int(signum, _frame):
        # Ctrl-C reaches pytest through the process group already, and avocado then ends
        # its runner (our SIGTERM): a second signal would interrupt pytest's cleanup.
        nonlocal signalled
        signalled = True

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_int)
    parent = os.getppid()
    _die_with_parent()
    if os.getppid() != parent:  # the runner died before the death signal was armed
        on_term(signal.SIGTERM, None)
    return proc.wait()


def main(argv: list[str]) -> int:
    if not argv or argv[0].startswith("-"):
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    nodeid, options = argv[0], argv[1:]
    results = results_dir()
    results.parent.mkdir(parents=True, exist_ok=True)
    status = run_pytest(nodeid, options, results)
    summary_path = results / "summary.json"
    try:
        summary = json.loads(summary_path.read_text())
    except (OSError, ValueError):
        summary = None
    v = verdict(nodeid, summary, status, results)
    sys.stdout.write(v.text())
    sys.stdout.flush()
    print(f"nvdimm-harness/avocado: {v.status} (pytest exit {status})", file=sys.stderr)
    return v.exit_code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
