"""--kernel-package: boot a Debian kernel package (e.g. trixie's 6.12) on the bookworm image.

A distribution kernel has the disk, the filesystem and the NVDIMM stack as modules, so
booting it takes three things besides the kernel itself: its modules on a disk the guest
mounts at /lib/modules (as for a --kernel-tree build), a modules.dep for them (the package
ships none: its postinst runs depmod), and an initramfs that loads the modules the root
disk needs. The initramfs is built on the host from a small static init
(guest-images/initramfs/nvh-initramfs-init.c), not by initramfs-tools: that would need the
guest's userspace and a boot of another kernel.

The package comes from Debian's archive through a private apt configuration under the
cache (its own sources list, lists and status), never the host's: the host's apt is left
exactly as it was, and any suite the mirror has can be named. An entry is cached by package
name and version, so a suite name costs one `apt-get update` (seconds) to learn the
current version and nothing else when it is cached.
"""

from __future__ import annotations

import gzip
import json
import lzma
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from . import cache, progress, vmlinux
from .errors import InfraError, UsageError

ROOT = Path(__file__).resolve().parent.parent
INIT_SOURCE = ROOT / "guest-images" / "initramfs" / "nvh-initramfs-init.c"
KEYRING = Path("/usr/share/keyrings/debian-archive-keyring.gpg")
DEFAULT_MIRROR = "http://deb.debian.org/debian"
META_PACKAGE = "linux-image-amd64"
# A suite name alone picks its current linux-image-amd64.
SUITE_RE = re.compile(r"[a-z][a-z0-9-]*")
PACKAGE_RE = re.compile(r"[a-z0-9][a-z0-9+.-]+")
# What the root disk needs before /sbin/nvh-init can run (and their dependencies).
ROOT_DISK_MODULES = ("virtio_pci", "virtio_blk", "ext4")
# ext4 asks the crypto API for crc32c at mount time, and the initramfs has no modprobe to
# answer a request_module(): load an implementation first when it is a module.
EARLY_EXTRA_MODULES = ("crc32c_generic", "crc32c_intel")

HOW = ("use a suite name (trixie, bookworm-backports, sid), SUITE/PACKAGE "
       "(trixie/linux-image-6.12.117+deb13-amd64) or a path to a linux-image .deb")


@dataclass(frozen=True)
class PackageSpec:
    suite: str | None = None    # fetched with apt from this suite...
    package: str | None = None  # ...this package (None: linux-image-amd64's dependency)
    deb: Path | None = None     # or this local file

    def describe(self) -> str:
        if self.deb:
            return str(self.deb)
        return f"{self.suite}/{self.package or META_PACKAGE}"


@dataclass(frozen=True)
class KernelPackage:
    """An unpacked, bootable kernel package in the cache."""

    directory: Path
    name: str
    version: str
    release: str  # uname -r

    @property
    def boot_image(self) -> Path:
        pvh = self.directory / "vmlinux"
        return pvh if pvh.is_file() else self.directory / "vmlinuz"

    @property
    def initrd(self) -> Path:
        return self.directory / "initramfs.cpio.gz"

    @property
    def modules_image(self) -> Path:
        return self.directory / "modules.ext4"

    @property
    def config(self) -> str:
        return (self.directory / "config").read_text(errors="replace")


def parse_spec(spec: str) -> PackageSpec:
    """The --kernel-package value, checked without the network. Raises UsageError."""
    if spec.endswith(".deb") or ("/" in spec and Path(spec).exists()):
        path = Path(spec)
        if not path.is_file():
            raise UsageError(f"--kernel-package: {spec}: no such file")
        if path.suffix != ".deb":
            raise UsageError(f"--kernel-package: {spec}: not a .deb; {HOW}")
        return PackageSpec(deb=path.resolve())
    suite, slash, package = spec.partition("/")
    if not SUITE_RE.fullmatch(suite) or (slash and not PACKAGE_RE.fullmatch(package)):
        raise UsageError(f"--kernel-package: {spec!r}: {HOW}")
    if package and not package.startswith("linux-image-"):
        raise UsageError(f"--kernel-package: {spec!r}: {package} is not a linux-image package")
    return PackageSpec(suite=suite, package=package or None)


