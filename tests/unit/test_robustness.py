"""Issue 8: every bad input and fault gets a clear answer, nothing leaks, nothing is lost.

Row of the issue -> the test that proves it (u: tests/unit, e: tests/e2e; names without a
file are in this file).

Bad input: one line naming what is wrong, exit 2, no traceback, nothing left behind
  profile not YAML (syntax, not UTF-8, empty)   test_bad_profile_is_one_line_exit_2[not-yaml,
                                                 not-utf8,empty]; u/test_profile.py::
                                                 test_not_yaml_is_one_line
  profile unknown key                           ...[unknown-key, unknown-nvdimm-key];
                                                 u/test_cli.py::test_broken_profiles_exit_2_*
  profile wrong type                            ...[wrong-type-cpus, nvdimms-not-a-list,
                                                 size-not-a-size, scratch-not-a-mapping]
  negative / too small / zero NVDIMM size       ...[negative-size, size-below-16M, zero-size]
  label area below QEMU's 128 KiB               ...[label-below-128K]
  more NVDIMMs than slots                       ...[more-nvdimms-than-slots]
  total over maxmem                             ...[over-maxmem]
  RAM larger than the host can give             test_ram_larger_than_the_host_is_exit_2
  missing kernel / not a kernel / a directory   test_bad_path_is_one_line_exit_2[kernel-*]
  missing modules                               ...[modules-missing]
  missing tree / not a kernel tree              ...[tree-missing, tree-not-a-kernel-tree]
  missing patch / not a patch / empty dir       ...[patch-missing, patch-not-a-patch,
                                                 patch-dir-with-a-non-patch, patch-dir-empty]
  missing config fragment                       ...[config-missing]
  --results that is a file / not creatable      ...[results-is-a-file, results-not-a-disk]
  unknown accel                                 test_bad_option_is_one_line_exit_2[accel-*]
  --accel kvm where KVM does not work (exit 3)  test_accel_kvm_without_kvm_is_exit_3_with_
                                                 the_reason (reason from the real probe on the
                                                 project machines: MSR 0x10a, see README)
  bad -k expression (pytest's exit 4 -> 2)      test_bad_keyword_is_exit_2_before_anything_runs
  -k that selects nothing                       test_keyword_selecting_nothing_is_exit_2
  --shard 3/2                                   u/test_shard.py::
                                                 test_run_rejects_bad_values_in_one_line
  --jobs 0                                      u/test_shard.py (same test)

Faults: exit code per DESIGN.md, partial results kept and readable, no stray QEMU
  QEMU fails to start: missing binary           e/test_faults.py::test_missing_qemu_binary_*
    bad option (QEMU's own message)             e/test_faults.py::test_qemu_refusing_an_option_*
    port taken (QEMU's message + retry)         e/test_faults.py::test_taken_port_*;
                                                 test_launch_retries_a_taken_port,
                                                 test_launch_gives_up_with_qemus_message
  QEMU SIGKILLed mid-test -> error, fresh guest e/test_faults.py::test_qemu_killed_mid_test_*;
                                                 test_lost_ssh_connection_ends_the_command_now,
                                                 test_killed_by_names_an_outside_signal
    (the harness itself SIGKILLed: its QEMU     test_workdir_of_a_killed_harness_is_removed_
    dies by PDEATHSIG, its workdir goes next)    by_the_next_guest
  guest panics during boot -> exit 3 + tail     e/test_kernel.py::test_boot_panic_is_exit_3_*
  guest panics mid-test -> crashed, continue    e/test_hang.py::test_a_panic_mid_suite_*
  guest stops answering: SSH hangs (VM frozen,  e/test_hang.py::test_hangs_time_out_and_the_*
    task in D state)
    sshd killed, network down -> timeout        e/test_faults.py::test_unreachable_guest_*
  disk full, cache -> clear error, no half      e/test_faults.py::test_full_cache_disk_*;
    entry reused                                 test_full_cache_disk_is_named_and_leaves_no_
                                                 entry, test_incomplete_entry_is_never_reused,
                                                 test_stale_staging_dirs_are_removed
  disk full, results dir                        e/test_faults.py::test_full_results_disk_*,
                                                 test_results_disk_filling_up_mid_run_*;
                                                 test_console_sink_on_a_full_disk_*,
                                                 test_reports_on_a_full_disk_leave_no_tmp_file
  two runs at once: ports, files, overlays,     e/test_faults.py::test_two_runs_at_once_*;
    cache builds under a lock                    u/test_cache.py (one build, others wait)
  Ctrl-C / SIGTERM: image build                 e/test_faults.py::test_interrupt_during_the_
                                                 image_build[ctrl-c, sigterm]
    kernel build                                e/test_faults.py::test_sigterm_during_the_
                                                 kernel_build;
                                                 test_interrupted_build_command_stops_its_tree
    boot                                        e/test_faults.py::test_interrupted_run_*[boot-*];
                                                 e/test_run.py::test_ctrl_c_mid_run_*,
                                                 e/test_run.py::test_sigterm_to_boot_*
    test                                        e/test_faults.py::test_interrupted_run_*[test-*]
    a test waiting in the guest, with cleanup   e/test_faults.py::test_interrupt_while_a_test_
      that talks to it (no SSH after the         waits_in_the_guest[ctrl-c, sigterm];
      interrupt, the run does not go on)         test_after_an_interrupt_no_guest_command_*
  build step failing before the compile         test_kernel_config_step_failure_is_exit_3
Proof
  make soak (5 runs, verdicts identical, 0 new  tools/soak.py, test_soak_* below; figures in
    QEMU, 0 new /tmp entries)                    README "Measured on the project's machines"
                                                 (measured, not a pytest test: it takes hours)
"""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import ClassVar

