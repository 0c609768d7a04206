"""pytest glue for the guest suite in testcases/: options, one guest per session, a kernel-log
frame around every test, outcome classification and the results directory.

The machinery lives in harness/; this file only connects it to pytest's hooks. Tests under
tests/ (the harness's own unit and end-to-end tests) never touch the guest fixtures.
"""

from __future__ import annotations

import contextlib
import os
import platform
import shutil
import signal
import socket
import sys
import time
from pathlib import Path

import pytest

from harness import interrupt, kmsg, known_failures, merge, progress, symbolize
from harness.checks import Check
from harness.errors import BootError, HarnessError, UsageError
from harness.guest import Guest, slice_between_marks
from harness.ndctl import Ndctl
from harness.pinning import pin_leak_message, vmstat_pins
from harness.prepare import GuestOptions, prepare
from harness.qemu import qemu_version
from harness.results import RunSummary, TestRecord, new_run_id, result_dir_name, write_reports
from harness.shard import Shard, parse_shard
from harness.ssh import GuestCommandTimeout

ROOT = Path(__file__).resolve().parent
TESTCASES = ROOT / "testcases"
# Guest tests that misbehave on purpose, driven by tests/e2e (never part of a suite run).
GUEST_FAULTS = ROOT / "tests" / "guest_faults"
# NVH_KNOWN_FAILURES: another table (an empty one shows what the known bugs look like
# when they fail the run).
KNOWN_FAILURES = Path(os.environ.get("NVH_KNOWN_FAILURES", TESTCASES / "known_failures.yaml"))


def pytest_addoption(parser: pytest.Parser) -> None:
    g = parser.getgroup("nvdimm-harness")
    g.addoption("--profile", help="machine profile name or YAML file (default: default)")
    g.addoption("--kernel", help="boot this bzImage instead of the image's stock kernel")
    g.addoption("--accel", help="auto, kvm or tcg (default: the profile's, normally auto)")
    g.addoption("--recipe", help="guest image recipe name or YAML file")
    g.addoption("--results", help="results directory (default: results/<run-id>)")
    g.addoption("--modules", help="modules for --kernel (an INSTALL_MOD_PATH directory)")
    g.addoption("--kernel-tree", help="build this kernel tree (with --patches/--config), boot it")
    g.addoption("--patches", action="append", default=[], help="patch series (repeatable)")
    g.addoption("--config", action="append", default=[], help="config fragment (repeatable)")
    g.addoption("--shard", metavar="K/N", help="run only shard K of N of the selected guest "
                                               "tests (round-robin; for CI matrices)")


SHARD = pytest.StashKey[Shard]()


def _xdist_worker(config: pytest.Config) -> str | None:
    """The xdist worker id ("gw0") when this process is one, else None."""
    return getattr(config, "workerinput", {}).get("workerid")


def _interrupt_controller_on_sigterm(signum, frame):
    # The xdist controller's workers are its children but not in the signal's path (the CLI
    # signals only its child): pass it on, so that each stops its guest and writes results.
    for pid in _child_pids():
        with contextlib.suppress(OSError):
            os.kill(pid, signum)
    interrupt.raise_keyboard_interrupt(signum, frame)


def _child_pids() -> list[int]:
    me = str(os.getpid())
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError):
            # Field 4 is the parent pid; the command name (field 2) may contain spaces.
            if stat.read_text().rsplit(")", 1)[1].split()[1] == me:
                pids.append(int(stat.parent.name))
    return pids


