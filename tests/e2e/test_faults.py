"""End to end: faults around real QEMU guests, builds and disks (issue 8, the fault rows).

Each test runs the harness the way a person or CI does and checks the exit code DESIGN.md
promises, that what was written is readable, and that nothing is left: no QEMU (the
`no_new_qemu` tag), no process of a build, no file in the run's private TMPDIR, no mount.
The map of every robustness row to its test is at the top of tests/unit/test_robustness.py.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NVH = [sys.executable, "-m", "harness.cli"]
# One O_DIRECT cell of the default suite: a few seconds in the guest.
ONE_TEST = "fsdax-ext4-mem-read-untouched-4K"
TWO_TESTS = "fsdax-ext4-mem-read-untouched-4K or fsdax-ext4-mem-write-untouched-4K"

pytestmark = pytest.mark.e2e


@pytest.fixture
def private_tmp(tmp_path):
    """TMPDIR for the harness under test: its guest workdirs (GBs of sparse NVDIMM backing
    files) and QEMU's snapshot overlay land here, so "nothing left" is exact."""
    d = tmp_path / "tmp"
    d.mkdir()
    yield d
    shutil.rmtree(d, ignore_errors=True)


def harness_env(private_tmp: Path, **extra: str) -> dict[str, str]:
    return {**os.environ, "TMPDIR": str(private_tmp), **extra}


