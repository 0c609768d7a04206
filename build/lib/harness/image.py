"""Guest images: a YAML recipe in guest-images/ -> a cached ext4 root, kernel, initrd and keys.

The root is bootstrapped with mmdebstrap into a directory and turned into an image with
`mkfs.ext4 -d` (no loop mounts). The C programs the guest needs (its init, the workloads)
are compiled inside the image with the image's own gcc, so the host needs no toolchain that
matches the guest's libc. A compiled source may include headers that sit next to it
(`#include "nvh-common.h"`): they are found by scanning the sources, staged with them and
hashed like them. The cache key is a hash of the recipe, every file it names and those
headers.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import cache, progress, vmlinux
from .errors import InfraError, UsageError
from .sizes import MiB, align_up, parse_size
from .yamlfile import YamlFileError, read_yaml

RECIPES_DIR = Path(__file__).resolve().parent.parent / "guest-images"
DEFAULT_RECIPE = "debian-bookworm"
# Bump when the build procedure changes in a way the recipe hash cannot see.
BUILD_FORMAT = 2
HOST_TOOLS = ("mmdebstrap", "mkfs.ext4", "ssh-keygen")
SOURCES_IN_IMAGE = "/usr/local/src/nvh"


@dataclass(frozen=True)
class Recipe:
    name: str
    path: Path
    suite: str
    variant: str
    mirrors: tuple[str, ...]
    packages: tuple[str, ...]
    copy: tuple[dict[str, Any], ...]
    compile: tuple[dict[str, Any], ...]
    remove: tuple[str, ...]
    initramfs_modules: tuple[str, ...]
    free_space: int

    def headers(self) -> list[Path]:
        """The local headers of the compiled sources, each once, in include order."""
        out: list[Path] = []
        for item in self.compile:
            for h in local_headers(RECIPES_DIR / item["src"]):
                if h not in out:
                    out.append(h)
        return out

    def input_files(self) -> list[Path]:
        return [*(RECIPES_DIR / item["src"] for item in (*self.copy, *self.compile)),
                *self.headers()]

    def cache_key(self) -> str:
        parts: list[bytes | str] = [f"format={BUILD_FORMAT}", self.path.read_bytes()]
        for f in self.input_files():
            parts += [str(f.relative_to(RECIPES_DIR)), f.read_bytes()]
        return cache.content_hash(parts)


_LOCAL_INCLUDE = re.compile(r'^[ \t]*#[ \t]*include[ \t]*"([^"]+)"', re.MULTILINE)


def local_headers(source: Path) -> list[Path]:
    """Every header `source` includes with #include "...", recursively, in include order.

    The image compiles all sources in one flat directory, so a header must be a plain file
    name next to its source; anything else is a UsageError.
    """
    out: list[Path] = []
    todo = [source]
    while todo:
        current = todo.pop(0)
        for name in _LOCAL_INCLUDE.findall(current.read_text(errors="replace")):
            header = source.parent / name
            if "/" in name or not header.is_file():
                raise UsageError(f"{current.relative_to(RECIPES_DIR)}: #include \"{name}\": "
                                 f"the image build needs it as a file next to "
                                 f"{source.name}")
            if header not in out:
                out.append(header)
                todo.append(header)
    return out


@dataclass(frozen=True)
class GuestImage:
    """A built image: everything needed to boot the guest and log in."""

    directory: Path
    rootfs: Path
    kernel: Path
    initrd: Path
    pvh_kernel: Path | None  # the inflated ELF vmlinux, when the kernel can boot via PVH
    ssh_key: Path
    host_public_key: str
    kernel_release: str
    manifest: dict[str, Any]


def resolve_recipe_path(name_or_path: str | None) -> Path:
    spec = name_or_path or DEFAULT_RECIPE
    if "/" in spec or spec.endswith((".yaml", ".yml")):
        path = Path(spec)
    else:
        path = RECIPES_DIR / f"{spec}.yaml"
    if not path.is_file():
        raise UsageError(f"--recipe: {path}: no such recipe file")
    return path


RECIPE_KEYS = frozenset({"name", "suite", "variant", "mirrors", "packages", "copy", "compile",
                         "remove", "initramfs_modules", "free_space"})


def load_recipe(name_or_path: str | None = None) -> Recipe:
    path = resolve_recipe_path(name_or_path)
    try:
        data = read_yaml(path)
    except YamlFileError as e:
        raise UsageError(str(e)) from None
    if not isinstance(data, dict):
        raise UsageError(f"{path}: must be a mapping")
    unknown = sorted(set(map(str, data)) - RECIPE_KEYS)
    if unknown:
        raise UsageError(f"{path}: {unknown[0]}: unknown key (a recipe has "
                         f"{', '.join(sorted(RECIPE_KEYS))})")

    def items(key: str) -> tuple:
        value = data.get(key, [])
        if not isinstance(value, list):
            raise UsageError(f"{path}: {key}: must be a list")
        return tuple(value)

    for key in ("copy", "compile"):
        for i, item in enumerate(items(key)):
            if not isinstance(item, dict) or not {"src", "dst"} <= set(item):
                raise UsageError(f"{path}: {key}[{i}]: needs src and dst")
            if not (RECIPES_DIR / item["src"]).is_file():
                raise UsageError(f"{path}: {key}[{i}].src: {item['src']}: no such file")
    # Sources and their headers share one directory in the image: one file per name.
    staged: dict[str, Path] = {}
    for item in items("compile"):
        src = RECIPES_DIR / item["src"]
        for f in (src, *local_headers(src)):
            if staged.setdefault(f.name, f) != f:
                raise UsageError(f"{path}: compile: {staged[f.name].relative_to(RECIPES_DIR)} "
                                 f"and {f.relative_to(RECIPES_DIR)} would both be staged "
                                 f"as {SOURCES_IN_IMAGE}/{f.name}")
    try:
        free_space = parse_size(data.get("free_space", "512M"))
    except ValueError as e:
        raise UsageError(f"{path}: free_space: {e}") from None
    return Recipe(
        name=str(data.get("name", path.stem)),
        path=path,
        suite=str(data.get("suite", "bookworm")),
        variant=str(data.get("variant", "apt")),
        mirrors=tuple(os.environ.get("NVH_DEBIAN_MIRROR", "").split() or items("mirrors")),
        packages=tuple(items("packages")),
        copy=items("copy"),
        compile=items("compile"),
        remove=tuple(items("remove")),
        initramfs_modules=tuple(items("initramfs_modules")),
        free_space=free_space,
    )


def image_dir(recipe: Recipe) -> Path:
    return cache.cache_root() / "images" / f"{recipe.name}-{recipe.cache_key()[:16]}"


def ensure_image(recipe: Recipe, force: bool = False) -> GuestImage:
    """Return the cached image for `recipe`, building it first when missing (or forced)."""
    entry = image_dir(recipe)
    if not force and cache.is_complete(entry):
        return _open_image(entry)
    _check_host_tools()
    with cache.locked(entry):
        if not force and cache.is_complete(entry):  # a concurrent run built it meanwhile
            return _open_image(entry)
        with progress.step(f"building guest image {entry.name}") as step, \
                cache.staging_dir(entry) as tmp:
            try:
                _build(recipe, tmp, step)
            finally:
                _remove_rootdir(tmp / "root")
    return _open_image(entry)


def _open_image(entry: Path) -> GuestImage:
    cache.mark_used(entry)
    return image_at(entry, json.loads((entry / "manifest.json").read_text()))


def image_at(entry: Path, manifest: dict[str, Any]) -> GuestImage:
    """The layout of a cache entry; `qemu-cmd` uses it for an image not built yet."""
    host_key = entry / "ssh_host_ed25519_key.pub"
    return GuestImage(
        directory=entry,
        rootfs=entry / "rootfs.ext4",
        kernel=entry / "vmlinuz",
        initrd=entry / "initrd.img",
        pvh_kernel=entry / "vmlinux" if (entry / "vmlinux").is_file() else None,
        ssh_key=entry / "id_ed25519",
        host_public_key=host_key.read_text().strip() if host_key.is_file() else "",
        kernel_release=manifest.get("kernel_release", "?"),
        manifest=manifest,
    )


def _check_host_tools() -> None:
    missing = [t for t in HOST_TOOLS if not shutil.which(t)]
    if missing:
        raise InfraError(
            f"image build needs {', '.join(missing)} on the host (run `make setup` to install)"
        )
    if os.geteuid() != 0:
        raise InfraError(
            "image build needs root (mmdebstrap --mode=root, mkfs.ext4 -d keeps ownership); "
            "run `sudo make image` once, later runs reuse the cached image"
        )


def _run(cmd: list[str], step: progress.Step, what: str) -> None:
    """Run a build command; mmdebstrap's I:/W:/E: lines are the progress worth showing."""
    def show(line: str) -> None:
        if line.startswith(("I: ", "E: ", "W: ")):
            step.note(line, every_s=0 if line.startswith("E") else 5)

    rc, tail = progress.run_streaming(cmd, show)
    if rc != 0:
        detail = "\n".join(tail[-10:])
        raise InfraError(f"{what} failed (exit {rc}); last output:\n{detail}")