def pytest_configure(config: pytest.Config) -> None:
    worker = _xdist_worker(config)
    controller = not worker and bool(getattr(config.option, "numprocesses", None))
    # pytest runs fixture teardown and sessionfinish for KeyboardInterrupt, not for SIGTERM:
    # this way a terminated run still stops its guest and writes partial results.
    signal.signal(signal.SIGTERM, _interrupt_controller_on_sigterm if controller
                  else interrupt.raise_keyboard_interrupt)
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        # Ctrl-C as before, but remembered: teardown then stops talking to the guest.
        signal.signal(signal.SIGINT, interrupt.raise_keyboard_interrupt)
    if config.getoption("--shard") is not None:
        try:
            config.stash[SHARD] = parse_shard(config.getoption("--shard"))
        except UsageError as e:
            pytest.exit(f"nvdimm-harness: {e}", returncode=2)
    capture = config.pluginmanager.getplugin("capturemanager")
    # With --jobs, say which worker's guest is talking.
    prefix = f"[{worker}] " if worker else ""

    def progress_around_capture(line: str) -> None:
        # A developer waiting for an image build or a TCG boot needs to see it move, and
        # pytest captures fd 2 inside fixtures.
        with capture.global_and_fixture_disabled():
            print(prefix + line, file=sys.stderr, flush=True)

    progress.set_writer(progress_around_capture)
    config.addinivalue_line("markers", "expect_kernel(*titles): kernel findings this test "
                                       "provokes on purpose (shown, but not a failure)")
    # Named so that `-k pin` does not select every test carrying it.
    config.addinivalue_line("markers", "foll_counters_balanced: the FOLL_PIN counters of "
                                       "/proc/vmstat must be balanced after the test")
    config.pluginmanager.register(RunRecorder(config), "nvh-run-recorder")


def _is_guest_test(item: pytest.Item) -> bool:
    parents = Path(item.path).parents
    return TESTCASES in parents or GUEST_FAULTS in parents


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """--shard K/N: keep every Nth guest test of what -k/-m left (trylast: after them)."""
    shard = config.stash.get(SHARD, None)
    if shard is None:
        return
    _mine, others = shard.split([it for it in items if _is_guest_test(it)])
    if others:
        dropped = set(others)
        items[:] = [it for it in items if it not in dropped]
        config.hook.pytest_deselected(items=others)


def _stop_run(config: pytest.Config, session: pytest.Session, message: str, returncode: int,
              in_test: bool = True) -> None:
    """pytest.exit(), except on an xdist worker, where pytest.exit() during a test is an
    INTERNALERROR in the controller (xdist 3.8): there the current test fails with the
    message, the worker stops after it and hands the exit code to the controller
    (RunRecorder.pytest_testnodedown)."""
    if not _xdist_worker(config):
        pytest.exit(message, returncode=returncode)
    config.workeroutput.setdefault("nvh_exit", [returncode, message])
    session.shouldstop = message
    if in_test:
        pytest.fail(message, pytrace=False)


class TestArtifacts:
    """What a test leaves in results/tests/<id>/ and the expectation it checked."""

    __test__ = False  # not a pytest test class

    def __init__(self, directory: Path, relative: str):
        self.dir = directory
        self.relative = relative
        self.files: list[str] = []
        self.expected = ""
        self.observed = ""
        self.trace_counts: dict[str, int] = {}
        self.checks: list[Check] = []
        # Findings the harness made itself (a stalled workload): judged like kernel ones.
        self.harness_findings: list[kmsg.Finding] = []

    def attach(self, name: str, text: str) -> Path:
        path = self.dir / name
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        except OSError as e:
            # A full results disk: the test's verdict still counts; writing the reports at
            # the end says the results are incomplete (exit 3), in one line.
            path.unlink(missing_ok=True)
            progress.say(f"cannot write {path}: {e.strerror or e}")
            return path
        rel = f"{self.relative}/{name}"
        if rel not in self.files:
            self.files.append(rel)
        return path

    def expectation(self, expected: str, observed: str) -> None:
        self.expected, self.observed = expected, observed

    def add_checks(self, checks) -> None:
        """Record what the test compared; kept for every outcome, crash included."""
        self.checks.extend(checks)

    def add_finding(self, finding: kmsg.Finding) -> None:
        self.harness_findings.append(finding)


class KernelFindingsError(AssertionError):
    pass


