"""What the pytest glue (conftest.py) takes from the harness for Ctrl-C/SIGTERM and its
options: the signal handlers, the phase wrapper that keeps an interrupt an interrupt,
progress printed around pytest's capture, and the guest options by flag."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time

import pytest

from harness import interrupt, progress
from harness.prepare import GuestOptions


@pytest.fixture
def handlers():
    """The process's SIGINT/SIGTERM handlers, restored afterwards."""
    saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    yield
    for s, h in saved.items():
        signal.signal(s, h)


def test_sigterm_unwinds_like_ctrl_c_and_is_remembered(handlers):
    interrupt.install_handlers()
    with pytest.raises(KeyboardInterrupt, match="SIGTERM"):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)
    assert interrupt.requested() == signal.SIGTERM


def test_a_custom_sigint_handler_is_left_alone(handlers):
    def mine(signum, frame):
        pass

    signal.signal(signal.SIGINT, mine)
    interrupt.install_handlers()
    assert signal.getsignal(signal.SIGINT) is mine
    signal.signal(signal.SIGINT, signal.default_int_handler)
    interrupt.install_handlers()
    assert signal.getsignal(signal.SIGINT) is interrupt.raise_keyboard_interrupt


def test_the_xdist_controller_passes_sigterm_on_to_its_children(handlers):
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        assert child.pid in interrupt.child_pids()
        interrupt.install_handlers(forward_to_children=True)
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)
        assert child.wait(timeout=10) == -signal.SIGTERM
    finally:
        with contextlib.suppress(OSError):
            child.kill()
        child.wait()


def wrapped(starting: bool = False):
    gen = interrupt.stay_interrupted(starting)
    next(gen)
    return gen


def test_stay_interrupted_passes_results_and_errors_through():
    with pytest.raises(StopIteration) as done:
        wrapped().send(42)
    assert done.value.value == 42
    with pytest.raises(ValueError):
        wrapped().throw(ValueError("a test's own failure"))


def test_once_interrupted_a_cleanup_error_is_the_interrupt():
    gen = wrapped()
    interrupt.note(signal.SIGINT)
    with pytest.raises(KeyboardInterrupt, match=r"interrupted \(OSError in cleanup\)"):
        gen.throw(OSError("socket closed"))
    with pytest.raises(KeyboardInterrupt, match=r"^interrupted$"):
        wrapped(starting=True)  # no further test starts


def test_progress_is_printed_around_capture_with_the_worker_s_prefix(capfd):
    entered = []

    @contextlib.contextmanager
    def uncaptured():
        entered.append(True)
        yield

    progress.stderr_writer("[gw1] ", uncaptured)("nvdimm-harness: booting guest ...")
    assert entered == [True]
    assert capfd.readouterr().err == "[gw1] nvdimm-harness: booting guest ...\n"
    progress.stderr_writer()("plain")
    assert capfd.readouterr().err == "plain\n"


def test_guest_options_from_flags():
    given = {"--profile": "small", "--kernel": "bzImage", "--accel": "tcg", "--recipe": None,
             "--modules": None, "--kernel-tree": "/src/linux", "--patches": ["a.patch"],
             "--config": []}
    assert GuestOptions.from_flags(given.get) == GuestOptions(
        profile="small", kernel="bzImage", accel="tcg", kernel_tree="/src/linux",
        patches=("a.patch",))
