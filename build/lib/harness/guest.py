"""A booted test guest: QEMU + serial console + SSH, with the NixOS-driver style API.

    with Guest(config, workdir) as guest:
        guest.succeed("ndctl list -R")
        guest.fail("ndctl disable-namespace namespace0.0")   # must be refused

The console log is the authoritative kernel log: it survives panics and a dead network.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from . import interrupt, kmsg, progress
from .accel import AccelChoice
from .console import boot_banner, mark_text, slice_between_marks
from .errors import BootError, HarnessError
from .image import GuestImage
from .profile import MachineProfile
from .qemu import BootSpec, GuestFiles, QemuMachine, build_argv, free_loopback_port
from .ssh import DEFAULT_TIMEOUT_S, CommandResult, GuestShell

# init=/sbin/nvh-init: a lean PID 1 instead of systemd (78 s -> ~15 s to SSH under TCG).
# panic=-1 + QEMU -no-reboot: a panic ends the guest instead of looping.
# printk.devkmsg=on: test markers written to /dev/kmsg are never rate-limited away.
# log_buf_len: a long suite must not wrap the ring buffer past a test's begin marker.
# softlockup_all_cpu_backtrace: a soft lockup waiting on another CPU (an IPI that is never
# answered) is only explained by that CPU's stack.
BASE_CMDLINE = (
    "console=ttyS0,115200 root=/dev/vda rw init=/sbin/nvh-init panic=-1 net.ifnames=0 "
    "printk.devkmsg=on log_buf_len=4M mitigations=off softlockup_all_cpu_backtrace=1"
)
READY_MARKER = "nvh: guest ready"


WORKDIR_PREFIX = "nvh-guest-"
# The harness process that owns a guest workdir. Guest.stop() removes the workdir, but a
# harness killed with SIGKILL (or an OOM kill) cannot; its QEMU dies with it (PDEATHSIG) and
# the next guest started on this machine removes what it left.
OWNER_FILE = ".owner"


def remove_stale_workdirs(roots: list[Path] | None = None) -> list[Path]:
    """Remove guest workdirs (GBs of sparse NVDIMM backing files) whose owner process is
    gone. Conservative: a workdir without an owner file, or whose owner pid is alive (even
    if reused), is left alone."""
    removed = []
    # avocado sets TMP=/var/tmp for its tests: a harness under it makes its workdirs there.
    if roots is None:
        roots = list(dict.fromkeys([Path(tempfile.gettempdir()), Path("/tmp"),
                                    Path("/var/tmp")]))
    for d in (d for root in roots for d in sorted(root.glob(f"{WORKDIR_PREFIX}*"))):
        try:
            pid = int((d / OWNER_FILE).read_text().split()[0])
        except (OSError, ValueError, IndexError):
            continue
        try:
            os.kill(pid, 0)
            continue  # alive (or a reused pid): not ours to judge
        except ProcessLookupError:
            pass
        except PermissionError:
            continue
        with contextlib.suppress(OSError):
            shutil.rmtree(d)
            removed.append(d)
    return removed


@dataclass(frozen=True)
class KernelChoice:
    """The kernel to boot and where it came from (for summary.json)."""

    kernel: Path
    initrd: Path | None
    source: str  # distro | image | tree | package
    description: str = ""
    modules_image: Path | None = None  # read-only disk the guest mounts at /lib/modules
    patches: tuple[str, ...] = ()
    config_hash: str | None = None
    # For call traces -> file:line (harness/symbolize.py): the ELF with symbols, the modules'
    # .ko files and the source path recorded in their DWARF.
    vmlinux: Path | None = None
    modules_dir: Path | None = None
    source_root: str | None = None
    # Debug checkers (harness.kconfig.debug_cost): deadlines scale by slowdown, and the
    # kernel parameters they need go on the command line.
    slowdown: float = 1.0
    cmdline_extra: str = ""
    checkers: tuple[str, ...] = ()  # debug checkers built in (harness.kconfig.DEBUG_CHECKERS)
    package: str | None = None          # --kernel-package: the Debian package and version
    package_version: str | None = None


@dataclass(frozen=True)
class GuestConfig:
    profile: MachineProfile
    image: GuestImage
    kernel: KernelChoice
    accel: AccelChoice

    def cmdline(self) -> str:
        return " ".join(x for x in (BASE_CMDLINE, self.profile.kernel_cmdline,
                                    self.kernel.cmdline_extra) if x)

    def boot_spec(self) -> BootSpec:
        extra = (self.kernel.modules_image,) if self.kernel.modules_image else ()
        return BootSpec(kernel=self.kernel.kernel, initrd=self.kernel.initrd,
                        rootfs=self.image.rootfs, cmdline=self.cmdline(), extra_drives=extra)


class Guest:
    def __init__(self, config: GuestConfig, console_sink: Path | None = None):
        self.config = config
        self.console_sink = console_sink  # every boot's console is appended here
        self.machine: QemuMachine | None = None
        self.shell: GuestShell | None = None
        self.files: GuestFiles | None = None
        self.ssh_port: int | None = None
        self.boots = 0
        self.boot_s: float | None = None
        self.kernel_release: str | None = None
        self._console_offset = 0
        self._panic_event: dict | None = None

    # -- lifecycle -------------------------------------------------------------------------
    def __enter__(self) -> Guest:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> None:
        self.boots += 1
        self._panic_event = None
        remove_stale_workdirs()
        self.files = GuestFiles(Path(tempfile.mkdtemp(prefix=WORKDIR_PREFIX)))
        (self.files.workdir / OWNER_FILE).write_text(f"{os.getpid()}\n")
        self._create_disks()
        start = time.monotonic()
        slowdown = self.config.kernel.slowdown
        deadline = start + self.config.profile.boot_timeout_s * slowdown
        with progress.step(f"booting guest ({self.config.accel.accel}, "
                           f"{self.config.kernel.source} kernel)") as step:
            try:
                self._launch_qemu()
                self.shell = GuestShell.connect(
                    self.ssh_port, self.config.image.ssh_key, self.config.image.host_public_key,
                    deadline, still_booting=lambda: self._boot_problem(step),
                )
                self.shell.time_scale = slowdown
            except BaseException as e:
                tail = self.console_tail()
                self.stop()
                if isinstance(e, BootError):
                    e.console_tail = tail
                raise
            # setup.sh loads the NVDIMM stack while sshd starts; wait for it to finish.
            self.kernel_release = self.succeed(
                "i=0; while [ ! -e /run/nvh-ready ] && [ $i -lt 600 ]; do sleep 0.1; "
                "i=$((i+1)); done; test -e /run/nvh-ready && uname -r", timeout_s=90).strip()
            self.boot_s = time.monotonic() - start
            step.note(f"SSH up after {self.boot_s:.1f}s, kernel {self.kernel_release}")

    def _create_disks(self) -> None:
        assert self.files is not None
        # Sparse files: only what the guest writes takes disk space.
        for i, dimm in enumerate(self.config.profile.nvdimms):
            with open(self.files.nvdimm_backend(i), "wb") as f:
                f.truncate(dimm.backend_size)
        with open(self.files.scratch_disk, "wb") as f:
            f.truncate(self.config.profile.scratch_disk.size)

    def _launch_qemu(self) -> None:
        assert self.files is not None
        # A free port can be taken between the probe and QEMU's bind; try a few.
        for attempt in range(3):
            self.ssh_port = free_loopback_port()
            argv = build_argv(self.config.profile, self.config.boot_spec(), self.files,
                              self.config.accel.accel, self.ssh_port)
            self.machine = QemuMachine(argv, self.files)
            try:
                self.machine.launch()
                return
            except Exception as e:
                self.machine.shutdown()
                if "host forwarding" not in str(e) or attempt == 2:
                    raise

    def _boot_problem(self, step: progress.Step) -> str | None:
        text = self.console_text()
        lines = [ln for ln in text.splitlines() if ln.strip()]
        if lines:
            step.note(f"console: {lines[-1].strip()[:100]}", every_s=10)
        if "Kernel panic" in text and (panic := kmsg.first_panic(text)):
            return f"boot failed: kernel panic: {panic.header.strip()}"
        if self.machine is None or not self.machine.is_running():
            if self.machine and (fault := self.machine.triple_fault()):
                return _triple_fault_message(fault, text, self.machine.kernel)
            status = self.machine.proc.returncode if self.machine and self.machine.proc else "?"
            detail = self.machine.stderr_tail() if self.machine else ""
            return f"boot failed: QEMU exited (status {status}) {detail}".strip()
        return None

    def stop(self) -> None:
        if self.shell:
            self.shell.close()
            self.shell = None
        if self.machine:
            self.machine.shutdown()
            self.machine = None
        if self.files:
            # A second Ctrl-C must not cut the teardown short and leave gigabytes of
            # NVDIMM backing files in /tmp: hold SIGINT/SIGTERM until it is done.
            held = {signal.SIGINT, signal.SIGTERM}
            old = signal.pthread_sigmask(signal.SIG_BLOCK, held)
            try:
                self._save_console()
            finally:
                # Even when the console could not be saved (results disk full).
                shutil.rmtree(self.files.workdir, ignore_errors=True)
                self.files = None
                signal.pthread_sigmask(signal.SIG_SETMASK, old)

    def restart(self) -> None:
        self.stop()
        self.start()

    def is_alive(self) -> bool:
        return self.machine is not None and self.machine.is_running()

    def killed_by(self) -> int | None:
        """The signal that ended QEMU, if something outside killed it (SIGKILL from a person
        or the OOM killer, QEMU's own SIGSEGV/SIGABRT). A guest that panicked or powered
        off makes QEMU exit normally (-no-reboot), so this is never the kernel's doing."""
        proc = self.machine.proc if self.machine else None
        if proc is None or proc.poll() is None or proc.returncode >= 0:
            return None
        return -proc.returncode

    def wait_exit(self, timeout_s: float) -> bool:
        """True once QEMU has exited (a panic with panic=-1 and -no-reboot ends it)."""
        end = time.monotonic() + timeout_s
        while self.is_alive() and time.monotonic() < end:
            time.sleep(0.2)
        return not self.is_alive()

    def panic_event(self) -> dict | None:
        """pvpanic's GUEST_PANICKED QMP event of this boot, if the kernel reported a panic.
        QMP says so even when the console lost the panic text; the event stays readable
        from the socket after QEMU has exited."""
        if self._panic_event is None and self.machine is not None:
            for event in self.machine.events():
                if event.get("event") == "GUEST_PANICKED":
                    self._panic_event = event
                    break
        return self._panic_event

    def responds(self, timeout_s: float = 30) -> bool:
        """QEMU running is not enough: a kernel with processes stuck in D state may not
        answer. One cheap round trip tells."""
        try:
            return self.run("true", timeout_s=timeout_s).status == 0
        except (OSError, TimeoutError, EOFError):
            return False

    # -- console ---------------------------------------------------------------------------
    def console_text(self) -> str:
        if not self.files:
            return ""
        try:
            return self.files.console_log.read_text(errors="replace")
        except OSError:
            return ""

    def console_tail(self, lines: int = 40) -> str:
        return "\n".join(self.console_text().splitlines()[-lines:])

    def _save_console(self) -> None:
        if not self.console_sink or not self.files:
            return
        try:
            self.console_sink.parent.mkdir(parents=True, exist_ok=True)
            with open(self.console_sink, "a") as sink:
                sink.write(boot_banner(self.boots, self.config.kernel.source,
                                       self.config.accel.accel))
                sink.write(self.console_text())
                sink.write("\n")
        except OSError as e:
            # A full results disk must not stop the guest's teardown; say it, go on.
            progress.say(f"could not save the console log to {self.console_sink}: "
                         f"{e.strerror or e}")

    # -- commands --------------------------------------------------------------------------
    def _shell(self) -> GuestShell:
        if interrupt.requested():
            # Cleanup after Ctrl-C/SIGTERM must not spend tens of seconds over SSH.
            raise ConnectionError("the run was interrupted: no more guest commands")
        if self.shell is None:
            raise ConnectionError("guest is not running")
        return self.shell

    def run(self, command: str, timeout_s: float = DEFAULT_TIMEOUT_S) -> CommandResult:
        return self._shell().run(command, timeout_s)

    def succeed(self, command: str, timeout_s: float = DEFAULT_TIMEOUT_S) -> str:
        return self._shell().succeed(command, timeout_s)

    def fail(self, command: str, timeout_s: float = DEFAULT_TIMEOUT_S) -> CommandResult:
        return self._shell().fail(command, timeout_s)

    def upload(self, local: Path, remote: str, mode: int = 0o644) -> None:
        self._shell().upload(local, remote, mode)

    def download(self, remote: str, local: Path) -> None:
        self._shell().download(remote, local)

    # -- kernel log ------------------------------------------------------------------------
    def mark(self, label: str) -> None:
        """Write a marker into the kernel log, to cut per-test slices out of it."""
        self.succeed(f"echo '{mark_text(label)}' > /dev/kmsg", timeout_s=30)

    def taint(self) -> int:
        """/proc/sys/kernel/tainted: it changes when an oops or WARN leaves the kernel suspect."""
        return int(self.succeed("cat /proc/sys/kernel/tainted", timeout_s=30).strip() or 0)

    def dump_blocked_tasks(self, timeout_s: float = 15) -> bool:
        """sysrq-w (tasks in D state, with stacks) and sysrq-l (what every CPU is running)
        into the kernel log, if the guest still takes a command. The console keeps it even
        when the guest is stopped right after."""
        try:
            ok = self.run("echo w > /proc/sysrq-trigger; echo l > /proc/sysrq-trigger",
                          timeout_s=timeout_s).status == 0
        except (OSError, TimeoutError, EOFError, HarnessError):
            return False
        time.sleep(1)  # let the console catch up before anyone stops QEMU
        return ok

    def dmesg_between(self, begin: str, end: str) -> str:
        text = self.succeed("dmesg", timeout_s=60)
        return slice_between_marks(text, begin, end)


def _triple_fault_message(fault: str, console: str, kernel: Path) -> str:
    """A guest that reset itself: before or after its console came up, and what to try."""
    if "Linux version" not in console:
        hint = ("the kernel's PVH entry (an ELF vmlinux) faulted: try its bzImage with --kernel"
                if kernel.read_bytes()[:4] == b"\x7fELF" else
                "check the kernel's early boot options (e.g. KASAN, memory layout)")
        return (f"boot failed: the guest reset before its console came up: triple fault in "
                f"early boot; {fault}; {hint}")
    last = next((ln.strip() for ln in reversed(console.splitlines()) if ln.strip()), "")
    return f"boot failed: the guest reset itself (triple fault) after: {last[:160]}; {fault}"

