"""pytest glue for the guest suite in testcases/: options, one guest per session, the frame
around every test (harness.frame), outcomes and the results directory (harness.verdict,
harness.recorder). Tests under tests/ (the harness's own) never touch the guest fixtures."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from harness import interrupt, progress
from harness.errors import BootError, HarnessError, PreconditionNotMet, UsageError
from harness.frame import TestArtifacts, TestFrame
from harness.guest import Guest
from harness.guest_options import GuestOptions, add_guest_options
from harness.ndctl import Ndctl
from harness.pinning import PinAccounting
from harness.prepare import prepare
from harness.recorder import RunRecorder
from harness.shard import Shard, parse_shard
from harness.ssh import GuestCommandTimeout
from harness.verdict import Phase, xfail_reason

ROOT = Path(__file__).resolve().parent
TESTCASES = ROOT / "testcases"
# Guest tests that misbehave on purpose, driven by tests/e2e (never part of a suite run).
GUEST_FAULTS = ROOT / "tests" / "guest_faults"
# NVH_KNOWN_FAILURES: another table (an empty one: the known bugs fail the run).
KNOWN_FAILURES = Path(os.environ.get("NVH_KNOWN_FAILURES", TESTCASES / "known_failures.yaml"))


def pytest_addoption(parser: pytest.Parser) -> None:
    g = parser.getgroup("nvdimm-harness")
    add_guest_options(g.addoption)
    g.addoption("--results", help="results directory (default: results/<run-id>)")
    g.addoption("--shard", metavar="K/N", help="run only shard K of N of the selected guest "
                                               "tests (round-robin; for CI matrices)")
    # ndctl's own suites (testcases/upstream, `nvdimm-harness ndctl-test`): collected only
    # when a source is given.
    g.addoption("--ndctl-src", metavar="DIR|TARBALL", help="ndctl source whose meson tests "
                                                          "run (testcases/upstream)")
    g.addoption("--ndctl-suite", default="all", help="dax, ndctl, cxl or all (default)")


UPSTREAM = TESTCASES / "upstream"


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """ndctl's suites are not part of the harness's suite: only with --ndctl-src."""
    if collection_path == UPSTREAM and not config.getoption("--ndctl-src"):
        return True
    return None


def test_id(item: pytest.Item) -> str:
    """The harness's id of a test: its pytest node id, or the id its harness_id marker
    gives (ndctl's tests are ndctl/<suite>/<name>)."""
    marker = item.get_closest_marker("harness_id")
    return marker.args[0] if marker else item.nodeid


SHARD = pytest.StashKey[Shard]()


def _xdist_worker(config: pytest.Config) -> str | None:
    """The xdist worker id ("gw0") when this process is one, else None."""
    return getattr(config, "workerinput", {}).get("workerid")


def pytest_configure(config: pytest.Config) -> None:
    worker = _xdist_worker(config)
    controller = not worker and bool(getattr(config.option, "numprocesses", None))
    # SIGTERM as Ctrl-C, Ctrl-C remembered; the xdist controller passes SIGTERM on.
    interrupt.install_handlers(forward_to_children=controller)
    if config.getoption("--shard") is not None:
        try:
            config.stash[SHARD] = parse_shard(config.getoption("--shard"))
        except UsageError as e:
            pytest.exit(f"nvdimm-harness: {e}", returncode=2)
    # Progress shows through pytest's capture; with --jobs, it says which worker's guest talks.
    capture = config.pluginmanager.getplugin("capturemanager")
    progress.set_writer(progress.stderr_writer(f"[{worker}] " if worker else "",
                                               capture.global_and_fixture_disabled))
    config.addinivalue_line("markers", "expect_kernel(*titles): kernel findings this test "
                                       "provokes on purpose (shown, but not a failure)")
    # Named so that `-k pin` does not select every test carrying it.
    config.addinivalue_line("markers", "foll_counters_balanced: the FOLL_PIN counters of "
                                       "/proc/vmstat must be balanced after the test")
    config.addinivalue_line("markers", "harness_id(id): the test's id in the results "
                                       "(instead of its pytest node id)")
    config.pluginmanager.register(RunRecorderPlugin(config), "nvh-run-recorder")


def _is_guest_test(item: pytest.Item) -> bool:
    return any(d in (TESTCASES, GUEST_FAULTS) for d in Path(item.path).parents)


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
    (RunRecorderPlugin.pytest_testnodedown)."""
    if not _xdist_worker(config):
        pytest.exit(message, returncode=returncode)
    config.workeroutput.setdefault("nvh_exit", [returncode, message])
    session.shouldstop = message
    if in_test:
        pytest.fail(message, pytrace=False)


FRAME = pytest.StashKey[TestFrame]()


def _recorder(config: pytest.Config) -> RunRecorderPlugin:
    return config.pluginmanager.get_plugin("nvh-run-recorder")


def _give_up(request: pytest.FixtureRequest, e: HarnessError, during: str) -> None:
    """No guest to be had: stop the run (RunRecorder.stop_for says how)."""
    _stop_run(request.config, request.session, *_recorder(request.config).stop_for(e, during))


@pytest.fixture(scope="session")
def guest_config(request: pytest.FixtureRequest):
    try:
        config = prepare(GuestOptions.from_flags(request.config.getoption))
    except HarnessError as e:
        _give_up(request, e, "prepare")
    _recorder(request.config).guest_config = config
    return config


@pytest.fixture(scope="session")
def guest(request: pytest.FixtureRequest, guest_config):
    recorder = _recorder(request.config)
    recorder.guest = g = Guest(guest_config, console_sink=recorder.results_dir / "console.log")
    try:
        g.start()
    except HarnessError as e:
        _give_up(request, e, "boot")
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
            _give_up(request, e, "restart")
    expected = [t for m in item.iter_markers("expect_kernel") for t in m.args]
    frame = item.stash[FRAME] = _recorder(request.config).frame_for(test_id(item), expected, g)
    frame.start()
    yield


@pytest.fixture
def artifacts(request: pytest.FixtureRequest) -> TestArtifacts:
    return _recorder(request.config).artifacts_for(test_id(request.node))


@pytest.fixture
def ndctl(guest: Guest) -> Ndctl:
    return Ndctl(guest)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_setup(item: pytest.Item):
    return (yield from interrupt.stay_interrupted(starting=True))


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_teardown(item: pytest.Item):
    return (yield from interrupt.stay_interrupted())


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item):
    frame = item.stash.get(FRAME, None)
    if frame is None:
        return (yield)
    pins = PinAccounting(frame.guest) if item.get_closest_marker("foll_counters_balanced") else None
    return (yield from frame.guard(pins))


class RunRecorderPlugin(RunRecorder):
    """harness.recorder.RunRecorder fed by pytest's hooks (one per process; with xdist the
    controller merges the workers' results directories)."""

    def __init__(self, config: pytest.Config):
        super().__init__(config.getoption("--results"), ROOT / "results", KNOWN_FAILURES,
                         getattr(config, "workerinput", {}), str(config.stash.get(SHARD, "")))
        self.config = config
        self.session: pytest.Session | None = None

    def stop(self, message: str, returncode: int) -> None:
        _stop_run(self.config, self.session, message, returncode, in_test=False)

    def pytest_sessionstart(self, session: pytest.Session) -> None:
        self.session = session

    def pytest_runtest_logstart(self, nodeid: str, location) -> None:
        self.running = nodeid

    def pytest_runtest_logfinish(self, nodeid: str, location) -> None:
        self.running = None

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo):
        report = yield
        if not _is_guest_test(item):
            return report
        crash, raised = getattr(report.longrepr, "reprcrash", None), call.excinfo
        phase = Phase(
            when=report.when, status=report.outcome, duration_s=report.duration,
            longrepr=report.longreprtext, crash_message=crash.message if crash else None,
            skip_reason=str(report.longrepr[2]) if isinstance(report.longrepr, tuple) else None,
            guest_timeout=bool(raised and raised.errisinstance(GuestCommandTimeout)),
            precondition_not_met=bool(raised and raised.errisinstance(PreconditionNotMet)))
        verdict = self.record(test_id(item), phase, item.stash.get(FRAME, None))
        if verdict is not None and verdict.outcome != "failed":  # xfail / xpass
            report.wasxfail = xfail_reason(verdict)
            if verdict.outcome == "known_failure":
                report.outcome = "skipped"
        return report

    # -- pytest-xdist controller ----------------------------------------------------------
    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node) -> None:
        node.workerinput.update(self.worker_input())

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node, error) -> None:
        self.worker_down(getattr(node, "workeroutput", {}))

    # trylast: on the xdist controller, after xdist has shut its workers down.
    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        status, lines = self.finish(interrupted=exitstatus == pytest.ExitCode.INTERRUPTED,
                                    controller=self.config.pluginmanager.has_plugin("dsession"))
        if status is not None:
            session.exitstatus = status
        tr = self.config.pluginmanager.get_plugin("terminalreporter")
        for line in lines if tr else ():
            tr.write_line(line)