class TestFrame:
    """Everything about one guest test: its kernel log slice, findings and crash state."""

    __test__ = False  # not a pytest test class

    def __init__(self, item: pytest.Item, guest: Guest, artifacts: TestArtifacts):
        self.item = item
        self.guest = guest
        self.artifacts = artifacts
        self.begin = f"begin {item.nodeid}"
        self.end = f"end {item.nodeid}"
        self.findings: list[kmsg.Finding] = []
        self.expected_findings: list[kmsg.Finding] = []
        self.locations: dict[int, str] = {}  # finding line -> file:line
        self.crashed = ""
        self.timed_out = False
        self.taint_before: int | None = None
        self.taint_after: int | None = None
        # Set when the frame stopped a wedged, tainted or dead guest: the test's fixture
        # teardown then has no guest to talk to, and that is not the test's error.
        self.guest_stopped = False
        # Set when QEMU was killed from outside during the test (not the guest kernel's
        # doing): the test is `error`, not `crashed`.
        self.qemu_killed = ""

    def start(self) -> None:
        self.guest.mark(self.begin)
        self.taint_before = self.guest.taint()

    def finish(self, exc: BaseException | None) -> None:
        if interrupt.requested():
            # Ctrl-C/SIGTERM: stop now. The console has the kernel log; no SSH round trips.
            self.artifacts.attach("dmesg.txt", self._console_slice())
            return
        if isinstance(exc, (ConnectionError, EOFError)) or self.guest.panic_event():
            # A panicking guest drops SSH and finishes printing the panic before QEMU exits.
            self.guest.wait_exit(timeout_s=10)
        self.timed_out = isinstance(exc, GuestCommandTimeout)
        if self.timed_out and self.guest.is_alive():
            # What is everybody waiting for? Blocked-task stacks into the log, if the guest
            # still takes a command.
            self.guest.dump_blocked_tasks()
        if self.guest.is_alive() and not self.timed_out:
            try:
                self.guest.mark(self.end)
                log = self.guest.dmesg_between(self.begin, self.end)
                self.taint_after = self.guest.taint()
            except (HarnessError, OSError, GuestCommandTimeout):
                log = self._console_slice()
                self.timed_out = True
        else:
            log = self._console_slice()
        self.artifacts.attach("dmesg.txt", log)
        expected_titles = [t for m in self.item.iter_markers("expect_kernel") for t in m.args]
        unexpected, expected = kmsg.split_expected(kmsg.scan_kernel_log(log), expected_titles)
        self.findings = [*self.artifacts.harness_findings, *unexpected]
        self.expected_findings = expected
        self._locate_findings()
        panic_event = self.guest.panic_event()
        if not self.guest.is_alive() or panic_event:
            panic = next((f for f in unexpected if f.kind == "panic"), None)
            if panic:
                self.crashed = panic.title
            elif panic_event:
                self.crashed = "kernel panic (no panic text on the console)"
            elif self.guest.killed_by():
                sig = self.guest.killed_by()
                self.qemu_killed = (f"QEMU was killed by signal {sig} "
                                    f"({signal.Signals(sig).name}) during the test; "
                                    "the next test gets a fresh guest")
            else:
                self.crashed = "the guest died (QEMU exited)"
            if panic_event:
                self.crashed += " [QMP: GUEST_PANICKED]"
            self.guest.stop()
            self.guest_stopped = True
        elif self.timed_out or self.taint_changed:
            # A wedged guest, or one an oops left tainted (processes in D state, leaked
            # references), would poison every later test: the next one boots a fresh guest.
            self.guest.stop()
            self.guest_stopped = True

    def _locate_findings(self) -> None:
        """With a vmlinux that has DWARF (the harness's own builds): each finding's
        file:line in summary.json and its symbolized call trace in findings.txt."""
        kernel = self.guest.config.kernel
        symbolizer = symbolize.for_kernel(kernel.vmlinux, kernel.modules_dir, kernel.source_root)
        every = [*self.findings, *self.expected_findings]
        if symbolizer is None or not every:
            return
        reports = []
        for f in every:
            loc = symbolize.finding_location(symbolizer, f.title, f.text)
            if loc:
                self.locations[f.line] = str(loc)
            reports.append(f"{f.kind}: {f.title}" + (f" ({loc})" if loc else "") + "\n"
                           + symbolizer.annotate(f.text))
        self.artifacts.attach("findings.txt", "\n\n".join(reports) + "\n")

    def findings_json(self) -> list[dict]:
        return [{**f.to_json(), **({"location": self.locations[f.line]}
                                   if f.line in self.locations else {})}
                for f in self.findings]

    @property
    def taint_changed(self) -> bool:
        return None not in (self.taint_before, self.taint_after) \
            and self.taint_before != self.taint_after

    def _console_slice(self) -> str:
        text = self.guest.console_text()
        return slice_between_marks(text, self.begin, self.end)


FRAME = pytest.StashKey[TestFrame]()