import pytest

from harness import cache, guest, image, interrupt, kernel, progress, results, ssh
from harness.cli import ROOT, main
from harness.errors import InfraError
from harness.qemu import GuestFiles

DATA = Path(__file__).resolve().parent.parent / "data"


@pytest.fixture
def nothing_left(tmp_path, monkeypatch):
    """A bad input must leave nothing: no cache entry, no guest dir, no results dir."""
    cache_dir = tmp_path / "cache"
    monkeypatch.setenv("NVH_CACHE_DIR", str(cache_dir))
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setenv("TMPDIR", str(scratch))
    monkeypatch.setattr("tempfile.tempdir", None)
    results_before = set((ROOT / "results").glob("*")) if (ROOT / "results").exists() \
        else set()
    yield
    assert not cache_dir.exists() or not any(cache_dir.rglob("*")), list(cache_dir.rglob("*"))
    assert not any(scratch.iterdir()), list(scratch.iterdir())
    after = set((ROOT / "results").glob("*")) if (ROOT / "results").exists() else set()
    assert after == results_before


def run_cli(capsys, *argv: str) -> tuple[int, str]:
    status = main(list(argv))
    _out, err = capsys.readouterr()
    return status, err


def assert_one_line(err: str, *texts: str) -> None:
    assert err.count("\n") == 1, err
    assert "Traceback" not in err
    for text in texts:
        assert text in err, err


# -- bad profiles ----------------------------------------------------------------------------
BAD_PROFILES = {
    "not-yaml": (b"nvdimms: [size: 1G\n  - ]]\n", "line 2: not valid YAML"),
    "not-utf8": (b"\xff\xfe\x00nvdimms", "not valid YAML: not UTF-8 text (byte 0xff"),
    "empty": (b"", "(top level): must be a mapping, got an empty file"),
    "unknown-key": (b"nvdimms: [{size: 1G}]\ncolour: red\n", "colour: unknown key"),
    "unknown-nvdimm-key": (b"nvdimms: [{size: 1G, speed: fast}]\n",
                           "nvdimms[0].speed: unknown key"),
    "wrong-type-cpus": (b"nvdimms: [{size: 1G}]\ncpus: two\n",
                        "cpus: must be an integer, got 'two'"),
    "nvdimms-not-a-list": (b"nvdimms: {size: 1G}\n", "nvdimms: must be a non-empty list"),
    "size-not-a-size": (b"nvdimms: [{size: [1]}]\n", "nvdimms[0].size: [1] is not a size"),
    "scratch-not-a-mapping": (b"nvdimms: [{size: 1G}]\nscratch_disk: 1G\n",
                              "scratch_disk: must be a mapping"),
    "negative-size": (b"nvdimms: [{size: -1G}]\n", "nvdimms[0].size: must be positive"),
    "zero-size": (b"nvdimms: [{size: 0}]\n", "nvdimms[0].size: must be positive"),
    "size-below-16M": (b"nvdimms: [{size: 8M}]\n", "nvdimms[0].size: must be a multiple of 16M"),
    "label-below-128K": (b"nvdimms: [{size: 1G, label_size: 64K}]\n",
                         "nvdimms[0].label_size: QEMU needs at least 128K, got 64K"),
    "more-nvdimms-than-slots": (b"nvdimms: [{size: 1G}, {size: 1G}]\nslots: 1\n",
                                "slots: 2 NVDIMMs need 2 slots, profile has 1"),
    "over-maxmem": (b"nvdimms: [{size: 1G}]\nmaxmem: 2G\n",
                    "maxmem: 2G is below RAM + NVDIMM backends"),
}