def _stage_files(recipe: Recipe, stage: Path, keys: Path) -> None:
    """Lay out everything the image gets from the host, as the tree sync-in copies to /."""
    for item in recipe.copy:
        dst = stage / item["dst"].lstrip("/")
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(RECIPES_DIR / item["src"], dst)
        dst.chmod(int(str(item.get("mode", "0644")), 8))
    src_dir = stage / SOURCES_IN_IMAGE.lstrip("/")
    src_dir.mkdir(parents=True, exist_ok=True)
    for f in (*(RECIPES_DIR / item["src"] for item in recipe.compile), *recipe.headers()):
        shutil.copyfile(f, src_dir / f.name)
    ssh_dir = stage / "etc" / "ssh"
    ssh_dir.mkdir(parents=True, exist_ok=True)
    for suffix in ("", ".pub"):
        shutil.copyfile(keys / f"ssh_host_ed25519_key{suffix}",
                        ssh_dir / f"ssh_host_ed25519_key{suffix}")
    (ssh_dir / "ssh_host_ed25519_key").chmod(0o600)
    root_ssh = stage / "root" / ".ssh"
    root_ssh.mkdir(parents=True, exist_ok=True)
    root_ssh.chmod(0o700)
    shutil.copyfile(keys / "id_ed25519.pub", root_ssh / "authorized_keys")
    (stage / SOURCES_IN_IMAGE.lstrip("/") / "customize.sh").write_text(_customize_script(recipe))