@pytest.fixture(scope="session")
def guest_config(request: pytest.FixtureRequest):
    recorder: RunRecorder = request.config.pluginmanager.get_plugin("nvh-run-recorder")
    opt = request.config.getoption
    options = GuestOptions(profile=opt("--profile"), kernel=opt("--kernel"),
                           accel=opt("--accel"), recipe=opt("--recipe"),
                           modules=opt("--modules"), kernel_tree=opt("--kernel-tree"),
                           patches=tuple(opt("--patches")), configs=tuple(opt("--config")))
    try:
        config = prepare(options)
    except UsageError as e:
        _stop_run(request.config, request.session, f"nvdimm-harness: {e}", 2)
    except HarnessError as e:
        recorder.infra_error = str(e)
        _stop_run(request.config, request.session, f"nvdimm-harness: {e}", 3)
    recorder.guest_config = config
    return config


@pytest.fixture(scope="session")
def guest(request: pytest.FixtureRequest, guest_config):
    recorder: RunRecorder = request.config.pluginmanager.get_plugin("nvh-run-recorder")
    g = Guest(guest_config, console_sink=recorder.results_dir / "console.log")
    recorder.guest = g
    try:
        g.start()
    except BootError as e:
        recorder.infra_error = f"{e}\n--- console tail ---\n{e.console_tail}"
        _stop_run(request.config, request.session, f"nvdimm-harness: {e}", 3)
    except HarnessError as e:
        recorder.infra_error = str(e)
        _stop_run(request.config, request.session, f"nvdimm-harness: {e}", 3)
    yield g
    g.stop()


@pytest.fixture(autouse=True)
def _guest_test_frame(request: pytest.FixtureRequest):
    """Marks the kernel log at the start of every guest test (before its other fixtures)."""
    item = request.node
    if not _is_guest_test(item):
        yield
        return
    g: Guest = request.getfixturevalue("guest")
    if not g.is_alive() or not g.responds():
        # The previous test crashed or wedged the guest: start a fresh one.
        try:
            g.restart()
        except BootError as e:
            recorder: RunRecorder = request.config.pluginmanager.get_plugin("nvh-run-recorder")
            recorder.infra_error = f"guest restart failed: {e}\n{e.console_tail}"
            _stop_run(request.config, request.session,
                      f"nvdimm-harness: guest restart failed: {e}", 3)
    recorder = request.config.pluginmanager.get_plugin("nvh-run-recorder")
    frame = TestFrame(item, g, recorder.artifacts_for(item))
    item.stash[FRAME] = frame
    frame.start()
    yield


@pytest.fixture
def artifacts(request: pytest.FixtureRequest) -> TestArtifacts:
    recorder: RunRecorder = request.config.pluginmanager.get_plugin("nvh-run-recorder")
    return recorder.artifacts_for(request.node)


@pytest.fixture
def ndctl(guest: Guest) -> Ndctl:
    return Ndctl(guest)


def _stay_interrupted():
    """After Ctrl-C/SIGTERM, cleanup code (a `finally:` that talks to the guest) raises its
    own error while the KeyboardInterrupt unwinds, and Python replaces the interrupt with
    it: the test would be recorded as failed and the run would go on to the next test.
    Whatever a phase raises once the run is interrupted is the interrupt."""
    try:
        return (yield)
    except KeyboardInterrupt:
        raise
    except BaseException as e:
        if interrupt.requested():
            raise KeyboardInterrupt(f"interrupted ({type(e).__name__} in cleanup)") from e
        raise


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_setup(item: pytest.Item):
    if interrupt.requested():
        raise KeyboardInterrupt("interrupted")  # a swallowed interrupt: no further test
    return (yield from _stay_interrupted())


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_teardown(item: pytest.Item):
    return (yield from _stay_interrupted())


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item):
    frame = item.stash.get(FRAME, None)
    if frame is None:
        return (yield)
    pins = PinAccounting(frame.guest) if item.get_closest_marker("foll_counters_balanced") else None
    try:
        if pins:
            pins.begin()
        result = yield from _stay_interrupted()
    except BaseException as exc:
        frame.finish(exc)
        raise
    leak = pins.leak() if pins and frame.guest.is_alive() else ""
    frame.finish(None)
    if frame.findings:
        titles = "\n".join(f"  {f.kind}: {f.title} (dmesg line {f.line})" for f in frame.findings)
        raise KernelFindingsError(f"the kernel reported problems during the test:\n{titles}"
                                  + (f"\n{leak}" if leak else ""))
    if leak:
        raise AssertionError(leak)
    return result