def ensure_package(spec: PackageSpec) -> KernelPackage:
    """The cached, unpacked package for `spec`, fetched and prepared when missing."""
    if spec.deb:
        name, version = deb_identity(spec.deb)
        deb = spec.deb
    else:
        apt = PrivateApt(spec.suite or "")
        name, version = apt.resolve(spec.package)
        deb = None
    entry = cache.cache_root() / "kernel-packages" / f"{name}_{version}"
    if not cache.is_complete(entry):
        with cache.locked(entry):
            if not cache.is_complete(entry):
                with cache.staging_dir(entry) as tmp:
                    if deb is None:
                        with progress.step(f"downloading {name} {version}"):
                            deb = apt.download(name, version, tmp)
                    with progress.step(f"unpacking {deb.name}"):
                        _prepare(deb, tmp, name, version)
    cache.mark_used(entry)
    manifest = json.loads((entry / "manifest.json").read_text())
    return KernelPackage(directory=entry, name=name, version=version,
                         release=manifest["release"])


def deb_identity(deb: Path) -> tuple[str, str]:
    proc = subprocess.run(["dpkg-deb", "--show", "--showformat", "${Package}\t${Version}",
                           str(deb)], capture_output=True, text=True)
    if proc.returncode != 0 or "\t" not in proc.stdout:
        raise UsageError(f"--kernel-package: {deb}: not a Debian package "
                         f"({proc.stderr.strip() or 'dpkg-deb --show failed'})")
    name, version = proc.stdout.split("\t", 1)
    if not name.startswith("linux-image-"):
        raise UsageError(f"--kernel-package: {deb}: {name} is not a linux-image package")
    return name, version.strip()