@pytest.mark.parametrize("name", list(BAD_PROFILES))
@pytest.mark.parametrize("command", ["run", "qemu-cmd", "boot"])
def test_bad_profile_is_one_line_exit_2(capsys, tmp_path, nothing_left, name, command):
    content, text = BAD_PROFILES[name]
    path = tmp_path / f"{name}.yaml"
    path.write_bytes(content)
    status, err = run_cli(capsys, command, "--profile", str(path))
    assert status == 2
    assert_one_line(err, f"nvdimm-harness: {path}: ", text)


def test_ram_larger_than_the_host_is_exit_2(capsys, tmp_path, nothing_left, monkeypatch):
    from harness import profile

    monkeypatch.setattr(profile, "host_mem_available", lambda: 4 << 30)
    path = tmp_path / "big.yaml"
    path.write_text("nvdimms: [{size: 1G}]\nmemory: 8G\n")
    status, err = run_cli(capsys, "run", "--profile", str(path))
    assert status == 2
    assert_one_line(err, "memory: 8G is more than the host can give (4096 MiB available)")


# -- bad paths -------------------------------------------------------------------------------
def _paths(tmp: Path) -> dict[str, tuple[list[str], str]]:
    fake_kernel = tmp / "bzImage"
    fake_kernel.write_bytes(os.urandom(4096))
    real_kernel = tmp / "real-bzImage"  # only the boot header is looked at
    real_kernel.write_bytes(b"\0" * 0x202 + b"HdrS" + b"\0" * 64)
    not_patch = tmp / "0001-notes.patch"
    not_patch.write_text("Just some notes, no diff here.\n")
    patch_dir = tmp / "series"
    patch_dir.mkdir()
    (patch_dir / "0001-a.patch").write_text("not a diff\n")
    empty_dir = tmp / "empty"
    empty_dir.mkdir()
    tree = tmp / "tree"  # enough of a kernel tree for the cheap checks
    (tree / "arch" / "x86").mkdir(parents=True)
    (tree / "Makefile").write_text("VERSION = 6\nPATCHLEVEL = 1\n")
    (tree / "Kconfig").write_text("")
    return {
        "kernel-missing": (["--kernel", str(tmp / "nope")], "--kernel: "),
        "kernel-not-a-kernel": (["--kernel", str(fake_kernel)],
                                "not an x86 kernel image (no 'HdrS' boot header)"),
        "kernel-a-directory": (["--kernel", str(tmp)], "not a regular file"),
        "modules-missing": (["--kernel", str(real_kernel), "--modules", str(tmp / "nope")],
                            "--modules: "),
        "tree-missing": (["--kernel-tree", str(tmp / "nope")],
                         f"--kernel-tree: {tmp / 'nope'}: no such directory"),
        "tree-not-a-kernel-tree": (["--kernel-tree", str(empty_dir)],
                                   "not a Linux kernel tree"),
        "patch-missing": (["--kernel-tree", str(tree), "--patches", str(tmp / "x.patch")],
                          "--patches: "),
        "patch-not-a-patch": (["--kernel-tree", str(tree), "--patches", str(not_patch)],
                              f"--patches: {not_patch}: not a patch (no diff in it)"),
        "patch-dir-with-a-non-patch": (["--kernel-tree", str(tree), "--patches",
                                        str(patch_dir)], "0001-a.patch: not a patch"),
        "patch-dir-empty": (["--kernel-tree", str(tree), "--patches", str(empty_dir)],
                            "no .patch/.diff files"),
        "config-missing": (["--kernel-tree", str(tree), "--config", str(tmp / "x.config")],
                           "x.config: no such file"),
        "results-is-a-file": (["--results", str(not_patch)],
                              "--results: " + str(not_patch) + ": exists and is not a "
                                                               "directory"),
        "results-not-a-disk": (["--results", "/proc/nvh/results"],
                               "is not a disk filesystem"),
    }