class PinAccounting:
    """FOLL_PIN balance over a test: every pin the kernel took was released again."""

    def __init__(self, guest: Guest):
        self.guest = guest
        self.before: dict[str, int] = {}

    def begin(self) -> None:
        self.before = vmstat_pins(self.guest)

    def leak(self) -> str:
        after = vmstat_pins(self.guest)
        return pin_leak_message(self.before, after)


class RunRecorder:
    """Collects one TestRecord per guest test and writes the results directory at the end.

    With pytest-xdist (`--jobs N`, `-n N`) every worker boots its own guest and writes a
    complete results directory of its own to RESULTS/workers/<worker id>/; the controller,
    which runs no test, merges them into RESULTS (harness/merge.py) and removes workers/.
    """

    def __init__(self, config: pytest.Config):
        self.config = config
        self.run_id = new_run_id()
        self.started_wall = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        self.started = time.monotonic()
        results = config.getoption("--results")
        self.results_dir = Path(results) if results else ROOT / "results" / self.run_id
        self.worker = _xdist_worker(config)
        workerinput = getattr(config, "workerinput", {})
        if self.worker and "nvh_results" in workerinput:
            # The controller's run id and directory (a worker would make up its own).
            self.run_id = f"{workerinput['nvh_run_id']}-{self.worker}"
            self.results_dir = Path(workerinput["nvh_results"]) / "workers" / self.worker
        # (exit code, message) a worker stopped the run with (_stop_run).
        self.worker_exit: tuple[int, str] | None = None
        self.records: dict[str, TestRecord] = {}
        self.artifacts: dict[str, TestArtifacts] = {}
        self.guest: Guest | None = None
        self.guest_config = None
        self.infra_error = ""
        self.any_guest_tests = False
        self.known: known_failures.KnownFailures | None = None
        self.running: str | None = None  # the test in progress, named when interrupted

    def pytest_runtest_logstart(self, nodeid: str, location) -> None:
        self.running = nodeid

    def pytest_runtest_logfinish(self, nodeid: str, location) -> None:
        self.running = None

    def interrupted_message(self) -> str:
        during = f" during {self.running}" if self.running else ""
        return f"run interrupted (Ctrl-C or SIGTERM){during}; results are partial"

    def artifacts_for(self, item: pytest.Item) -> TestArtifacts:
        if item.nodeid not in self.artifacts:
            name = result_dir_name(item.nodeid)
            self.artifacts[item.nodeid] = TestArtifacts(self.results_dir / "tests" / name,
                                                        f"tests/{name}")
        return self.artifacts[item.nodeid]

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo):
        report = yield
        if not _is_guest_test(item):
            return report
        self.any_guest_tests = True
        frame = item.stash.get(FRAME, None)
        outcome = _classify(report, call, frame)
        if outcome is None:
            return report
        verdict = self._known_failure(item, outcome, frame) if report.when == "call" else None
        message = _message(report, frame)
        if verdict is not None and verdict.outcome == "failed":
            # The known bug and something else: failed, and the message says both.
            message = f"{verdict.message}\n{message}"[:4000]
        elif verdict is not None:
            outcome = verdict.outcome
            _as_xfail(report, verdict)
        record = self.records.get(item.nodeid)
        if record is None or record.outcome == "passed":
            art = self.artifacts_for(item)
            if report.failed and report.longreprtext:
                art.attach("failure.txt", report.longreprtext)
            self.records[item.nodeid] = TestRecord(
                id=item.nodeid, outcome=outcome, duration_s=round(report.duration, 3),
                message=message,
                kernel_findings=frame.findings_json() if frame else [],
                artifacts=list(art.files), expected=art.expected, observed=art.observed,
                trace_counts=dict(art.trace_counts),
                known_issue=verdict.entry.to_json() if verdict else None,
                checks=[c.to_json() for c in art.checks],
            )
        elif report.when == "call":
            record.duration_s = round(report.duration, 3)
        if report.when == "teardown" and item.nodeid in self.records:
            # Checks recorded in fixture teardown (namespace usable again) count too.
            art = self.artifacts_for(item)
            self.records[item.nodeid].checks = [c.to_json() for c in art.checks]
        return report

    def _known_failure(self, item: pytest.Item, outcome: str,
                       frame: TestFrame | None) -> known_failures.Verdict | None:
        if outcome not in ("passed", "failed", "crashed", "timeout") or frame is None:
            return None
        if self.known is None:
            try:
                self.known = known_failures.load(KNOWN_FAILURES)
            except known_failures.KnownFailuresError as e:
                _stop_run(self.config, item.session, f"nvdimm-harness: {e}", 2, in_test=False)
                return None
        release = self.guest.kernel_release if self.guest else None
        return self.known.judge(item.nodeid, release, outcome == "passed",
                                [f.title for f in frame.findings], frame.artifacts.checks)

    # -- pytest-xdist controller ----------------------------------------------------------
    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node) -> None:
        node.workerinput["nvh_results"] = str(self.results_dir.resolve())
        node.workerinput["nvh_run_id"] = self.run_id

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node, error) -> None:
        stop = getattr(node, "workeroutput", {}).get("nvh_exit")
        if stop and self.worker_exit is None:
            self.worker_exit = (int(stop[0]), str(stop[1]))

    def _is_xdist_controller(self) -> bool:
        return self.config.pluginmanager.has_plugin("dsession")

    # trylast: on the xdist controller, after xdist has shut its workers down.
    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        if self._is_xdist_controller():
            self._merge_workers(session, exitstatus)
            return
        if not (self.any_guest_tests or self.infra_error or self.guest_config):
            return
        if exitstatus == pytest.ExitCode.INTERRUPTED and not self.infra_error:
            self.infra_error = self.interrupted_message()
        for nodeid, record in self.records.items():
            record.artifacts = list(self.artifacts[nodeid].files) if nodeid in self.artifacts \
                else record.artifacts
        tr = self.config.pluginmanager.get_plugin("terminalreporter")
        try:
            write_reports(self.summary(), self.results_dir)
        except OSError as e:
            # Disk full, directory gone: one clear line and exit 3, not an INTERNALERROR.
            session.exitstatus = 3
            if tr:
                tr.write_line(f"nvdimm-harness: cannot write the results to "
                              f"{self.results_dir}: {e.strerror or e}")
            return
        if tr and not self.worker:  # the controller says it once for all workers
            tr.write_line(f"nvdimm-harness: results in {self.results_dir}")

    def _merge_workers(self, session: pytest.Session, exitstatus: int) -> None:
        workers = self.results_dir / "workers"
        dirs = sorted(d for d in workers.iterdir() if d.is_dir()) if workers.is_dir() else []
        tr = self.config.pluginmanager.get_plugin("terminalreporter")
        if self.worker_exit:
            session.exitstatus = self.worker_exit[0]
            if tr:
                tr.write_line(self.worker_exit[1])
        if not dirs:
            return  # no worker ran a guest test
        sources = []
        for d in dirs:
            if (d / "summary.json").is_file():
                sources.append(merge.load_source(d, d.name))
            else:
                # Killed or crashed before sessionfinish: keep its console and say so.
                sources.append(merge.Source(d.name, d, RunSummary(
                    run_id=f"{self.run_id}-{d.name}", started="",
                    infra_error=f"xdist worker {d.name} ended without writing its results "
                                "(crashed or killed)")))
        try:
            run, warnings = merge.merge_dirs(sources, self.results_dir, self.run_id, move=True,
                                             kind="jobs")
            # The controller's clock: worker start-up included, as a user waited for it.
            run.duration_s = round(time.monotonic() - self.started, 1)
            run.started = self.started_wall
            if exitstatus == pytest.ExitCode.INTERRUPTED and not run.infra_error \
                    and not self.worker_exit:
                run.infra_error = "run interrupted (Ctrl-C or SIGTERM); results are partial"
            write_reports(run, self.results_dir)
        except (UsageError, OSError) as e:
            # The workers' directories stay for a look; one line and exit 3.
            session.exitstatus = 3
            if tr:
                tr.write_line(f"nvdimm-harness: cannot merge the workers' results in "
                              f"{workers}: {getattr(e, 'strerror', None) or e}")
            return
        # Everything in it was moved or copied into the run directory.
        shutil.rmtree(workers, ignore_errors=True)
        if run.infra_error and not self.worker_exit \
                and exitstatus != pytest.ExitCode.INTERRUPTED:
            session.exitstatus = 3  # as a single-guest run exits on an infrastructure error
        if tr:
            for w in warnings:
                tr.write_line(f"nvdimm-harness: warning: {w}")
            tr.write_line(f"nvdimm-harness: results in {self.results_dir}")

    def summary(self) -> RunSummary:
        cfg = self.guest_config
        g = self.guest
        run = RunSummary(
            run_id=self.run_id, started=self.started_wall,
            duration_s=round(time.monotonic() - self.started, 1),
            host={"hostname": socket.gethostname(), "cpus": os.cpu_count(),
                  "kernel": platform.release(), "python": platform.python_version()},
            tests=list(self.records.values()), infra_error=self.infra_error,
        )
        shard = self.config.stash.get(SHARD, None)
        run.shard = str(shard) if shard else ""
        if cfg is not None:
            run.qemu = {"version": qemu_version(), "accel": cfg.accel.accel,
                        "accel_reason": cfg.accel.reason}
            release = g.kernel_release if g and g.kernel_release else None
            if release is None and cfg.kernel.source == "distro":
                release = cfg.image.kernel_release
            run.kernel = {"release": release, "source": cfg.kernel.source,
                          "patches": list(cfg.kernel.patches),
                          "config_hash": cfg.kernel.config_hash,
                          "description": cfg.kernel.description}
            run.profile = cfg.profile.to_json()
            run.boot = {"boots": g.boots if g else 0,
                        "first_boot_s": round(g.boot_s, 1) if g and g.boot_s else None,
                        "image": cfg.image.directory.name}
        run.run_findings = [f.to_json() for f in self._findings_outside_tests()]
        return run

    def _findings_outside_tests(self) -> list[kmsg.Finding]:
        """Kernel findings in the console outside every test's begin..end frame."""
        console = self.results_dir / "console.log"
        if not console.exists():
            return []
        lines = console.read_text(errors="replace").splitlines()
        inside: list[bool] = []
        depth = False
        for line in lines:
            if "nvh-mark: begin " in line:
                depth = True
            inside.append(depth)
            if "nvh-mark: end " in line or line.startswith("===== nvdimm-harness: boot"):
                depth = False
        findings = kmsg.scan_kernel_log("\n".join(lines))
        return [f for f in findings if not inside[f.line - 1]]


