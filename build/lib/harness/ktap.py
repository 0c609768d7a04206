"""results.ktap: a run in KTAP version 1, the format of the kernel's own test tooling.

Documentation/dev-tools/ktap.rst (6.12): one subtest per family (the test function:
test_odirect, test_pin, ...), one result line per test. Outcomes map to the spec's results
and directives:

    passed, fixed        ok N name                   (fixed: "# fixed: <known bug> did not happen")
    known_failure        ok N name # XFAIL known kernel bug: <title>   (kselftest's xfail)
    skipped              ok N name # SKIP <reason>
    failed               not ok N name # <first line of the message>
    error                not ok N name # ERROR <message>
    crashed              not ok N name # ERROR guest crashed: <message>
    timeout              not ok N name # TIMEOUT <message>

kunit.py's parser (tools/testing/kunit/kunit_parser.py) knows only SKIP among directives
and falls back to ok / not ok for the rest, as the spec asks: it counts known failures as
passed (they do not fail the run, as in summary.json's verdict) and skips as skipped.
"""

from __future__ import annotations

import re

from .results import RunSummary, TestRecord

_UNSAFE = re.compile(r"[#\n\r]+")


def _text(text: str, limit: int = 200) -> str:
    """Description and diagnostic data may hold neither '#' nor a newline."""
    line = _UNSAFE.sub(" ", text.strip().splitlines()[0] if text.strip() else "")
    return line[:limit].strip()


def family(test_id: str) -> str:
    """testcases/test_pin.py::test_pin[anon-rdma] -> test_pin; ndctl/dax/mmap.sh -> ndctl/dax"""
    if "::" not in test_id:
        return test_id.rsplit("/", 1)[0] if "/" in test_id else test_id
    return test_id.split("::", 1)[1].split("[", 1)[0]


def case_name(test_id: str) -> str:
    if "::" not in test_id:
        return _text(test_id.rsplit("/", 1)[-1])
    name = test_id.split("::", 1)[1]
    return _text(name[name.index("[") + 1:-1] if "[" in name and name.endswith("]") else name)


def result_line(n: int, t: TestRecord) -> str:
    name = case_name(t.id)
    message = _text(t.message)
    known = _text((t.known_issue or {}).get("title", ""))
    if t.outcome == "passed":
        return f"ok {n} {name}"
    if t.outcome == "fixed":
        return f"ok {n} {name} # fixed: {known or 'a recorded kernel bug'} did not happen"
    if t.outcome == "known_failure":
        return f"ok {n} {name} # XFAIL known kernel bug: {known}"
    if t.outcome == "skipped":
        return f"ok {n} {name} # SKIP {message}".rstrip()
    if t.outcome == "timeout":
        return f"not ok {n} {name} # TIMEOUT {message}".rstrip()
    if t.outcome == "error":
        return f"not ok {n} {name} # ERROR {message}".rstrip()
    if t.outcome == "crashed":
        return f"not ok {n} {name} # ERROR guest crashed: {message}".rstrip()
    return f"not ok {n} {name}" + (f" # {message}" if message else "")


def ktap(run: RunSummary) -> str:
    families: dict[str, list[TestRecord]] = {}
    for t in run.tests:
        families.setdefault(family(t.id), []).append(t)
    kernel = (run.kernel or {}).get("release") or "?"
    out = ["KTAP version 1", f"# nvdimm-harness run {run.run_id} on {_text(kernel)}",
           f"1..{len(families)}"]
    for i, (name, tests) in enumerate(families.items(), 1):
        out += ["    KTAP version 1", f"    # Subtest: {_text(name)}", f"    1..{len(tests)}"]
        out += [f"    {result_line(n, t)}" for n, t in enumerate(tests, 1)]
        failed = any(line_fails(t) for t in tests)
        skipped = all(t.outcome == "skipped" for t in tests)
        out.append(f"{'not ok' if failed else 'ok'} {i} {_text(name)}"
                   + (" # SKIP every test skipped" if skipped and not failed else ""))
    if run.infra_error:
        out.append(f"# infrastructure error: {_text(run.infra_error)}")
    return "\n".join(out) + "\n"


def line_fails(t: TestRecord) -> bool:
    return t.outcome in ("failed", "error", "crashed", "timeout")