PATH_CASES = ["kernel-missing", "kernel-not-a-kernel", "kernel-a-directory", "modules-missing",
              "tree-missing", "tree-not-a-kernel-tree", "patch-missing", "patch-not-a-patch",
              "patch-dir-with-a-non-patch", "patch-dir-empty", "config-missing",
              "results-is-a-file", "results-not-a-disk"]


@pytest.mark.parametrize("case", PATH_CASES)
def test_bad_path_is_one_line_exit_2(capsys, tmp_path, nothing_left, case):
    argv, text = _paths(tmp_path)[case]
    status, err = run_cli(capsys, "run", *argv)
    assert status == 2, err
    assert_one_line(err, text)


@pytest.mark.parametrize("case", ["tree-missing", "patch-not-a-patch"])
def test_kernel_build_bad_path_names_its_own_option(capsys, tmp_path, nothing_left, case):
    argv, _ = _paths(tmp_path)[case]
    argv = ["--tree" if a == "--kernel-tree" else a for a in argv]
    status, err = run_cli(capsys, "kernel", "build", *argv)
    assert status == 2
    assert_one_line(err, "--tree: " if case == "tree-missing" else "--patches: ")


# -- bad options -----------------------------------------------------------------------------
@pytest.mark.parametrize("argv, text", [
    (["--accel", "hvf"], "--accel: unknown accelerator 'hvf' (use auto, kvm or tcg)"),
    (["--accel", ""], "--accel: unknown accelerator ''"),
], ids=["accel-hvf", "accel-empty"])
def test_bad_option_is_one_line_exit_2(capsys, nothing_left, argv, text):
    status, err = run_cli(capsys, "run", *argv)
    assert status == 2
    assert_one_line(err, text)


def test_accel_kvm_without_kvm_is_exit_3_with_the_reason(capsys, tmp_path, monkeypatch):
    from harness import accel, prepare

    monkeypatch.setenv("NVH_CACHE_DIR", str(tmp_path / "cache"))
    why = "QEMU with -accel kvm exited: failed to set MSR 0x10a"
    monkeypatch.setattr(accel, "kvm_works", lambda kernel: (False, why))
    fake = image.image_at(tmp_path, {"recipe": "test", "kernel_release": "6.1-test"})
    monkeypatch.setattr(prepare, "ensure_image", lambda recipe: fake)
    for command in ("run", "boot", "qemu-cmd"):
        status, err = run_cli(capsys, command, "--accel", "kvm")
        assert status == 3, (command, err)
        assert_one_line(err, f"--accel kvm: KVM does not work here: {why}")
    assert not (tmp_path / "cache").exists()


def test_bad_keyword_is_exit_2_before_anything_runs(capsys, nothing_left, monkeypatch):
    from harness import prepare

    monkeypatch.setattr(prepare, "prepare", lambda options: pytest.fail("prepared a guest"))
    status, err = run_cli(capsys, "run", "-k", "odirect and (")
    assert status == 2
    assert_one_line(err, "-k: 'odirect and (' is not a valid expression: at column 14: "
                         "expected not OR left parenthesis OR identifier")


def test_keyword_selecting_nothing_is_exit_2(capsys, nothing_left, monkeypatch):
    from harness import prepare

    monkeypatch.setattr(prepare, "prepare", lambda options: pytest.fail("prepared a guest"))
    status, err = run_cli(capsys, "run", "-k", "no_such_test_anywhere")
    assert status == 2
    assert_one_line(err, "-k: no test matches 'no_such_test_anywhere'")