def _as_xfail(report: pytest.TestReport, verdict: known_failures.Verdict) -> None:
    """pytest's own words for a known bug (xfail) and a fixed one (xpass): a plain
    `pytest testcases/` then exits 0 for them too, as `nvdimm-harness run` does."""
    report.wasxfail = f"known kernel bug: {verdict.entry.finding} ({verdict.entry.reference})"
    if verdict.outcome == "known_failure":
        report.outcome = "skipped"


def _classify(report: pytest.TestReport, call: pytest.CallInfo, frame: TestFrame | None):
    """The DESIGN.md outcome for one phase's report, or None when the phase says nothing."""
    if report.when == "teardown" and frame and frame.guest_stopped:
        return None  # the frame stopped the guest; fixtures had nothing left to clean
    if report.when == "setup":
        if report.skipped:
            return "skipped"
        return "error" if report.failed else None
    if report.when == "call":
        if report.skipped:
            return "skipped"
        if report.passed:
            return "passed"
        if frame and frame.qemu_killed:
            return "error"
        if frame and frame.crashed:
            return "crashed"
        if frame and frame.timed_out:
            return "timeout"
        if call.excinfo and call.excinfo.errisinstance(GuestCommandTimeout):
            return "timeout"
        return "failed"
    return "error" if report.failed else None


def _message(report: pytest.TestReport, frame: TestFrame | None) -> str:
    if frame and frame.qemu_killed:
        return frame.qemu_killed
    if frame and frame.crashed:
        return f"kernel crashed: {frame.crashed}"
    if report.skipped and isinstance(report.longrepr, tuple):
        return str(report.longrepr[2])
    if report.failed:
        crash = getattr(report.longrepr, "reprcrash", None)
        text = crash.message if crash else report.longreprtext
        return text[:4000]
    return ""