def _customize_script(recipe: Recipe) -> str:
    """Runs inside the chroot after all packages are installed."""
    lines = ["set -eu", f"cd {SOURCES_IN_IMAGE}"]
    for item in recipe.compile:
        name = Path(item["src"]).name
        flags = item.get("flags", "")
        lines.append(f"mkdir -p {Path(item['dst']).parent}")
        lines.append(
            f"gcc -O2 -g -Wall -Wextra -Werror -D_GNU_SOURCE -o {item['dst']} {name} {flags}"
        )
    # Host keys from openssh-server's postinst are replaced by the pinned per-image key.
    lines.append("find /etc/ssh -name 'ssh_host_*' ! -name 'ssh_host_ed25519_key*' -delete")
    for path in recipe.remove:
        lines.append(f"rm -rf {path}")
    if recipe.initramfs_modules:
        # MODULES=list: a small initrd (6 MB instead of ~30) unpacks faster under TCG.
        lines.append("echo MODULES=list > /etc/initramfs-tools/conf.d/nvh")
        lines.append(f"printf '%s\\n' {' '.join(recipe.initramfs_modules)} "
                     "> /etc/initramfs-tools/modules")
        lines.append("update-initramfs -u -k all")
    lines.append("apt-get clean")
    lines.append("rm -rf /var/lib/apt/lists/*")
    return "\n".join(lines) + "\n"