def test_pytest_usage_error_after_the_run_is_still_exit_2(tmp_path):
    """The last line of defence: pytest's own exit 4 for -k maps to 2."""
    from harness.cli import _finish_run
    from harness.errors import UsageError

    with pytest.raises(UsageError, match="-k: pytest rejected"):
        _finish_run(tmp_path, 4, "a and (", 0.0)


# -- QEMU launch: a taken port ---------------------------------------------------------------
class _FakeMachine:
    """QemuMachine as far as Guest._launch_qemu sees it; port `busy` is taken."""

    launched: ClassVar[list[int]] = []
    busy: ClassVar[set[int]] = set()

    def __init__(self, argv, files):
        self.port = int(next(a for a in argv if "hostfwd=" in a).split(":")[2].split("-")[0])

    def launch(self):
        _FakeMachine.launched.append(self.port)
        if self.port in _FakeMachine.busy:
            raise InfraError("QEMU exited at startup (status 1): qemu-system-x86_64: -netdev "
                             f"user,id=net0,hostfwd=tcp:127.0.0.1:{self.port}-:22: Could not "
                             f"set up host forwarding rule 'tcp:127.0.0.1:{self.port}-:22'")

    def shutdown(self):
        pass


def _launching_guest(monkeypatch, tmp_path, ports, busy):
    from harness import profile as profile_mod

    _FakeMachine.launched, _FakeMachine.busy = [], set(busy)
    it = iter(ports)
    monkeypatch.setattr(guest, "free_loopback_port", lambda: next(it))
    monkeypatch.setattr(guest, "QemuMachine", _FakeMachine)
    prof = profile_mod.load_profile("default", check_host=False)
    cfg = guest.GuestConfig(
        profile=prof, image=image.image_at(tmp_path, {}),
        kernel=guest.KernelChoice(kernel=tmp_path / "vmlinuz", initrd=None, source="distro"),
        accel=SimpleNamespace(accel="tcg", reason="test"))
    g = guest.Guest(cfg)
    g.files = GuestFiles(tmp_path)
    return g


def test_launch_retries_a_taken_port(monkeypatch, tmp_path):
    g = _launching_guest(monkeypatch, tmp_path, [5001, 5002], busy=[5001])
    g._launch_qemu()
    assert _FakeMachine.launched == [5001, 5002] and g.ssh_port == 5002


def test_launch_gives_up_with_qemus_message(monkeypatch, tmp_path):
    g = _launching_guest(monkeypatch, tmp_path, [5001, 5002, 5003], busy=[5001, 5002, 5003])
    with pytest.raises(InfraError, match="Could not set up host forwarding rule"):
        g._launch_qemu()
    assert _FakeMachine.launched == [5001, 5002, 5003]


def test_other_launch_errors_are_not_retried(monkeypatch, tmp_path):
    g = _launching_guest(monkeypatch, tmp_path, [5001, 5002], busy=[])

    def refuse(self):
        _FakeMachine.launched.append(self.port)
        raise InfraError("QEMU exited at startup (status 1): 'x' is not a valid device")

    monkeypatch.setattr(_FakeMachine, "launch", refuse)
    with pytest.raises(InfraError, match="not a valid device"):
        g._launch_qemu()
    assert _FakeMachine.launched == [5001]


# -- QEMU killed / SSH connection lost -------------------------------------------------------
class _DeadChannel:
    """What paramiko leaves when the TCP connection goes away: closed, no EOF, no status."""

    closed = True
    eof_received = False

    def exec_command(self, command):
        pass

    def recv_ready(self):
        return False

    def recv_stderr_ready(self):
        return False

    def exit_status_ready(self):
        return True  # paramiko says so for a closed channel

    def close(self):
        pass

    def fileno(self):
        return os.open("/dev/null", os.O_RDONLY)


class _Transport:
    def __init__(self, active_after: int):
        self.calls = 0
        self.active_after = active_after

    def is_active(self):
        self.calls += 1
        return self.calls <= self.active_after

    def open_session(self, timeout):
        return _DeadChannel()