def nvh(*args: str, env: dict[str, str], timeout: float = 900) -> subprocess.CompletedProcess:
    """The harness in its own session: on timeout the whole group goes (an image build's
    mmdebstrap and apt outlived a SIGKILLed harness in a slow CI run, 2026-12-04)."""
    proc = subprocess.Popen([*NVH, *args], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def assert_nothing_left(private_tmp: Path) -> None:
    assert not list(private_tmp.iterdir()), f"left in TMPDIR: {list(private_tmp.iterdir())}"


def summary(results: Path) -> dict:
    return json.loads((results / "summary.json").read_text())


def outcomes(results: Path) -> dict[str, str]:
    return {t["id"].rsplit("::", 1)[-1]: t["outcome"] for t in summary(results)["tests"]}


@pytest.fixture
def small_tmpfs(tmp_path):
    """A 20 MiB tmpfs (root only), unmounted afterwards whatever happened."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mnt = tmp_path / "small"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=20M", "tmpfs", str(mnt)], check=True)
    try:
        yield mnt
    finally:
        if subprocess.run(["umount", str(mnt)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(mnt)], check=False)


def fill(directory: Path, leave_bytes: int) -> None:
    """Fill the filesystem of `directory` until about `leave_bytes` are free."""
    remaining = max(0, shutil.disk_usage(directory).free - leave_bytes)
    chunk = b"\0" * (1 << 16)
    with open(directory / "filler", "wb", buffering=0) as f:
        while remaining > 0:
            try:
                remaining -= f.write(chunk[:remaining])
            except OSError:
                break


def one_line_error(stderr: str) -> str:
    """The harness's own error lines (progress lines are 'nvdimm-harness: ...' too, but
    errors are the last)."""
    assert "Traceback" not in stderr and "INTERNALERROR" not in stderr, stderr[-3000:]
    lines = [ln for ln in stderr.splitlines() if ln.startswith("nvdimm-harness: ")]
    assert lines, stderr[-3000:]
    return lines[-1]


# -- QEMU fails to start --------------------------------------------------------------------
def test_missing_qemu_binary_is_exit_3(tmp_path, private_tmp, no_new_qemu):
    results = tmp_path / "r"
    proc = nvh("run", "--accel", "tcg", "-k", ONE_TEST, "--results", str(results),
               env=harness_env(private_tmp, NVH_QEMU="/nonexistent/qemu-system-x86_64"))
    assert proc.returncode == 3, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "QEMU binary '/nonexistent/qemu-system-x86_64' not found" in \
        summary(results)["infra_error"]
    assert "not found" in proc.stdout + proc.stderr
    assert_nothing_left(private_tmp)


def test_qemu_refusing_an_option_is_exit_3_with_its_message(tmp_path, private_tmp,
                                                            no_new_qemu):
    # A QEMU that gets one option it cannot accept, as a wrong build or a typo in a
    # wrapper would give it: NVH_QEMU is the documented override of the binary.
    wrapper = tmp_path / "qemu-wrapper"
    wrapper.write_text(f'#!/bin/sh\nexec {shutil.which("qemu-system-x86_64")} "$@" '
                       "-device nvh-no-such-device\n")
    wrapper.chmod(0o755)
    results = tmp_path / "r"
    proc = nvh("run", "--accel", "tcg", "-k", ONE_TEST, "--results", str(results),
               env=harness_env(private_tmp, NVH_QEMU=str(wrapper)))
    assert proc.returncode == 3, proc.stdout[-2000:] + proc.stderr[-2000:]
    qemu_says = "'nvh-no-such-device' is not a valid device model name"
    error = summary(results)["infra_error"]
    assert "QEMU exited at startup" in error and qemu_says in error, error
    assert qemu_says in proc.stdout + proc.stderr
    assert qemu_says in html.unescape((results / "report.html").read_text())
    assert_nothing_left(private_tmp)


def test_a_kernel_that_triple_faults_in_early_boot_is_named_as_such(tmp_path, private_tmp,
                                                                     no_new_qemu):
    # A real QEMU booting a deliberately broken kernel (tests/data/triple_fault_kernel.py):
    # it dies before its console is up, which QEMU alone can tell ("Triple fault").
    sys.path.insert(0, str(ROOT / "tests" / "data"))
    from triple_fault_kernel import triple_fault_kernel

    kernel = tmp_path / "vmlinux"
    kernel.write_bytes(triple_fault_kernel())
    results = tmp_path / "r"
    proc = nvh("run", "--accel", "tcg", "--kernel", str(kernel), "-k", ONE_TEST,
               "--results", str(results), env=harness_env(private_tmp))
    assert proc.returncode == 3, proc.stdout[-2000:] + proc.stderr[-2000:]
    error = summary(results)["infra_error"]
    assert error.startswith("boot failed: the guest reset before its console came up: triple "
                            "fault in early boot; QEMU logged 'Triple fault'; the kernel's PVH "
                            "entry (an ELF vmlinux) faulted: try its bzImage"), error
    assert "QEMU exited (status 0)" not in error
    assert_nothing_left(private_tmp)


def test_taken_port_shows_qemus_message_and_the_launch_retries(tmp_path, private_tmp,
                                                               no_new_qemu, monkeypatch):
    from harness import guest as guest_mod
    from harness.errors import InfraError
    from harness.prepare import GuestOptions, prepare
    from harness.qemu import QEMU_BINARY, GuestFiles, QemuMachine, free_loopback_port

    monkeypatch.setenv("TMPDIR", str(private_tmp))
    monkeypatch.setattr("tempfile.tempdir", None)  # tempfile caches TMPDIR: look again
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    port = busy.getsockname()[1]
    try:
        # QEMU's own words for a taken port, without booting anything (-S).
        files = GuestFiles(private_tmp)
        argv = [QEMU_BINARY, "-S",
                "-name", "nvdimm-harness,process=nvh-port-test", "-nodefaults",
                "-display", "none", "-qmp", f"unix:{files.qmp_socket},server=on,wait=off",
                "-netdev", f"user,id=n,hostfwd=tcp:127.0.0.1:{port}-:22",
                "-device", "virtio-net-pci,netdev=n"]
        machine = QemuMachine(argv, files)
        with pytest.raises(InfraError) as e:
            machine.launch()
        machine.shutdown()
        assert "QEMU exited at startup" in str(e.value)
        assert f"Could not set up host forwarding rule 'tcp:127.0.0.1:{port}-:22'" \
            in str(e.value)
        for f in private_tmp.iterdir():
            f.unlink()

        # The guest's launch loop: the first port it is handed is taken (another run got it
        # between the probe and QEMU's bind), the second one is free.
        ports = iter([port, free_loopback_port()])
        monkeypatch.setattr(guest_mod, "free_loopback_port", lambda: next(ports))
        g = guest_mod.Guest(prepare(GuestOptions(accel="tcg")))
        try:
            g.files = GuestFiles(Path(guest_mod.tempfile.mkdtemp(prefix="nvh-guest-")))
            g._create_disks()
            g._launch_qemu()
            assert g.ssh_port != port and g.is_alive()
        finally:
            g.stop()
    finally:
        busy.close()
    assert_nothing_left(private_tmp)


# -- QEMU killed, guest unreachable, mid-test --------------------------------------------------
def test_qemu_killed_mid_test_is_error_and_the_next_test_gets_a_fresh_guest(
        tmp_path, private_tmp, no_new_qemu):
    results = tmp_path / "results"
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q",
                           "tests/guest_faults/test_qemu_killed.py", "--accel", "tcg",
                           "--results", str(results)],
                          cwd=ROOT, capture_output=True, text=True, timeout=900,
                          env=harness_env(private_tmp))
    elapsed = time.monotonic() - started
    assert outcomes(results) == {"test_1_qemu_killed_mid_command": "error",
                                 "test_2_next_test_runs_on_a_fresh_guest": "passed"}, \
        proc.stdout[-3000:]
    killed = next(t for t in summary(results)["tests"] if "killed" in t["id"])
    assert "QEMU was killed by signal 9 (SIGKILL)" in killed["message"], killed["message"]
    assert killed["duration_s"] < 60  # ended when the connection went, not at the deadline
    assert summary(results)["boot"]["boots"] == 2
    assert proc.returncode == 1
    assert elapsed < 600
    assert_nothing_left(private_tmp)


def test_unreachable_guest_times_out_and_the_next_test_gets_a_fresh_guest(
        tmp_path, private_tmp, no_new_qemu):
    results = tmp_path / "results"
    proc = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q",
                           "tests/guest_faults/test_unreachable.py", "--accel", "tcg",
                           "--results", str(results)],
                          cwd=ROOT, capture_output=True, text=True, timeout=900,
                          env=harness_env(private_tmp))
    assert outcomes(results) == {"test_1_sshd_killed": "timeout",
                                 "test_2_network_down": "timeout",
                                 "test_3_next_test_runs_on_a_fresh_guest": "passed"}, \
        proc.stdout[-3000:]
    tests = {t["id"].rsplit("::", 1)[-1]: t for t in summary(results)["tests"]}
    assert "connection to the guest was lost" in tests["test_1_sshd_killed"]["message"]
    assert "did not finish within 10s" in tests["test_2_network_down"]["message"]
    # Each ends by its deadline (command 10-20 s + 15 s grace + the frame's own checks).
    assert tests["test_1_sshd_killed"]["duration_s"] < 20 + 15 + 30
    assert tests["test_2_network_down"]["duration_s"] < 10 + 15 + 30
    assert summary(results)["boot"]["boots"] == 3
    assert proc.returncode == 1
    assert_nothing_left(private_tmp)


# -- disk full -------------------------------------------------------------------------------
def test_full_cache_disk_is_a_clear_error_and_nothing_half_built_is_reused(
        small_tmpfs, private_tmp, no_new_qemu, list_processes_under):
    processes_under = list_processes_under
    if not shutil.which("mmdebstrap"):
        pytest.skip("mmdebstrap missing (make setup installs it)")
    env = harness_env(private_tmp, NVH_CACHE_DIR=str(small_tmpfs))
    for attempt in (1, 2):  # the second must fail the same way, not reuse a half entry
        proc = nvh("image", "build", env=env, timeout=1200)
        assert proc.returncode == 3, (attempt, proc.stderr[-3000:])
        line = one_line_error(proc.stderr)
        assert re.search(r"no space left in the cache .* \(\d+ MiB free now\) while "
                         r"building debian-bookworm-", line), line
        images = small_tmpfs / "images"
        assert [p.name for p in images.iterdir() if not p.name.endswith(".lock")] == [], \
            list(images.iterdir())
    assert not processes_under(small_tmpfs)
    assert shutil.disk_usage(small_tmpfs).used < 1 << 20  # the partial build was removed
    assert_nothing_left(private_tmp)


def test_full_results_disk_before_the_run_is_exit_3_before_booting(small_tmpfs, private_tmp,
                                                                   no_new_qemu):
    fill(small_tmpfs, leave_bytes=2 << 20)
    proc = nvh("run", "-k", ONE_TEST, "--results", str(small_tmpfs / "r"),
               env=harness_env(private_tmp), timeout=120)
    assert proc.returncode == 3, proc.stderr[-2000:]
    line = one_line_error(proc.stderr)
    assert "no space left for results" in line, line
    assert not (small_tmpfs / "r").exists()
    assert_nothing_left(private_tmp)


def test_results_disk_filling_up_mid_run_is_exit_3_and_cleans_up(small_tmpfs, private_tmp,
                                                                 no_new_qemu, list_our_qemus):
    our_qemus = list_our_qemus
    results = small_tmpfs / "r"
    proc = subprocess.Popen([*NVH, "run", "--accel", "tcg", "-k", ONE_TEST,
                             "--results", str(results)], cwd=ROOT, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=harness_env(private_tmp))
    # Fill the disk once the guest is booting: every later write into results fails.
    deadline = time.monotonic() + 300
    while not our_qemus() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.5)
    assert our_qemus(), "the run never started QEMU"
    fill(small_tmpfs, leave_bytes=0)
    out, err = proc.communicate(timeout=900)
    assert proc.returncode == 3, out[-3000:] + err[-3000:]
    assert "Traceback" not in err and "INTERNALERROR" not in out + err, out[-3000:]
    assert "cannot write the results" in out + err or "the disk filled up" in err, \
        out[-3000:] + err[-3000:]
    assert "no space left on device" in (out + err).lower()
    assert_nothing_left(private_tmp)


# -- two runs at once ------------------------------------------------------------------------
def test_two_runs_at_once_do_not_clash(tmp_path, private_tmp, no_new_qemu, list_our_qemus):
    our_qemus = list_our_qemus
    runs = [subprocess.Popen([*NVH, "run", "-k", ONE_TEST, "--results", str(tmp_path / n)],
                             cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             text=True, env=harness_env(private_tmp))
            for n in ("a", "b")]
    seen: dict[int, tuple[str, str]] = {}  # pid -> (ssh port, guest workdir)
    both_at_once = False
    outputs = {}

    def drain(i, p):
        outputs[i] = p.communicate(timeout=1200)[0]

    readers = [threading.Thread(target=drain, args=(i, p)) for i, p in enumerate(runs)]
    for r in readers:
        r.start()
    while any(p.poll() is None for p in runs):
        live = our_qemus()
        for pid in live:
            try:
                cmd = Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
            except OSError:
                continue
            port = next(re.search(r"hostfwd=tcp:127\.0\.0\.1:(\d+)-", a).group(1)
                        for a in cmd if "hostfwd=" in a)
            workdir = next(str(Path(re.search(r"mem-path=([^,]+)", a).group(1)).parent)
                           for a in cmd if "mem-path=" in a)
            seen[pid] = (port, workdir)
        both_at_once |= len(live) >= 2
        time.sleep(0.5)
    for r in readers:
        r.join()
    for i, p in enumerate(runs):
        assert p.returncode == 0, outputs[i][-3000:]
    assert both_at_once, "the two guests never ran at the same time"
    ports = [port for port, _ in seen.values()]
    workdirs = [w for _, w in seen.values()]
    assert len(set(ports)) == len(ports) and len(set(workdirs)) == len(workdirs), seen
    for n in ("a", "b"):
        assert outcomes(tmp_path / n) == {f"test_odirect[{ONE_TEST}]": "passed"}
    assert_nothing_left(private_tmp)


# -- Ctrl-C / SIGTERM at every phase ---------------------------------------------------------
def _interrupt(proc: subprocess.Popen, sig: int) -> tuple[float, str]:
    """Ctrl-C is what a terminal does (SIGINT to the whole process group); SIGTERM is what
    CI and `kill` do (to the harness alone). Returns (seconds to exit, output)."""
    sent = time.monotonic()
    if sig == signal.SIGINT:
        os.killpg(proc.pid, signal.SIGINT)
    else:
        proc.send_signal(signal.SIGTERM)
    try:
        out, _ = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        pytest.fail(f"did not stop within 60 s of {signal.Signals(sig).name}:\n{out[-3000:]}")
    took = time.monotonic() - sent
    print(f"stopped {took:.1f}s after {signal.Signals(sig).name}, exit {proc.returncode}")
    return took, out


def _wait_for_line(proc: subprocess.Popen, pattern: str, timeout: float) -> list[str]:
    lines: list[str] = []
    end = time.monotonic() + timeout
    assert proc.stdout is not None
    for line in proc.stdout:
        lines.append(line)
        if re.search(pattern, line) or time.monotonic() > end:
            break
    assert any(re.search(pattern, ln) for ln in lines), "".join(lines)[-3000:]
    return lines


EXIT = {signal.SIGINT: 130, signal.SIGTERM: 143}


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_interrupt_during_the_image_build(tmp_path, private_tmp, no_new_qemu, sig,
                                         list_processes_under):
    processes_under = list_processes_under
    if os.geteuid() != 0 or not shutil.which("mmdebstrap"):
        pytest.skip("the image build needs root and mmdebstrap")
    cache = tmp_path / "cache"  # empty: the image must be built
    proc = subprocess.Popen([*NVH, "image", "build"], cwd=ROOT, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True,
                            env=harness_env(private_tmp, NVH_CACHE_DIR=str(cache)))
    _wait_for_line(proc, r"building guest image", 60)
    time.sleep(10)  # well inside mmdebstrap (~2 min)
    assert processes_under(cache), "no build running to interrupt"
    took, out = _interrupt(proc, sig)
    assert proc.returncode == EXIT[sig], out[-3000:]
    assert took < 20, f"took {took:.1f}s to stop"
    assert "Traceback" not in out
    time.sleep(1)
    assert not processes_under(cache), processes_under(cache)
    with open("/proc/self/mounts") as f:
        assert str(cache) not in f.read(), "a mount of the build was left"
    entries = list((cache / "images").iterdir())
    assert all(p.name.endswith(".lock") for p in entries), entries  # no half entry
    assert_nothing_left(private_tmp)
    shutil.rmtree(cache, ignore_errors=True)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_interrupt_while_a_test_waits_in_the_guest(tmp_path, private_tmp, no_new_qemu, sig):
    """The slow case: the interrupt lands in a guest command inside an fsdax mount whose
    cleanup talks to the guest. Stopping used to wait for umount and the namespace reset
    over SSH (over 60 s under load), and the cleanup's error replaced the interrupt: the
    test was recorded failed and the run went on."""
    results = tmp_path / "results"
    mark = tmp_path / "waiting"
    proc = subprocess.Popen([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q",
                             "tests/guest_faults/test_interrupted.py", "--accel", "tcg",
                             "--results", str(results)], cwd=ROOT, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True,
                            env=harness_env(private_tmp, NVH_FAULT_MARK=str(mark)))
    deadline = time.monotonic() + 600
    while not mark.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert mark.exists(), "the test never reached its guest command"
    time.sleep(2)
    took, out = _interrupt(proc, sig)
    assert proc.returncode == pytest.ExitCode.INTERRUPTED, out[-3000:]
    assert took < 10, f"took {took:.1f}s to stop"
    assert "Traceback" not in out and "INTERNALERROR" not in out, out[-3000:]
    run = summary(results)
    assert run["infra_error"].startswith("run interrupted (Ctrl-C or SIGTERM) during "
                                         "tests/guest_faults/test_interrupted.py::"
                                         "test_1_waits_in_the_guest"), run["infra_error"]
    assert run["tests"] == [], run["tests"]  # neither failed nor run on
    console = (results / "console.log").read_text(errors="replace")
    assert "nvh-fault: cleanup ran" not in console, "a guest command was sent after the interrupt"
    # Its kernel log, from the console (no dmesg over SSH after the interrupt).
    assert (results / "tests" / "test_1_waits_in_the_guest" / "dmesg.txt").is_file()
    assert_nothing_left(private_tmp)


@pytest.fixture(scope="module")
def kernel_tree() -> Path:
    tree = os.environ.get("NVH_TEST_KERNEL_TREE") or subprocess.run(
        [str(ROOT / "tools" / "fetch-linux-source.sh")], capture_output=True, text=True,
        check=True, env={k: v for k, v in os.environ.items() if k != "NVH_CACHE_DIR"},
    ).stdout.strip()
    return Path(tree)


@pytest.mark.slow  # copies a 1.5 GB tree and starts a real build (~3 min)
def test_sigterm_during_the_kernel_build(tmp_path, private_tmp, kernel_tree,
                                         list_processes_under):
    processes_under = list_processes_under
    cache = tmp_path / "cache"  # empty: nothing to reuse, the build starts from scratch
    proc = subprocess.Popen([*NVH, "kernel", "build", "--tree", str(kernel_tree)], cwd=ROOT,
                            text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True,
                            env=harness_env(private_tmp, NVH_CACHE_DIR=str(cache)))
    try:
        _wait_for_line(proc, r"objects built", 900)  # compiling, past config and copy
        time.sleep(5)
        assert any("gcc" in p or "make" in p for p in processes_under(cache))
        took, out = _interrupt(proc, signal.SIGTERM)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 143, out[-3000:]
    assert took < 20, f"took {took:.1f}s to stop"
    assert "Traceback" not in out
    time.sleep(1)
    assert not processes_under(cache), processes_under(cache)
    kernels = cache / "kernels"
    assert not kernels.exists() or all(p.name.endswith(".lock") for p in kernels.iterdir()), \
        list(kernels.iterdir())
    assert_nothing_left(private_tmp)
    shutil.rmtree(cache, ignore_errors=True)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["sigterm", "ctrl-c"])
@pytest.mark.parametrize("phase", ["boot", "test"])
def test_interrupted_run_stops_its_guest_and_keeps_results(tmp_path, private_tmp, no_new_qemu,
                                                           phase, sig, list_our_qemus):
    our_qemus = list_our_qemus
    results = tmp_path / "results"
    proc = subprocess.Popen([*NVH, "run", "--accel", "tcg", "-k", TWO_TESTS,
                             "--results", str(results)], cwd=ROOT, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True, env=harness_env(private_tmp))
    if phase == "boot":
        _wait_for_line(proc, r"booting guest", 300)
        time.sleep(3)
        assert our_qemus(), "QEMU is not running"
    else:
        # The first test passed, the second is running.
        _wait_for_line(proc, r"PASSED", 600)
        time.sleep(1)
    took, out = _interrupt(proc, sig)
    assert proc.returncode == EXIT[sig], out[-3000:]
    assert took < 30, f"took {took:.1f}s to stop"
    run = summary(results)
    assert "interrupted" in run["infra_error"]
    assert (results / "console.log").stat().st_size > 0
    assert (results / "report.html").stat().st_size > 0
    if phase == "test":
        assert run["tests"] and run["tests"][0]["outcome"] == "passed", run["tests"]
    assert_nothing_left(private_tmp)