def _build(recipe: Recipe, out: Path, step: progress.Step) -> None:
    keys = out / "keys"
    keys.mkdir()
    for name in ("id_ed25519", "ssh_host_ed25519_key"):
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "nvdimm-harness",
             "-f", str(keys / name)],
            check=True,
        )
    stage = out / "stage"
    _stage_files(recipe, stage, keys)
    rootdir = out / "root"
    started = time.monotonic()
    _run(
        [
            "mmdebstrap", f"--variant={recipe.variant}", "--mode=root",
            f"--include={','.join(recipe.packages)}",
            "--customize-hook", f'sync-in "{stage}" /',
            "--customize-hook", f'chroot "$1" sh {SOURCES_IN_IMAGE}/customize.sh',
            recipe.suite, str(rootdir), *recipe.mirrors,
        ],
        step, "mmdebstrap",
    )
    bootstrap_s = time.monotonic() - started
    releases = sorted(p.name for p in (rootdir / "lib" / "modules").iterdir())
    if len(releases) != 1:
        raise InfraError(f"image has {len(releases)} kernels ({releases}); expected exactly one")
    release = releases[0]
    shutil.copyfile(rootdir / "boot" / f"vmlinuz-{release}", out / "vmlinuz")
    shutil.copyfile(rootdir / "boot" / f"initrd.img-{release}", out / "initrd.img")
    elf = vmlinux.extract_vmlinux((out / "vmlinuz").read_bytes())
    if elf and vmlinux.has_pvh_entry(elf):
        (out / "vmlinux").write_bytes(elf)
        step.note("kernel has a PVH entry: booting the inflated vmlinux (skips decompression)")
    used = cache.dir_size(rootdir)
    size = align_up(used + used // 5 + recipe.free_space, 64 * MiB)
    step.note(f"mkfs.ext4 -d: {used // MiB} MiB of files into a {size // MiB} MiB image")
    _run(
        ["mkfs.ext4", "-q", "-F", "-L", "nvh-root", "-d", str(rootdir),
         str(out / "rootfs.ext4"), f"{size // 1024}k"],
        step, "mkfs.ext4",
    )
    shutil.move(keys / "id_ed25519", out / "id_ed25519")
    shutil.move(keys / "id_ed25519.pub", out / "id_ed25519.pub")
    shutil.move(keys / "ssh_host_ed25519_key.pub", out / "ssh_host_ed25519_key.pub")
    shutil.rmtree(keys)
    shutil.rmtree(stage)
    packages = subprocess.run(
        ["chroot", str(rootdir), "dpkg-query", "-W", "-f", "${Package} ${Version}\\n"],
        capture_output=True, text=True, check=False,
    ).stdout.splitlines()
    manifest = {
        "recipe": recipe.name,
        "cache_key": recipe.cache_key(),
        "suite": recipe.suite,
        "kernel_release": release,
        "built": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "bootstrap_s": round(bootstrap_s, 1),
        "build_s": round(step.elapsed(), 1),
        "image_bytes": size,
        "packages": packages,
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")


def _remove_rootdir(rootdir: Path) -> None:
    """Delete a bootstrap directory, unmounting anything an interrupted mmdebstrap left."""
    if not rootdir.exists():
        return
    prefix = str(rootdir.resolve()) + "/"
    with open("/proc/self/mounts") as f:
        mounts = [line.split()[1] for line in f]
    for mnt in sorted((m for m in mounts if m.startswith(prefix)), reverse=True):
        subprocess.run(["umount", "-l", mnt], check=False)
    shutil.rmtree(rootdir, ignore_errors=True)