def test_lost_ssh_connection_ends_the_command_now():
    client = SimpleNamespace(get_transport=lambda: _Transport(active_after=1))
    shell = ssh.GuestShell(client, "127.0.0.1", 22)
    started = time.monotonic()
    with pytest.raises(ConnectionError, match="SSH connection to the guest was lost"):
        shell.run("sleep 60", timeout_s=120)
    assert time.monotonic() - started < 5  # not the 135 s deadline


def test_killed_by_names_an_outside_signal(tmp_path):
    g = guest.Guest(SimpleNamespace())
    proc = subprocess.Popen(["sleep", "60"])
    g.machine = SimpleNamespace(proc=proc)
    assert g.killed_by() is None  # running
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert g.killed_by() == signal.SIGKILL
    g.machine = SimpleNamespace(proc=subprocess.Popen(["true"]))
    g.machine.proc.wait()
    assert g.killed_by() is None  # a normal exit (panic=-1 + -no-reboot) is the kernel's


def test_after_an_interrupt_no_guest_command_is_sent():
    """Ctrl-C mid-test: teardown (umount, namespace reset) must not spend tens of seconds
    over SSH under TCG; every guest command fails at once instead."""
    sent = []
    g = guest.Guest(SimpleNamespace())
    g.shell = SimpleNamespace(run=lambda cmd, t: sent.append(cmd))
    g.run("true")
    assert sent == ["true"]
    try:
        with pytest.raises(KeyboardInterrupt):
            interrupt.raise_keyboard_interrupt(signal.SIGINT, None)
        interrupt.note(signal.SIGTERM)  # the first signal is the one that counts
        assert interrupt.requested() == signal.SIGINT
        with pytest.raises(ConnectionError, match="interrupted"):
            g.run("umount /mnt/nvh")
        assert sent == ["true"]
    finally:
        interrupt.clear()


def test_workdir_of_a_killed_harness_is_removed_by_the_next_guest(tmp_path):
    """SIGKILL of the harness itself: nothing can clean up then (QEMU dies with it through
    PDEATHSIG); the next guest on the machine removes the dead owner's workdir."""
    dead = subprocess.Popen(["true"])
    dead.wait()
    stale = tmp_path / "nvh-guest-dead"
    stale.mkdir()
    (stale / guest.OWNER_FILE).write_text(f"{dead.pid}\n")
    (stale / "nvdimm0.img").write_bytes(b"\0" * 4096)
    live = tmp_path / "nvh-guest-live"
    live.mkdir()
    (live / guest.OWNER_FILE).write_text(f"{os.getpid()}\n")
    unowned = tmp_path / "nvh-guest-old"  # an older harness wrote no owner file
    unowned.mkdir()
    assert guest.remove_stale_workdirs([tmp_path]) == [stale]
    assert not stale.exists() and live.exists() and unowned.exists()


