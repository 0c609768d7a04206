"""Choose the accelerator: KVM when a KVM guest really runs, TCG otherwise.

Opening /dev/kvm is not enough: on the project's CI machines KVM_CREATE_VM succeeds but a
nested KVM guest hangs right after "Probing EDD". So boot the guest kernel itself under KVM
with no root device and wait (bounded) for it to get as far as looking for its root; a
working KVM gets there in a second or two. The verdict is cached per host boot.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from . import cache
from .errors import InfraError, UsageError
from .qemu import QEMU_BINARY, qemu_version

PROBE_TIMEOUT_S = 20.0
# Any of these means the kernel ran well past early boot under KVM.
PROGRESS_MARKERS = ("VFS: Cannot open root device", "VFS: Unable to mount root",
                    "Kernel panic", "Run /init", "Freeing unused kernel")


@dataclass(frozen=True)
class AccelChoice:
    accel: str  # "kvm" or "tcg"
    reason: str

    def to_json(self) -> dict:
        return {"accel": self.accel, "reason": self.reason}


def choose_accel(requested: str, kernel: Path) -> AccelChoice:
    if requested not in ("auto", "kvm", "tcg"):
        raise UsageError(f"--accel: unknown accelerator {requested!r} (use auto, kvm or tcg)")
    if requested == "tcg":
        return AccelChoice("tcg", "requested with --accel tcg")
    works, why = kvm_works(kernel)
    if works:
        return AccelChoice("kvm", why)
    if requested == "kvm":
        raise InfraError(f"--accel kvm: KVM does not work here: {why}")
    return AccelChoice("tcg", f"KVM unusable: {why}")


def kvm_works(kernel: Path) -> tuple[bool, str]:
    try:
        fd = os.open("/dev/kvm", os.O_RDWR)
        os.close(fd)
    except OSError as e:
        return False, f"/dev/kvm: {e.strerror}"
    return probe_once(_probe_key(kernel), kernel)


def probe_once(key: str, kernel: Path) -> tuple[bool, str]:
    """The cached verdict for `key`, or a probe whose verdict is cached."""
    cached = _load_cached(key)
    if cached is not None:
        return cached
    # Guests started together (pytest -n) would each boot a probe: one probes, the others
    # wait for its verdict.
    with cache.locked(_cache_file()):
        cached = _load_cached(key)
        if cached is not None:
            return cached
        verdict = _probe(kernel)
        _store_cached(key, verdict)
    return verdict


def cached_verdict(kernel: Path) -> tuple[bool, str] | None:
    """The probe's verdict for this host boot if one was made; never boots anything."""
    return _load_cached(_probe_key(kernel)) if kernel.exists() else None


def _probe(kernel: Path, timeout_s: float = PROBE_TIMEOUT_S) -> tuple[bool, str]:
    with tempfile.TemporaryDirectory(prefix="nvh-kvm-probe-") as tmp:
        log = Path(tmp) / "console.log"
        argv = [QEMU_BINARY, "-nodefaults", "-no-user-config", "-accel", "kvm", "-cpu", "max",
                "-m", "256M", "-display", "none", "-no-reboot",
                "-serial", f"file:{log}", "-kernel", str(kernel),
                "-append", "console=ttyS0 panic=-1 root=/dev/nvh-no-such-root"]
        start = time.monotonic()
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            while time.monotonic() - start < timeout_s:
                text = log.read_text(errors="replace") if log.exists() else ""
                if any(m in text for m in PROGRESS_MARKERS):
                    return True, f"a KVM guest booted to its root mount in " \
                                 f"{time.monotonic() - start:.1f}s"
                if proc.poll() is not None:
                    err = proc.stderr.read().decode(errors="replace").strip() if proc.stderr \
                        else ""
                    err = " / ".join(ln.strip() for ln in err.splitlines() if ln.strip())
                    return False, f"QEMU with -accel kvm exited: {err or proc.returncode}"
                time.sleep(0.2)
            text = log.read_text(errors="replace") if log.exists() else ""
            last = next((ln for ln in reversed(text.splitlines()) if ln.strip()), "(nothing)")
            return False, (f"a KVM guest made no progress in {timeout_s:.0f}s "
                           f"(last console line: {last.strip()[:80]!r}; nested KVM?)")
        finally:
            proc.kill()
            proc.wait()


def _probe_key(kernel: Path) -> str:
    try:
        boot_id = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        boot_id = "unknown"
    return cache.content_hash([boot_id, qemu_version(), str(kernel.stat().st_size)])


def _cache_file() -> Path:
    return cache.cache_root() / "kvm-probe.json"


def _load_cached(key: str) -> tuple[bool, str] | None:
    try:
        data = json.loads(_cache_file().read_text())
    except (OSError, ValueError):
        return None
    if data.get("key") != key:
        return None
    return bool(data["works"]), str(data["reason"]) + " (cached for this host boot)"


def _store_cached(key: str, verdict: tuple[bool, str]) -> None:
    path = _cache_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    tmp.write_text(json.dumps({"key": key, "works": verdict[0], "reason": verdict[1]}))
    os.replace(tmp, path)
