"""The avocado front-end (testcases/avocado/): pytest outcomes → TAP → avocado's statuses,
and the runnables recipe. Guests are in tests/e2e/test_avocado.py."""

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from avocado.plugins.runners.tap import TAPRunner

ROOT = Path(__file__).resolve().parents[2]
GLUE = ROOT / "testcases" / "avocado"


def _load(name):
    spec = importlib.util.spec_from_file_location(f"nvh_avocado_{name}", GLUE / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


pytest_tap = _load("pytest_tap")
ID = "testcases/test_pin.py::test_pin[devdax-2M-mem-rdma]"


def summary(outcome=None, message="", infra="", run_findings=(), **record):
    tests = [] if outcome is None else [dict(id=ID, outcome=outcome, message=message,
                                             duration_s=1.5, **record)]
    return {"run_id": "x", "tests": tests, "infra_error": infra,
            "run_findings": list(run_findings)}


def avocado_status(v) -> str:
    """What avocado's own tap runner makes of the wrapper's stdout."""
    result, _reason = TAPRunner._get_tap_result(v.text().encode())
    return result.upper()


@pytest.mark.parametrize("outcome, status, code", [
    ("passed", "PASS", 0),
    ("fixed", "PASS", 0),
    ("known_failure", "PASS", 0),
    ("skipped", "SKIP", 77),
    ("failed", "FAIL", 1),
    ("crashed", "FAIL", 1),
    ("error", "ERROR", 3),
    ("timeout", "ERROR", 3),
])
def test_each_outcome_maps_to_its_avocado_status(outcome, status, code):
    issue = {"title": "BUG: unable to handle kernel paging request in x", "reference": "kb-1"} \
        if outcome in ("known_failure", "fixed") else None
    v = pytest_tap.verdict(ID, summary(outcome, "the message", known_issue=issue), 0)
    assert v.status == status and v.exit_code == code
    assert avocado_status(v) == status
    assert f"# outcome: {outcome}" in v.text()


def test_skip_reason_and_known_bug_title_are_in_the_tap_line():
    skip = pytest_tap.verdict(ID, summary("skipped", "no CONFIG_GUP_TEST in this kernel"), 0)
    assert skip.tap == [f"ok 1 - {ID} # SKIP no CONFIG_GUP_TEST in this kernel"]
    known = pytest_tap.verdict(ID, summary("known_failure", "x", known_issue={
        "title": "BUG: unable to handle kernel paging request in unpin_user_page_range_dirty_lock",
        "reference": "r"}), 0)
    assert known.tap[0].startswith(f"not ok 1 - {ID} # TODO known kernel bug: BUG: unable")


def test_a_multiline_failure_message_stays_in_tap_comments():
    v = pytest_tap.verdict(ID, summary("failed", "line one\nline two\n# not a directive"), 1)
    body = v.text().splitlines()
    assert body[0] == "1..1" and body[-1] == f"not ok 1 - {ID}"
    assert all(line.startswith("#") for line in body[1:-1]), body
    assert avocado_status(v) == "FAIL"


@pytest.mark.parametrize("data, status", [
    (None, 3),                                         # no summary.json at all
    (summary(infra="guest never came up: boot timeout"), 3),
    (summary(), 5),                                    # the id matched no test
    (summary("passed", infra="run interrupted (Ctrl-C or SIGTERM)"), 2),
])
def test_infrastructure_problems_are_errors(data, status):
    v = pytest_tap.verdict(ID, data, status)
    assert v.status == "ERROR" and v.exit_code == 3
    assert v.tap[0].startswith("Bail out!")
    assert avocado_status(v) == "ERROR"


def test_a_kernel_finding_outside_the_test_fails_a_passed_test():
    v = pytest_tap.verdict(ID, summary("passed", run_findings=[
        {"kind": "warning", "title": "WARNING: at boot", "line": 3}]), 1)
    assert v.status == "FAIL" and "kernel finding outside the test" in v.text()


def test_recipe_lists_every_selected_test_with_the_harness_options(tmp_path):
    kernel = tmp_path / "bzImage"
    kernel.write_text("")
    out = tmp_path / "suite.json"
    proc = subprocess.run([sys.executable, str(GLUE / "runnables.py"), "-k", "anon-gup_test",
                           "--accel", "tcg", "--kernel", "bzImage", "--out", str(out)],
                          cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    recipe = json.loads(out.read_text())
    ids = [r["identifier"] for r in recipe]
    assert ids == [f"testcases/test_pin.py::test_pin[anon-gup_test-{m}]"
                   for m in ("basic", "fast", "longterm")]
    for r, nodeid in zip(recipe, ids, strict=True):
        assert r["kind"] == "tap"
        assert r["args"] == [str(GLUE / "pytest_tap.py"), nodeid, "--kernel", str(kernel),
                             "--accel", "tcg"]


def test_exec_test_kind_declares_the_skip_exit_status(tmp_path):
    proc = subprocess.run([sys.executable, str(GLUE / "runnables.py"), "--kind", "exec-test",
                           "testcases/test_remove.py"], cwd=ROOT, capture_output=True,
                          text=True)
    assert proc.returncode == 0, proc.stderr
    recipe = json.loads(proc.stdout)
    assert len(recipe) == 18
    assert all(r["config"] == {"runner.exectest.exitcodes.skip": [77]} for r in recipe)


@pytest.mark.parametrize("argv, text", [
    (["-k", "no-such-test-anywhere"], "no test matches"),
    (["--", "--results", "x"], "--results: not with avocado"),
    (["testcases/nope.py"], "testcases/nope.py: no such file"),
])
def test_bad_input_is_one_line_and_exit_2(argv, text):
    proc = subprocess.run([sys.executable, str(GLUE / "runnables.py"), *argv], cwd=ROOT,
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert text in proc.stderr and proc.stderr.count("\n") == 1, proc.stderr


FAKE_PYTEST = '''
import json, os, pathlib, signal, sys, time
args = sys.argv[1:]
results = pathlib.Path(args[args.index("--results") + 1])
results.mkdir(parents=True, exist_ok=True)
pathlib.Path(os.environ["FAKE_LOG"]).write_text(" ".join(args))

def write(tests, infra=""):
    (results / "summary.json").write_text(json.dumps({"tests": tests, "infra_error": infra}))

def on_term(*_):
    write([], "run interrupted (Ctrl-C or SIGTERM); results are partial")
    sys.exit(2)

def on_int(*_):  # like conftest on Ctrl-C: stop the guest (takes a moment), write results
    time.sleep(2)
    write([], f"run interrupted (Ctrl-C or SIGTERM); results are partial; terms={terms}")
    sys.exit(2)

terms = 0
def count_term(*_):
    global terms
    terms += 1

signal.signal(signal.SIGTERM, on_term)
if os.environ.get("FAKE_CTRL_C"):
    signal.signal(signal.SIGTERM, count_term)
    signal.signal(signal.SIGINT, on_int)
if os.environ.get("FAKE_HANG"):
    time.sleep(60)
    sys.exit(9)
write([{"id": args[0], "outcome": "skipped", "message": "no gup_test here"}])
'''


@pytest.fixture
def fake_pytest(tmp_path, monkeypatch):
    """`python -m pytest` finds this stand-in first: no guest, the same protocol."""
    pkg = tmp_path / "fake" / "pytest"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "__main__.py").write_text(FAKE_PYTEST)
    monkeypatch.setenv("PYTHONPATH", str(tmp_path / "fake"))
    monkeypatch.setenv("FAKE_LOG", str(tmp_path / "fake-args"))
    monkeypatch.setenv("AVOCADO_TEST_OUTPUTDIR", str(tmp_path / "out"))
    return tmp_path


def test_wrapper_runs_pytest_into_the_avocado_output_dir(fake_pytest):
    proc = subprocess.run([sys.executable, str(GLUE / "pytest_tap.py"), ID, "--accel", "tcg"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 77, proc.stderr
    results = fake_pytest / "out" / "nvdimm-harness"
    args = (fake_pytest / "fake-args").read_text().split()
    assert args[0] == ID and args[-2:] == ["--accel", "tcg"]
    assert args[args.index("--results") + 1] == str(results)
    assert proc.stdout.splitlines()[-1] == f"ok 1 - {ID} # SKIP no gup_test here"
    assert TAPRunner._get_tap_result(proc.stdout.encode())[0] == "skip"


def test_wrapper_stops_pytest_when_its_avocado_runner_dies(fake_pytest, monkeypatch):
    """avocado ends a task (timeout) by terminating its runner, our parent: PDEATHSIG."""
    monkeypatch.setenv("FAKE_HANG", "1")
    stdout = fake_pytest / "stdout"
    runner = subprocess.Popen([sys.executable, "-c", (
        "import subprocess, sys, time\n"
        f"subprocess.Popen([sys.executable, {str(GLUE / 'pytest_tap.py')!r}, {ID!r}],"
        f" stdout=open({str(stdout)!r}, 'w'))\n"
        "time.sleep(60)\n")])
    deadline = time.monotonic() + 30
    while not (fake_pytest / "fake-args").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert (fake_pytest / "fake-args").exists(), "pytest never started"
    runner.kill()
    runner.wait()
    deadline = time.monotonic() + 30
    while "Bail out!" not in (stdout.read_text() if stdout.exists() else "") \
            and time.monotonic() < deadline:
        time.sleep(0.1)
    assert stdout.read_text().splitlines()[-1].startswith("Bail out! ")
    assert "interrupted" in stdout.read_text()


def test_ctrl_c_is_not_doubled_by_the_runner_s_sigterm(fake_pytest, monkeypatch):
    """Ctrl-C reaches the whole process group; avocado then terminates its runner. pytest,
    busy stopping its guest, must not get a SIGTERM on top."""
    monkeypatch.setenv("FAKE_HANG", "1")
    monkeypatch.setenv("FAKE_CTRL_C", "1")
    wrapper = subprocess.Popen([sys.executable, str(GLUE / "pytest_tap.py"), ID],
                               stdout=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.monotonic() + 30
    while not (fake_pytest / "fake-args").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(0.5)  # the fake's handlers are set right after it writes its args
    os.killpg(wrapper.pid, signal.SIGINT)
    time.sleep(0.3)
    wrapper.send_signal(signal.SIGTERM)
    out, _ = wrapper.communicate(timeout=30)
    assert "terms=0" in out and out.splitlines()[-1].startswith("Bail out! "), out