class PrivateApt:
    """apt-get with its own sources, lists, status and cache: the host's apt is untouched."""

    def __init__(self, suite: str, mirror: str | None = None):
        self.suite = suite
        self.mirror = mirror or os.environ.get("NVH_DEBIAN_MIRROR") or DEFAULT_MIRROR
        self.root = cache.cache_root() / "apt" / suite
        self.updated = False

    def options(self) -> list[str]:
        r = self.root
        return ["-o", f"Dir::Etc::SourceList={r / 'sources.list'}",
                "-o", "Dir::Etc::SourceParts=/dev/null",
                "-o", "Dir::Etc::Preferences=/dev/null",
                "-o", "Dir::Etc::PreferencesParts=/dev/null",
                "-o", f"Dir::State::Lists={r / 'lists'}",
                "-o", f"Dir::State::Status={r / 'status'}",
                "-o", f"Dir::Cache={r / 'cache'}",
                "-o", "APT::Architecture=amd64",
                "-o", "Debug::NoLocking=1",
                "-o", "Acquire::Languages=none"]

    def _run(self, args: list[str], what: str, cwd: Path | None = None) -> str:
        proc = subprocess.run(["apt-get", *self.options(), *args], capture_output=True,
                              text=True, cwd=cwd)
        if proc.returncode != 0:
            tail = " / ".join(proc.stderr.strip().splitlines()[-2:])
            raise InfraError(f"--kernel-package: {what} failed: {tail}")
        return proc.stdout

    def update(self) -> None:
        if self.updated:
            return
        if not KEYRING.is_file():
            raise InfraError(f"--kernel-package: {KEYRING} is missing (apt-get install "
                             "debian-archive-keyring)")
        for sub in ("lists/partial", "cache/archives/partial"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        (self.root / "status").touch()
        (self.root / "sources.list").write_text(
            f"deb [signed-by={KEYRING}] {self.mirror} {self.suite} main\n")
        with progress.step(f"apt-get update for {self.suite} ({self.mirror})"):
            self._run(["update", "-q"], f"apt-get update of {self.suite}")
        self.updated = True

    def resolve(self, package: str | None) -> tuple[str, str]:
        """(name, version) of `package`, or of the kernel linux-image-amd64 depends on."""
        self.update()
        if package is None:
            depends = self._field(META_PACKAGE, "Depends")
            found = re.search(r"(linux-image-[0-9][^\s,(]*)", depends)
            if not found:
                raise InfraError(f"--kernel-package: {META_PACKAGE} in {self.suite} depends on "
                                 f"no linux-image: {depends!r}")
            package = found.group(1)
        return package, self._field(package, "Version")

    def _field(self, package: str, field: str) -> str:
        proc = subprocess.run(["apt-cache", *self.options(), "show", "--no-all-versions",
                               package], capture_output=True, text=True)
        if proc.returncode != 0 or not proc.stdout.strip():
            raise UsageError(f"--kernel-package: no package {package} in {self.suite} "
                             f"({self.mirror})")
        for line in proc.stdout.splitlines():
            if line.startswith(f"{field}:"):
                return line.split(":", 1)[1].strip()
        raise InfraError(f"--kernel-package: {package} has no {field} field")

    def download(self, name: str, version: str, into: Path) -> Path:
        self._run(["download", "-q", f"{name}={version}"], f"apt-get download {name}", cwd=into)
        debs = list(into.glob("*.deb"))
        if len(debs) != 1:
            raise InfraError(f"--kernel-package: apt-get download {name} left {len(debs)} .debs")
        return debs[0]


def _prepare(deb: Path, out: Path, name: str, version: str) -> None:
    """Unpack `deb` into the cache entry `out`: vmlinuz (+ PVH vmlinux), config,
    System.map, modules.ext4 and initramfs.cpio.gz."""
    unpacked = out / "unpacked"
    proc = subprocess.run(["dpkg-deb", "-x", str(deb), str(unpacked)], capture_output=True,
                          text=True)
    if proc.returncode != 0:
        raise InfraError(f"--kernel-package: dpkg-deb -x {deb.name}: {proc.stderr.strip()}")
    kernels = sorted((unpacked / "boot").glob("vmlinuz-*"))
    if len(kernels) != 1:
        raise UsageError(f"--kernel-package: {deb.name} holds {len(kernels)} kernels in /boot "
                         "(a linux-image package holds one)")
    release = kernels[0].name.removeprefix("vmlinuz-")
    shutil.copyfile(kernels[0], out / "vmlinuz")
    for part in ("config", "System.map"):
        src = unpacked / "boot" / f"{part}-{release}"
        if src.is_file():
            shutil.copyfile(src, out / part)
    elf = vmlinux.extract_vmlinux((out / "vmlinuz").read_bytes())
    if elf and vmlinux.has_pvh_entry(elf):
        (out / "vmlinux").write_bytes(elf)
    modules = _modules_tree(unpacked, release, out / "staging")
    from .kernel import make_modules_image

    make_modules_image(modules.parent, out / "modules.ext4")
    order = load_order(modules, (*ROOT_DISK_MODULES, *EARLY_EXTRA_MODULES))
    build_initramfs(modules, order, out / "initramfs.cpio.gz", out / "init")
    (out / "manifest.json").write_text(json.dumps(
        {"package": name, "version": version, "release": release, "deb": deb.name,
         "initramfs_modules": [m.name for m in order]}, indent=1) + "\n")
    # The entry keeps what boots: the modules live on in modules.ext4.
    shutil.rmtree(unpacked)
    shutil.rmtree(out / "staging")
    if deb.parent == out:
        deb.unlink()


def _modules_tree(unpacked: Path, release: str, staging: Path) -> Path:
    """STAGING/lib/modules/RELEASE with a modules.dep (host depmod; the package has none)."""
    for base in ("usr/lib/modules", "lib/modules"):
        src = unpacked / base / release
        if src.is_dir():
            break
    else:
        raise UsageError(f"--kernel-package: no modules for {release} in the package")
    dest = staging / "lib" / "modules" / release
    dest.parent.mkdir(parents=True)
    shutil.move(src, dest)
    proc = subprocess.run(["depmod", "-b", str(staging), release], capture_output=True,
                          text=True)
    if proc.returncode != 0 or not (dest / "modules.dep").is_file():
        raise InfraError(f"--kernel-package: depmod for {release} failed: "
                         f"{proc.stderr.strip() or 'no modules.dep'}")
    return dest


def parse_modules_dep(text: str) -> dict[str, list[str]]:
    """modules.dep -> {module path: [paths it depends on, in depmod's order]}."""
    deps: dict[str, list[str]] = {}
    for line in text.splitlines():
        path, sep, rest = line.partition(":")
        if sep:
            deps[path.strip()] = rest.split()
    return deps


def module_name(path: str) -> str:
    """kernel/fs/ext4/ext4.ko.xz -> ext4 (module names use '_' where files may use '-')."""
    base = path.rsplit("/", 1)[-1]
    return base.split(".ko", 1)[0].replace("-", "_")


def load_order(modules: Path, wanted: tuple[str, ...]) -> list[Path]:
    """The module files to load for `wanted` (names that are not modules are built in or
    absent: skipped), dependencies first, each once."""
    deps = parse_modules_dep((modules / "modules.dep").read_text())
    return [modules / p for p in resolve_load_order(deps, wanted)]


def resolve_load_order(deps: dict[str, list[str]], wanted: tuple[str, ...]) -> list[str]:
    by_name = {module_name(p): p for p in deps}
    order: list[str] = []

    def visit(path: str) -> None:
        if path in order:
            return
        # modules.dep lists every transitive dependency, the deepest last.
        for dep in reversed(deps.get(path, [])):
            visit(dep)
        order.append(path)

    for name in wanted:
        path = by_name.get(name.replace("-", "_"))
        if path:
            visit(path)
    return order


def decompress_module(path: Path) -> bytes:
    data = path.read_bytes()
    if path.name.endswith(".xz"):
        return lzma.decompress(data)
    if path.name.endswith(".gz"):
        return gzip.decompress(data)
    if path.name.endswith(".zst"):
        proc = subprocess.run(["zstd", "-dc", str(path)], capture_output=True)
        if proc.returncode != 0:
            raise InfraError(f"--kernel-package: zstd -d {path.name} failed (install zstd)")
        return proc.stdout
    return data


def compile_init(out: Path) -> None:
    proc = subprocess.run(["gcc", "-static", "-Os", "-Wall", "-Werror", "-o", str(out),
                           str(INIT_SOURCE)], capture_output=True, text=True)
    if proc.returncode != 0:
        raise InfraError(f"--kernel-package: building the initramfs init failed (gcc and a "
                         f"static libc, libc6-dev, are needed): {proc.stderr.strip()[-400:]}")


def build_initramfs(modules: Path, order: list[Path], out: Path, init_binary: Path) -> None:
    """A gzip'd newc cpio: /init, /modules/NN-name.ko (uncompressed, loaded in name order
    by /init) and the directories /init mounts on."""
    compile_init(init_binary)
    files = [("init", init_binary.read_bytes(), 0o100755)]
    for i, path in enumerate(order):
        files.append((f"modules/{i:02d}-{module_name(path.name)}.ko",
                      decompress_module(path), 0o100644))
    dirs = ["dev", "proc", "sys", "root", "modules"]
    out.write_bytes(gzip.compress(cpio_newc(dirs, files), compresslevel=6))


def cpio_newc(dirs: list[str], files: list[tuple[str, bytes, int]]) -> bytes:
    """The 'newc' cpio format the kernel unpacks (Documentation/driver-api/early-userspace/
    buffer-format.rst): 110-byte ASCII header, name, data, each padded to 4 bytes."""
    out = bytearray()
    ino = 1

    def entry(name: str, mode: int, data: bytes = b"") -> None:
        nonlocal ino
        nlink = 2 if mode & 0o040000 else 1
        fields = (ino, mode, 0, 0, nlink, 0, len(data), 0, 0, 0, 0, len(name) + 1, 0)
        out.extend(b"070701" + b"".join(b"%08X" % f for f in fields))
        out.extend(name.encode() + b"\0")
        out.extend(b"\0" * (-len(out) % 4))
        out.extend(data)
        out.extend(b"\0" * (-len(out) % 4))
        ino += 1

    for d in dirs:
        entry(d, 0o040755)
    for name, data, mode in files:
        entry(name, mode, data)
    entry("TRAILER!!!", 0)
    return bytes(out)


# Kernel source packages not in the host's suite, by version: fetched like the images.
SOURCE_SUITES = {"6.12": "trixie"}


def fetch_linux_source(version: str) -> Path:
    """CACHE/linux-source-VERSION: Debian's linux-source-VERSION unpacked (a real kernel tree
    to build, e.g. with gup_test), fetched through the private apt of its suite."""
    suite = SOURCE_SUITES.get(version)
    if suite is None:
        raise UsageError(f"linux-source-{version}: no suite known for it "
                         f"(known: {', '.join(SOURCE_SUITES)})")
    tree = cache.cache_root() / f"linux-source-{version}"
    if (tree / "Makefile").is_file():
        return tree
    apt = PrivateApt(suite)
    name, pkg_version = apt.resolve(f"linux-source-{version}")
    with cache.locked(tree):
        if (tree / "Makefile").is_file():
            return tree
        work = tree.parent / f".{tree.name}.fetch-{os.getpid()}"
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        try:
            with progress.step(f"downloading {name} {pkg_version}"):
                deb = apt.download(name, pkg_version, work)
            with progress.step(f"unpacking {name}"):
                subprocess.run(["dpkg-deb", "-x", str(deb), str(work / "x")], check=True)
                tarball = next((work / "x" / "usr" / "src").glob("linux-source-*.tar.*"))
                subprocess.run(["tar", "-C", str(work), "-xf", str(tarball)], check=True)
            os.rename(work / f"linux-source-{version}", tree)
        except (subprocess.CalledProcessError, StopIteration) as e:
            raise InfraError(f"linux-source-{version}: unpacking failed: {e}") from None
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return tree
