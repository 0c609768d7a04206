"""QEMU: the argv for a profile (pure) and one process per guest with a `with` lifetime.

Nothing survives a QemuMachine: __exit__ quits QEMU over QMP, then terminates and kills it,
and the child is started with PR_SET_PDEATHSIG so even a SIGKILLed harness takes its QEMU
along.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from .errors import InfraError
from .profile import MachineProfile
from .sizes import MiB

QEMU_BINARY = os.environ.get("NVH_QEMU", "qemu-system-x86_64")
# Drive order in build_argv: root is the first virtio disk, the scratch disk the second.
# The scratch disk is the non-DAX peer of O_DIRECT tests: an O_DIRECT file on the DAX mount
# itself would take the DAX path and pin nothing.
SCRATCH_DISK_IN_GUEST = "/dev/vdb"

# Machine and accelerator settings are data, not branches (kunit_tool's qemu_configs idea).
# nvdimm=on adds the NFIT ACPI table; without it the guest sees no NVDIMM at all.
MACHINE_ARGS: dict[str, list[str]] = {
    "q35": ["-machine", "q35,nvdimm=on"],
    "pc": ["-machine", "pc,nvdimm=on"],
}
# -cpu is the profile's, "max" by default, not host: `-cpu host` aborts on MSR 0x10a under
# nested KVM on the CI machines.
ACCEL_ARGS: dict[str, list[str]] = {
    "kvm": ["-accel", "kvm"],
    "tcg": ["-accel", "tcg,thread={tcg_thread}"],
}


# -d cpu_reset output: "CPU Reset (CPU 0)" and register lines ("RAX=...", "ES =0000 ...").
_CPU_DUMP = re.compile(r"^(?:CPU Reset|Triple fault|[A-Z][A-Z0-9 ]{1,3}=|[A-Z]{2,4}\s*=|"
                       r"(?:GDT|IDT|LDT|TR)\s*=|EFER=|FCW=|FPR\d|XMM\d|YMM\d|CCS=|DR\d)")
_RIP = re.compile(r"[RE]IP=[0-9a-f]+")
_CR = re.compile(r"CR0=[0-9a-f]+ CR2=[0-9a-f]+")

@dataclass(frozen=True)
class BootSpec:
    """What to boot: a kernel, an optional initrd, the root image and the command line."""

    kernel: Path
    initrd: Path | None
    rootfs: Path
    cmdline: str
    extra_drives: tuple[Path, ...] = ()


@dataclass(frozen=True)
class GuestFiles:
    """Per-guest runtime files; all live in one private directory."""

    workdir: Path
    console_log: Path = field(init=False)
    qmp_socket: Path = field(init=False)
    qemu_log: Path = field(init=False)
    scratch_disk: Path = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "console_log", self.workdir / "console.log")
        object.__setattr__(self, "qmp_socket", self.workdir / "qmp.sock")
        object.__setattr__(self, "qemu_log", self.workdir / "qemu.log")
        object.__setattr__(self, "scratch_disk", self.workdir / "scratch.img")

    def nvdimm_backend(self, index: int) -> Path:
        return self.workdir / f"nvdimm{index}.img"


def build_argv(
    profile: MachineProfile,
    boot: BootSpec,
    files: GuestFiles,
    accel: str,
    ssh_port: int,
    qemu_binary: str = QEMU_BINARY,
) -> list[str]:
    """The complete QEMU command line for one guest. Pure: touches no file."""
    argv = [qemu_binary, "-name", f"nvdimm-harness,process=nvh-{profile.name}"]
    argv += ["-nodefaults", "-no-user-config", *MACHINE_ARGS[profile.machine]]
    argv += [a.format(tcg_thread=profile.tcg_thread) for a in ACCEL_ARGS[accel]]
    argv += ["-cpu", profile.cpu]
    argv += ["-smp", str(profile.cpus)]
    # NVDIMMs live in the memory hotplug area: one slot each, maxmem covers RAM + backends.
    argv += ["-m", f"{profile.memory // MiB}M,slots={profile.slot_count},"
                   f"maxmem={profile.maxmem_size // MiB}M"]
    argv += _numa_args(profile)
    for i, dimm in enumerate(profile.nvdimms):
        # share=on: guest stores reach the file (the emulated media); align matches the
        # region alignment so QEMU exposes exactly `size` after carving the label area.
        argv += ["-object", f"memory-backend-file,id=nvmem{i},share=on,"
                            f"mem-path={files.nvdimm_backend(i)},size={dimm.backend_size},"
                            f"align={dimm.align}"]
        argv += ["-device", f"nvdimm,id=nvdimm{i},memdev=nvmem{i},"
                            f"label-size={dimm.label_size},node={dimm.node}"]
    # snapshot=on: the cached image is never written; writes go to a temporary overlay.
    argv += ["-drive", f"file={boot.rootfs},if=virtio,format=raw,snapshot=on"]
    argv += ["-drive", f"file={files.scratch_disk},if=virtio,format=raw,cache=none,aio=threads"]
    for extra in boot.extra_drives:
        argv += ["-drive", f"file={extra},if=virtio,format=raw,readonly=on"]
    argv += ["-netdev", f"user,id=net0,hostfwd=tcp:127.0.0.1:{ssh_port}-:22",
             "-device", "virtio-net-pci,netdev=net0"]
    # pvpanic turns a guest panic into a GUEST_PANICKED QMP event. panic=none: QEMU only
    # reports it and lets the kernel finish its panic path (flush the console, then reboot,
    # which -no-reboot turns into an exit); QEMU's default would exit at the notifier and
    # could cut the last lines of the panic text.
    argv += ["-device", "pvpanic", "-action", "panic=none"]
    argv += ["-chardev", f"socket,id=con0,path={files.workdir / 'console.sock'},server=on,"
                         f"wait=off,logfile={files.console_log},logappend=on",
             "-serial", "chardev:con0"]
    argv += ["-qmp", f"unix:{files.qmp_socket},server=on,wait=off"]
    argv += ["-display", "none", "-no-reboot"]
    # A triple fault in early boot ends QEMU with status 0 and an empty console; cpu_reset
    # logging leaves QEMU's own account in qemu.log ("Triple fault" and the CPU state).
    argv += ["-d", "cpu_reset"]
    argv += ["-kernel", str(boot.kernel)]
    if boot.initrd:
        argv += ["-initrd", str(boot.initrd)]
    argv += ["-append", boot.cmdline]
    return argv


def _numa_args(profile: MachineProfile) -> list[str]:
    nodes = profile.numa_nodes
    if nodes == [0]:
        return []
    # With -numa, RAM must be assigned to a node explicitly; other nodes are memory-less
    # until an NVDIMM's node= places pmem there.
    args = ["-object", f"memory-backend-ram,id=ram0,size={profile.memory}",
            "-numa", "node,nodeid=0,memdev=ram0"]
    for node in range(1, max(nodes) + 1):
        args += ["-numa", f"node,nodeid={node}"]
    return args


def free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _die_with_parent() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    PR_SET_PDEATHSIG = 1
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


class QemuMachine:
    """One QEMU process. Use as a context manager; __exit__ always leaves no process."""

    def __init__(self, argv: list[str], files: GuestFiles):
        self.argv = argv
        self.files = files
        self.proc: subprocess.Popen | None = None
        self.qmp = None

    def __enter__(self) -> QemuMachine:
        self.launch()
        return self

    def __exit__(self, *exc) -> None:
        self.shutdown()

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def is_running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def kernel(self) -> Path:
        return Path(self.argv[self.argv.index("-kernel") + 1])

    def _log_lines(self) -> list[str]:
        try:
            return self.files.qemu_log.read_text(errors="replace").splitlines()
        except OSError:
            return []

    def stderr_tail(self, lines: int = 5) -> str:
        """QEMU's last messages, without the CPU state dumps of -d cpu_reset."""
        text = [ln for ln in self._log_lines() if ln.strip() and not _CPU_DUMP.match(ln)]
        return "\n".join(text[-lines:])

    def triple_fault(self) -> str:
        """QEMU's evidence of a guest triple fault ("" if none): where the CPU was."""
        lines = self._log_lines()
        hits = [i for i, ln in enumerate(lines) if ln.strip() == "Triple fault"]
        if not hits:
            return ""
        state = "\n".join(lines[hits[-1]:hits[-1] + 30])
        regs = [m.group(0) for rx in (_RIP, _CR) if (m := rx.search(state))]
        return "QEMU logged 'Triple fault'" + (f" ({', '.join(regs)})" if regs else "")

    def launch(self, startup_timeout_s: float = 20.0) -> None:
        binary = self.argv[0]
        if not (os.path.isabs(binary) and os.access(binary, os.X_OK)) and not shutil.which(binary):
            raise InfraError(f"QEMU binary {binary!r} not found (install qemu-system-x86, "
                             "or point NVH_QEMU at it)")
        with open(self.files.qemu_log, "wb") as log:
            self.proc = subprocess.Popen(
                self.argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent, start_new_session=True,
            )
        # QMP answers only after every device and the hostfwd rule are set up, so a bad
        # option or a taken port shows up here as an early exit with QEMU's own message.
        deadline = time.monotonic() + startup_timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise InfraError(
                    f"QEMU exited at startup (status {self.proc.returncode}): "
                    f"{self.stderr_tail() or '(no output)'}"
                )
            if self._connect_qmp():
                return
            time.sleep(0.05)
        self.shutdown()
        raise InfraError(f"QEMU did not open its QMP socket within {startup_timeout_s:.0f}s")

    def _connect_qmp(self) -> bool:
        from qemu.qmp.legacy import QEMUMonitorProtocol

        if not self.files.qmp_socket.exists():
            return False
        qmp = QEMUMonitorProtocol(str(self.files.qmp_socket))
        try:
            qmp.connect(negotiate=True)
        except Exception:
            with contextlib.suppress(Exception):
                qmp.close()
            return False
        self.qmp = qmp
        return True

    def command(self, name: str, **args):
        if self.qmp is None:
            raise InfraError("QMP is not connected")
        return self.qmp.cmd(name, **args)

    def events(self) -> list[dict]:
        """QMP events received so far (e.g. GUEST_PANICKED, SHUTDOWN), non-blocking."""
        if self.qmp is None:
            return []
        with contextlib.suppress(Exception):
            self.qmp.pull_event(wait=False)
        with contextlib.suppress(Exception):
            return self.qmp.get_events(wait=False)
        return []

    def shutdown(self, timeout_s: float = 5.0) -> None:
        """quit over QMP, then SIGTERM, then SIGKILL. Idempotent."""
        if self.qmp is not None:
            with contextlib.suppress(Exception):
                if self.is_running():
                    self.qmp.cmd("quit")
            with contextlib.suppress(Exception):
                self.qmp.close()
            self.qmp = None
        if self.proc is None:
            return
        for sig in (None, signal.SIGTERM, signal.SIGKILL):
            if self.proc.poll() is not None:
                break
            if sig is not None:
                with contextlib.suppress(ProcessLookupError):
                    self.proc.send_signal(sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=timeout_s)
        self.proc.wait()


def qemu_version(binary: str = QEMU_BINARY) -> str:
    try:
        out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    first = out.stdout.splitlines()[0] if out.stdout else ""
    return first.replace("QEMU emulator version ", "").strip() or "unknown"