# -- disk full -------------------------------------------------------------------------------
def test_full_cache_disk_is_named_and_leaves_no_entry(tmp_path, monkeypatch):
    monkeypatch.setenv("NVH_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(cache, "_free_bytes", lambda path: 3 << 20)
    entry = tmp_path / "images" / "x"
    with pytest.raises(InfraError) as e, cache.locked(entry), cache.staging_dir(entry) as tmp:
        (tmp / "rootfs.ext4").write_bytes(b"half")
        raise InfraError("mmdebstrap failed (exit 1); last output:\nE: Write error")
    assert str(e.value).startswith(f"no space left in the cache {tmp_path} (3 MiB free now) "
                                   "while building x: mmdebstrap failed (exit 1)")
    assert not entry.exists() and not cache.is_complete(entry)
    assert [p.name for p in entry.parent.iterdir()] == [".x.lock"]


def test_disk_full_said_by_the_build_tool_is_named_when_space_is_back(tmp_path, monkeypatch):
    """mmdebstrap removes its half tree before it exits: the free space is back by the time
    we look, but its last lines say what happened."""
    monkeypatch.setenv("NVH_CACHE_DIR", str(tmp_path))
    entry = tmp_path / "x"
    with pytest.raises(InfraError) as e, cache.staging_dir(entry):
        raise InfraError("mmdebstrap failed (exit 25); last output:\n"
                         "E: Write error - write (28: No space left on device)")
    assert str(e.value).startswith(f"no space left in the cache {tmp_path} (")
    assert "E: Write error" in str(e.value)


def test_enough_space_keeps_the_original_error(tmp_path):
    entry = tmp_path / "x"
    with pytest.raises(OSError, match="boom"), cache.staging_dir(entry):
        raise OSError(errno.EIO, "boom")
    assert not entry.exists()


def test_incomplete_entry_is_never_reused(tmp_path, monkeypatch):
    """A directory in the entry's place without .complete (a crash before the rename on an
    older version, a hand-made copy) is rebuilt, not booted."""
    monkeypatch.setenv("NVH_CACHE_DIR", str(tmp_path))
    builds = []

    def build(recipe, out, step):
        builds.append(out)
        (out / "manifest.json").write_text('{"kernel_release": "6.1-test"}')

    monkeypatch.setattr(image, "_build", build)
    monkeypatch.setattr(image, "_check_host_tools", lambda: None)
    recipe = image.load_recipe(None)
    entry = image.image_dir(recipe)
    entry.mkdir(parents=True)
    (entry / "manifest.json").write_text('{"kernel_release": "half"}')
    assert image.ensure_image(recipe).kernel_release == "6.1-test"
    assert len(builds) == 1 and cache.is_complete(entry)
    assert image.ensure_image(recipe).kernel_release == "6.1-test" and len(builds) == 1


def test_stale_staging_dirs_are_removed(tmp_path):
    entry = tmp_path / "x"
    stale = tmp_path / ".x.tmp-99999999"
    stale.mkdir()
    (stale / "rootfs.ext4").write_bytes(b"half")
    with cache.staging_dir(entry) as tmp:
        (tmp / "f").write_text("ok")
    assert not stale.exists() and cache.is_complete(entry)


def test_console_sink_on_a_full_disk_still_removes_the_guest_dir(tmp_path, monkeypatch):
    said: list[str] = []
    monkeypatch.setattr(progress, "_writer", said.append)
    # /dev/full: every write fails with ENOSPC, like a full results disk.
    cfg = SimpleNamespace(kernel=SimpleNamespace(source="distro"),
                          accel=SimpleNamespace(accel="tcg"))
    g = guest.Guest(cfg, console_sink=Path("/dev/full"))
    workdir = tmp_path / "nvh-guest-x"
    workdir.mkdir()
    (workdir / "console.log").write_text("boot log\n" * 1000)
    (workdir / "nvdimm0.img").write_bytes(b"\0" * 4096)
    g.files = GuestFiles(workdir)
    g.stop()
    assert not workdir.exists() and g.files is None
    assert said == ["nvdimm-harness: could not save the console log to /dev/full: "
                    "No space left on device"]


def test_reports_on_a_full_disk_leave_no_tmp_file(tmp_path, monkeypatch):
    run = results.RunSummary(run_id="r", started="now")
    real = Path.write_text

    def enospc(self, *a, **k):
        if self.name.startswith(".report.html.tmp"):
            real(self, "half")
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(self, *a, **k)

    monkeypatch.setattr(Path, "write_text", enospc)
    with pytest.raises(OSError, match="No space left"):
        results.write_reports(run, tmp_path)
    assert not [p for p in tmp_path.iterdir() if ".tmp" in p.name]
    assert results.load_summary(tmp_path).run_id == "r"  # what was written is whole


# -- interrupted builds ----------------------------------------------------------------------
def test_interrupted_build_command_stops_its_tree(tmp_path):
    """Ctrl-C or SIGTERM inside a long build step: the step's whole process tree (make -j
    and its gcc, mmdebstrap and its apt) stops within seconds, not after the build."""
    script = ("sleep 300 & sleep 300 & "
              "(trap 'exit 0' TERM; while :; do sleep 0.1; done) & echo started $$; wait")
    lines = []

    def on_line(line):
        lines.append(line)
        os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C once the step is under way

    started = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        progress.run_streaming(["sh", "-c", script], on_line)
    assert time.monotonic() - started < 8
    word, leader = lines[0].split()
    assert word == "started"
    # The step ran in its own group led by the shell: nothing of it is left.
    assert progress.group_members(int(leader)) == []


def test_stop_process_group_kills_what_ignores_sigterm():
    proc = subprocess.Popen(["sh", "-c", "trap '' TERM; sleep 300 & trap '' TERM; wait"],
                            start_new_session=True)
    time.sleep(0.3)
    started = time.monotonic()
    progress.stop_process_group(proc, grace_s=1.0)
    assert time.monotonic() - started < 5
    assert progress.group_members(proc.pid) == []


@pytest.mark.parametrize("tail, first_line", [
    ("scripts/kconfig/conf.c:1: error: broken", "make tinyconfig failed (exit 2); last output:"),
    ("scripts/kconfig/conf.o: No space left on device", "no space left in the cache "),
], ids=["error", "disk-full"])
def test_kernel_config_step_failure_is_exit_3(capsys, tmp_path, monkeypatch, tail, first_line):
    """A failing step before the compile (make tinyconfig, the copy of the tree) is exit 3
    with its last lines, never a traceback; a full disk is named first."""
    monkeypatch.setenv("NVH_CACHE_DIR", str(tmp_path / "cache"))
    tree = tmp_path / "tree"
    (tree / "arch" / "x86").mkdir(parents=True)
    (tree / "Makefile").write_text("VERSION = 6\nPATCHLEVEL = 1\n")
    (tree / "Kconfig").write_text("")

    def failing(*args, **kwargs):
        raise kernel._BuildFailed("make tinyconfig", 2, [tail])

    monkeypatch.setattr(kernel, "_build", failing)
    monkeypatch.setattr(cache, "_free_bytes", lambda path: 10 << 30)
    status, err = run_cli(capsys, "kernel", "build", "--tree", str(tree))
    assert status == 3
    assert err.startswith(f"nvdimm-harness: {first_line}"), err
    assert tail in err and "Traceback" not in err
    assert not list((tmp_path / "cache" / "kernels").glob("[!.]*"))


# -- make soak -------------------------------------------------------------------------------
def test_soak_compares_verdicts_and_counts_leaks(tmp_path):
    sys.path.insert(0, str(ROOT / "tools"))
    try:
        import soak
    finally:
        sys.path.remove(str(ROOT / "tools"))
    a = {"t1": "passed", "t2": "known_failure"}
    assert soak.differences([a, dict(a), dict(a)]) == {}
    diff = soak.differences([a, {"t1": "failed", "t2": "known_failure"}, {"t2": "known_failure"}])
    assert diff == {"t1": ["passed", "failed", "-"]}
    table = soak.report([a, a], exit_codes=[0, 0], durations=[10.0, 11.0], qemu_left=[],
                        tmp_left=[])
    assert "verdicts identical in all 2 runs: yes" in table
    assert "QEMU processes left: 0" in table
    assert "new entries under /tmp left (in the runs' TMPDIR): 0" in table


def test_soak_counts_exactly_its_private_tmp(tmp_path, monkeypatch):
    sys.path.insert(0, str(ROOT / "tools"))
    try:
        import soak
    finally:
        sys.path.remove(str(ROOT / "tools"))
    top = tmp_path / "top"
    top.mkdir()
    monkeypatch.setattr(soak, "TMP_DIRS", (top,))
    (top / "old").mkdir()
    before = soak.tmp_entries()
    private = top / "nvh-soak-x"
    private.mkdir()
    (private / "nvh-guest-abc").mkdir()  # left by a run
    (top / "nvh-notes.log").write_text("")  # somebody else's, named like ours
    (top / "ccX1.s").write_text("")  # somebody's gcc
    ours, others = soak.left_behind(private, before)
    assert ours == [private / "nvh-guest-abc"]
    assert others == [top / "ccX1.s", top / "nvh-notes.log"]
    table = soak.report([{"t": "passed"}], [0], [1.0], [], ours, others)
    assert "new entries under /tmp left (in the runs' TMPDIR): 1" in table
    assert "(other users?; not counted): 2" in table


@pytest.mark.parametrize("command", ["boot", "shell"])
def test_boot_results_that_is_a_file_is_exit_2(tmp_path, capsys, command):
    """`boot` and `shell` keep their console in --results; a file there is bad input."""
    f = tmp_path / "f"
    f.write_text("")
    assert main([command, "--results", str(f)]) == 2
    assert f"--results: {f}: exists and is not a directory" in capsys.readouterr().err
