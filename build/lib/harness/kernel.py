"""Build the developer's kernel: tree + patch series + config fragments -> cached bzImage.

The user's working tree is never touched: a git tree gets a detached worktree in the cache,
any other tree (e.g. Debian's linux-source) a copy. The series is applied there (`git am`
for an mbox, `patch -p1` for a directory of patches in order, a commit range `A..B` is
checked out as is). The config is the tree's own .config if it has one, else tinyconfig,
plus the fragments; after olddefconfig every option a fragment forces is checked, so a
dropped option fails in seconds (exit 2) instead of after a ten-minute build.

Caching: the finished kernel is keyed by (tree identity, series, config, compiler); the
build directory (O=) only by (tree identity, compiler, instrumented or not) and locked
while in use, so a changed patch or fragment rebuilds incrementally (Kbuild tracks
per-object config dependencies), and switching between the plain and the debug
configuration does not recompile the other's objects.
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

from . import cache, kconfig, progress
from .errors import InfraError, UsageError

DEFAULT_FRAGMENTS = ("nvdimm",)
BUILD_FORMAT = 2  # 2: patches apply without fuzz


@dataclass(frozen=True)
class PatchSeries:
    """What to apply on top of the tree: an mbox, a directory of patches, or a commit range."""

    kind: str  # mbox | dir | range
    spec: str
    files: tuple[Path, ...] = ()

    def subjects(self, tree: Path | None = None) -> list[str]:
        if self.kind == "range" and tree is not None:
            out = _git(tree, "log", "--reverse", "--format=%s", self.spec)
            return out.splitlines()
        subjects: list[str] = []
        for f in self.files:
            found = [" ".join(m.group(1).split()) for m in re.finditer(
                r"^Subject: (.*(?:\n[ \t].*)*)", f.read_text(errors="replace"), re.MULTILINE)]
            subjects += found or [f.name]  # a plain diff has no Subject: name it by file
        return subjects

    def identity(self, tree: Path) -> str:
        if self.kind == "range":
            return "range:" + _git(tree, "rev-parse", self.spec.split("..")[0],
                                   self.spec.split("..")[1]).replace("\n", ",")
        return cache.content_hash([f.read_bytes() for f in self.files])


@dataclass(frozen=True)
class BuiltKernel:
    directory: Path
    bzimage: Path
    vmlinux: Path | None  # ELF with a PVH entry: symbols, and booted unless pvh_refused
    modules_image: Path | None
    release: str
    config_hash: str
    patches: tuple[str, ...]
    manifest: dict

    @property
    def boot_image(self) -> Path:
        """The PVH vmlinux (no decompression, faster under TCG) unless the config rules it out."""
        return self.vmlinux if self.vmlinux and not self.pvh_refused else self.bzimage

    @property
    def pvh_refused(self) -> str:
        """Why the PVH entry is not used ("" when it is, or when there is none)."""
        if "pvh_refused" in self.manifest:
            return self.manifest["pvh_refused"]
        from .vmlinux import pvh_entry_refused  # an entry cached before the decision was stored

        config = self.directory / "config"
        return pvh_entry_refused(config.read_text(errors="replace") if config.is_file() else "",
                                 None)

    @property
    def source_dir(self) -> str | None:
        """Where the build's sources were (paths in its DWARF start here). The copy is shared
        by every series built from the tree: it holds the last build's patches, not this one's."""
        if self.manifest.get("source_dir"):
            return self.manifest["source_dir"]
        build = self.manifest.get("build_dir")  # entries from before source_dir was recorded
        return str(Path(build).parent.parent / "kernel-src" / Path(build).name) if build else None


def _git(tree: Path, *args: str) -> str:
    proc = subprocess.run(["git", "-C", str(tree), *args], capture_output=True, text=True)
    if proc.returncode != 0:
        raise UsageError(f"git {' '.join(args)} in {tree}: {proc.stderr.strip().splitlines()[-1]}"
                         if proc.stderr.strip() else f"git {' '.join(args)} failed in {tree}")
    return proc.stdout.strip()


def check_tree(tree: Path, option: str = "--tree") -> None:
    """`option` names the flag the user gave (`kernel build --tree`, `run --kernel-tree`)."""
    makefile = tree / "Makefile"
    if not tree.is_dir():
        raise UsageError(f"{option}: {tree}: "
                         + ("not a directory" if tree.exists() else "no such directory"))
    text = makefile.read_text(errors="replace")[:2000] if makefile.is_file() else ""
    if "PATCHLEVEL =" not in text or not (tree / "Kconfig").is_file() or \
            not (tree / "arch" / "x86").is_dir():
        raise UsageError(f"{option}: {tree}: not a Linux kernel tree (no top-level Makefile "
                         "with VERSION/PATCHLEVEL, Kconfig and arch/x86)")


def is_git_tree(tree: Path) -> bool:
    return subprocess.run(["git", "-C", str(tree), "rev-parse", "--show-toplevel"],
                          capture_output=True, text=True).stdout.strip() == str(tree.resolve())


def tree_identity(tree: Path) -> str:
    """A git commit (+ hash of uncommitted changes), or a hash of a listing of the files."""
    if is_git_tree(tree):
        head = _git(tree, "rev-parse", "HEAD")
        dirty = subprocess.run(["git", "-C", str(tree), "diff", "HEAD"], capture_output=True).stdout
        return f"git:{head}" + (f"+dirty:{cache.content_hash([dirty])[:16]}" if dirty else "")
    parts: list[str] = []
    for root, dirs, files in os.walk(tree):
        dirs[:] = sorted(d for d in dirs if d != ".git")
        for name in sorted(files):
            st = os.lstat(os.path.join(root, name))
            parts.append(f"{os.path.relpath(os.path.join(root, name), tree)}:{st.st_size}:"
                         f"{st.st_mtime_ns}")
    return "listing:" + cache.content_hash(parts)


def looks_like_patch(text: str) -> bool:
    return bool(re.search(r"^(diff --git |--- \S)", text, re.MULTILINE)) and \
        bool(re.search(r"^\+\+\+ \S", text, re.MULTILINE))


def parse_series(spec: str, tree: Path) -> PatchSeries:
    path = Path(spec)
    if path.is_file():
        if not looks_like_patch(path.read_text(errors="replace")):
            raise UsageError(f"--patches: {path}: not a patch (no diff in it)")
        return PatchSeries("mbox", spec, (path.resolve(),))
    if path.is_dir():
        files = tuple(sorted(p.resolve() for p in path.iterdir()
                             if p.suffix in (".patch", ".diff", ".mbox")))
        if not files:
            raise UsageError(f"--patches: {path}: no .patch/.diff files in the directory")
        for f in files:
            if not looks_like_patch(f.read_text(errors="replace")):
                raise UsageError(f"--patches: {f}: not a patch (no diff in it)")
        return PatchSeries("dir", spec, files)
    if ".." in spec and not spec.startswith(("/", ".")):
        if not is_git_tree(tree):
            raise UsageError(f"--patches: {spec}: a commit range needs a git tree")
        a, b = spec.split("..", 1)
        _git(tree, "rev-parse", "--verify", f"{a}^{{commit}}")
        _git(tree, "rev-parse", "--verify", f"{b}^{{commit}}")
        return PatchSeries("range", spec)
    raise UsageError(f"--patches: {spec}: no such file or directory (or A..B commit range)")


def compiler_version() -> str:
    try:
        return subprocess.run(["gcc", "--version"], capture_output=True,
                              text=True).stdout.splitlines()[0]
    except (OSError, IndexError):
        return "unknown"


def build_kernel(tree: Path, series: list[str], fragments: list[str] | None = None,
                 out: Path | None = None) -> BuiltKernel:
    """Validate everything cheap first, then build (or reuse) the kernel."""
    tree = tree.resolve()
    check_tree(tree)
    parsed = [parse_series(s, tree) for s in series]
    if sum(1 for s in parsed if s.kind == "range") > 1 or (
            any(s.kind == "range" for s in parsed) and len(parsed) > 1):
        raise UsageError("--patches: a commit range cannot be combined with other patches")
    frags = [kconfig.load_fragment(f) for f in (fragments or DEFAULT_FRAGMENTS)]
    base = (tree / ".config").read_text() if (tree / ".config").is_file() else "tinyconfig"
    cfg_hash = kconfig.config_hash([base, *(f.path.read_text() for f in frags)])
    identity = tree_identity(tree)
    compiler = compiler_version()
    series_id = [s.identity(tree) for s in parsed]
    key = cache.content_hash([f"format={BUILD_FORMAT}", identity, *series_id, cfg_hash,
                              compiler])
    entry = cache.cache_root() / "kernels" / key[:16]
    if not cache.is_complete(entry):
        with cache.locked(entry):
            if not cache.is_complete(entry):
                # Instrumented (KASAN, UBSAN...) and plain builds get an O= directory
                # each: every object differs between them, so sharing one made every
                # switch a full rebuild. Within each, a changed patch or fragment (e.g.
                # modular) rebuilds incrementally.
                flavour = kconfig.build_flavour(frags)
                build_id = cache.content_hash(
                    [identity, compiler, *([flavour] if flavour != "plain" else [])])[:16]
                build_dir = cache.cache_root() / "kernel-build" / build_id
                with cache.locked(build_dir), \
                        progress.step(f"building kernel from {tree}") as step, \
                        cache.staging_dir(entry) as tmp:
                    try:
                        _build(tree, parsed, frags, base, build_id, tmp, step,
                               {"tree": str(tree), "tree_identity": identity,
                                "config_hash": cfg_hash, "compiler": compiler})
                    except _BuildFailed as e:
                        # A step before the compile (tinyconfig, merge_config, the copy of
                        # the tree): its own last lines, never a traceback.
                        detail = "\n".join(e.tail[-10:])
                        raise InfraError(f"{e.what} failed (exit {e.rc}); last output:\n"
                                         f"{detail}") from None
    built = _open(entry)
    cache.mark_used(entry)
    if out:
        out.mkdir(parents=True, exist_ok=True)
        for f in (built.bzimage, built.vmlinux, entry / "config", entry / "manifest.json"):
            if f:
                shutil.copy2(f, out / f.name)
        if (entry / "modules").is_dir():
            shutil.copytree(entry / "modules", out / "modules", symlinks=True,
                            dirs_exist_ok=True)
    return built


def _open(entry: Path) -> BuiltKernel:
    m = json.loads((entry / "manifest.json").read_text())
    return BuiltKernel(
        directory=entry, bzimage=entry / "bzImage",
        vmlinux=entry / "vmlinux" if (entry / "vmlinux").is_file() else None,
        modules_image=entry / "modules.ext4" if (entry / "modules.ext4").is_file() else None,
        release=m["release"], config_hash=m["config_hash"], patches=tuple(m["patches"]),
        manifest=m,
    )


def _run(cmd: list[str], step: progress.Step, what: str, cwd: Path | None = None,
         tail_lines: int = 30) -> str:
    count = 0
    # Under make -j the compiler's error can scroll out of the tail while the other jobs
    # finish, so diagnostics are kept as they stream by.
    diagnostics: list[str] = []

    def show(line: str) -> None:
        nonlocal count
        if re.match(r"\s+(CC|LD|AR|AS)\b", line):
            count += 1
            step.note(f"{count} objects built, now {line.split()[-1]}", every_s=15)
        elif COMPILER_ERROR_RE.search(line) and len(diagnostics) < 20:
            diagnostics.append(line)

    rc, tail = progress.run_streaming(cmd, show, str(cwd) if cwd else None, tail_lines)
    if rc != 0:
        raise _BuildFailed(what, rc, tail, diagnostics)
    return "\n".join(tail)


# gcc/ld diagnostics ("fs/dax.c:12:2: error: ...", "#error", "undefined reference").
COMPILER_ERROR_RE = re.compile(r": (?:fatal )?error: |#error|undefined reference to|"
                               r"\bError \d")


class _BuildFailed(Exception):
    def __init__(self, what: str, rc: int, tail: list[str], diagnostics: list[str] = ()):
        super().__init__(what)
        self.what, self.rc, self.tail = what, rc, tail
        self.diagnostics = list(diagnostics)


def _prepare_source(tree: Path, parsed: list[PatchSeries], src: Path,
                    step: progress.Step) -> None:
    """A pristine copy of the tree at `src` with the series applied."""
    if is_git_tree(tree):
        rev = parsed[0].spec.split("..", 1)[1] if parsed and parsed[0].kind == "range" \
            else "HEAD"
        if src.exists():
            subprocess.run(["git", "-C", str(tree), "worktree", "remove", "--force", str(src)],
                           capture_output=True)
            shutil.rmtree(src, ignore_errors=True)
        subprocess.run(["git", "-C", str(tree), "worktree", "prune"], capture_output=True)
        _git(tree, "worktree", "add", "--detach", str(src), _git(tree, "rev-parse", rev))
    else:
        step.note(f"copying {tree} (not a git tree)")
        shutil.rmtree(src, ignore_errors=True)
        src.parent.mkdir(parents=True, exist_ok=True)
        proc = subprocess.run(["cp", "-a", "--reflink=auto", str(tree), str(src)],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            raise _BuildFailed(f"copying {tree}", proc.returncode,
                               proc.stderr.strip().splitlines()[-5:])
    touched: set[str] = set()
    for s in parsed:
        if s.kind == "range":
            continue
        for f in s.files:
            _apply_patch(src, f, s.kind == "mbox" and is_git_tree(src))
            touched |= patched_files(f.read_text(errors="replace"))
    _refresh_mtimes(src, touched)


def patched_files(patch_text: str) -> set[str]:
    return {m.group(1) for m in re.finditer(r"^\+\+\+ b/(\S+)", patch_text, re.MULTILINE)}


def _refresh_mtimes(src: Path, touched: set[str]) -> None:
    """Make `make` rebuild every file this series or the previous one patched.

    A fresh copy restores files a previous series changed with their original (old) mtime,
    which is older than the objects built from the patched version: without this, the
    incremental build would keep the previous series' objects.
    """
    record = src.parent / f"{src.name}.patched-files"
    previous = set(record.read_text().split()) if record.exists() else set()
    now = time.time()
    for rel in touched | previous:
        path = src / rel
        if path.exists():
            os.utime(path, (now, now))
    record.write_text("\n".join(sorted(touched)) + "\n")


def _apply_patch(src: Path, patch: Path, use_git_am: bool) -> None:
    if use_git_am:
        cmd = ["git", "-C", str(src), "-c", "user.name=nvdimm-harness",
               "-c", "user.email=nvdimm-harness@localhost", "am", "--3way", str(patch)]
    else:
        # --fuzz=0: a hunk whose context does not match is a failure, as with git am; a
        # series that only applies with fuzz is not the series the developer will send.
        cmd = ["patch", "-p1", "--batch", "--forward", "--fuzz=0", "-d", str(src),
               "-i", str(patch)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode == 0:
        return
    if use_git_am:
        subprocess.run(["git", "-C", str(src), "am", "--abort"], capture_output=True)
    raise UsageError(f"--patches: {patch.name} does not apply: "
                     f"{failing_hunk(proc.stdout + proc.stderr)}")


def failing_hunk(output: str) -> str:
    """The file (and hunk) a failed `git am` or `patch` names, for a one-line error."""
    m = re.search(r"error: patch failed: (\S+)", output)
    if m:
        return f"hunk failed in {m.group(1)}"
    current = None
    for line in output.splitlines():
        pm = re.match(r"patching file (\S+)", line)
        if pm:
            current = pm.group(1)
        hm = re.match(r"(Hunk #\d+ FAILED at \d+)", line)
        if hm and current:
            return f"{hm.group(1)} in {current}"
        if re.search(r"can't find file to patch|No file to patch", line):
            return "a file it patches does not exist in the tree"
    last = [ln for ln in output.strip().splitlines() if ln.strip()]
    return last[-1] if last else "unknown reason"


def _configure(src: Path, build: Path, frags: list, base: str, step: progress.Step) -> None:
    make = ["make", "-s", "-C", str(src), f"O={build}"]
    if base == "tinyconfig":
        _run([*make, "tinyconfig"], step, "make tinyconfig")
    else:
        (build / ".config").write_text(base)
    _run(["sh", str(src / "scripts/kconfig/merge_config.sh"), "-m", "-O", str(build),
          str(build / ".config"), *(str(f.path) for f in frags)], step, "merge_config.sh")
    _run([*make, "olddefconfig"], step, "make olddefconfig")
    final = kconfig.parse_config((build / ".config").read_text())
    # Merged, not per fragment: a later fragment may switch off what an earlier one set.
    missing = kconfig.unmet(kconfig.merged_options(frags), final)
    if missing:
        raise UsageError("config fragment not satisfied after olddefconfig: "
                         + kconfig.fragment_check_message(missing, src, final))
    # nfit_test's demands hold whatever a later fragment says: config_check.c would stop
    # its build only after the whole kernel was compiled.
    nfit = next((f for f in frags if f.path.name == NFIT_FRAGMENT_FILE), None)
    missing = kconfig.unmet(nfit.options, final) if nfit else []
    if missing:
        raise UsageError("--config nfit: nfit_test (tools/testing/nvdimm/config_check.c, "
                         "ndctl's tests) needs what another fragment undid: "
                         + kconfig.fragment_check_message(missing, src, final))


def _build(tree: Path, parsed: list[PatchSeries], frags: list, base: str, build_id: str,
           out: Path, step: progress.Step, manifest: dict) -> None:
    root = cache.cache_root()
    src = root / "kernel-src" / build_id
    build = root / "kernel-build" / build_id
    build.mkdir(parents=True, exist_ok=True)
    cache.mark_used(build)
    started = time.monotonic()
    # Kbuild with O= never writes into the source tree, so unless the series changes a
    # Kconfig file the config is checked against the user's tree before the (slow) copy:
    # a dropped option fails in seconds.
    series_changes_kconfig = any(
        "Kconfig" in path for s in parsed for f in s.files
        for path in patched_files(f.read_text(errors="replace"))) or any(
        s.kind == "range" for s in parsed)
    if not series_changes_kconfig:
        _configure(tree, build, frags, base, step)
    _prepare_source(tree, parsed, src, step)
    cache.mark_used(src)
    if series_changes_kconfig:
        _configure(src, build, frags, base, step)
    step.note("configuration verified: every fragment option is set as asked")
    jobs = str(os.cpu_count() or 2)
    make = ["make", "-C", str(src), f"O={build}", f"-j{jobs}"]
    try:
        _run([*make, "bzImage", "modules"], step, "kernel build")
    except _BuildFailed as e:
        errors = [ln for ln in e.diagnostics if "Error " not in ln] or e.diagnostics or \
            [ln for ln in e.tail if re.search(r"\berror\b|Error \d", ln)] or e.tail
        last = "\n".join(errors[:10])
        raise InfraError(f"kernel build failed (exit {e.rc}); errors:\n{last}") from None
    release = subprocess.run(["make", "-s", "-C", str(src), f"O={build}", "kernelrelease"],
                             capture_output=True, text=True).stdout.strip().splitlines()[-1]
    shutil.copy2(build / "arch/x86/boot/bzImage", out / "bzImage")
    shutil.copy2(build / ".config", out / "config")
    from .vmlinux import has_pvh_entry, pvh_entry_refused

    elf = (build / "vmlinux").read_bytes()
    pvh_makefile = src / "arch/x86/platform/pvh/Makefile"
    refused = pvh_entry_refused((build / ".config").read_text(errors="replace"),
                                pvh_makefile.read_text() if pvh_makefile.is_file() else None)
    if has_pvh_entry(elf):  # kept even when refused: the symbolizer reads it
        (out / "vmlinux").write_bytes(elf)
    manifest["pvh_refused"] = refused
    _install_modules(src, build, out, release, step,
                     nfit_test=any(f.path.name == NFIT_FRAGMENT_FILE for f in frags))
    manifest["test_modules"] = sorted(p.stem for p in (out / "modules").rglob("extra/**/*.ko"))
    subjects = [s for p in parsed for s in p.subjects(tree)]
    manifest.update({"release": release, "patches": subjects,
                     "series": [p.spec for p in parsed], "build_s": round(time.monotonic()
                                                                            - started, 1),
                     "built": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "build_dir": str(build),
                     "source_dir": str(src)})
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")


def _install_modules(src: Path, build: Path, out: Path, release: str,
                     step: progress.Step, nfit_test: bool = False) -> None:
    """Loadable modules reach the guest on a read-only disk mounted at /lib/modules."""
    if not list(build.rglob("*.ko")):
        return
    staging = out / "modules"  # an INSTALL_MOD_PATH: modules/lib/modules/<release>/
    _run(["make", "-s", "-C", str(src), f"O={build}", f"INSTALL_MOD_PATH={staging}",
          "modules_install"], step, "modules_install")
    if nfit_test:
        _install_nfit_test(src, build, staging, release, step)
    make_modules_image(staging / "lib" / "modules", out / "modules.ext4")


# The fragment whose builds also get the tree's nfit_test modules (ndctl's ndctl suite).
NFIT_FRAGMENT_FILE = "nfit.config"
NFIT_TEST_DIR = "tools/testing/nvdimm"


def _install_nfit_test(src: Path, build: Path, staging: Path, release: str,
                       step: progress.Step) -> None:
    """nfit_test and its wrapped copies of the NVDIMM modules (ndctl README: make
    M=tools/testing/nvdimm), installed to extra/, with a depmod override for each module
    that also exists in kernel/ so that modprobe loads the wrapped one."""
    tests = src / NFIT_TEST_DIR
    if not (tests / "Kbuild").is_file():
        raise UsageError(f"--config nfit: the tree has no {NFIT_TEST_DIR} (nfit_test)")
    # External modules build in their M= directory: the harness's copy of the tree.
    make = ["make", "-C", str(src), f"O={build}", f"M={tests}", f"-j{os.cpu_count() or 2}"]
    _run(make, step, f"nfit_test build (make M={NFIT_TEST_DIR})")
    _run([*make, f"INSTALL_MOD_PATH={staging}", "modules_install"], step,
         "nfit_test modules_install")
    root = staging / "lib" / "modules" / release
    wrapped = {p.name for p in (root / "extra").rglob("*.ko")}
    overrides = sorted(n.removesuffix(".ko") for n in wrapped
                       if any((root / "kernel").rglob(n)))
    conf = staging / "depmod.d"
    conf.mkdir(exist_ok=True)
    (conf / "nfit_test.conf").write_text(
        "# nvdimm-harness: nfit_test's wrapped modules win (ndctl README)\n"
        + "".join(f"override {m} * extra\n" for m in overrides))
    _run(["depmod", "-b", str(staging), "-C", str(conf), release], step, "depmod (overrides)")
    step.note(f"nfit_test: {len(wrapped)} modules in extra/, overriding {', '.join(overrides)}")


def modules_image_for(directory: Path) -> Path:
    """--modules DIR (an INSTALL_MOD_PATH, a lib/modules, or one release dir) -> cached disk."""
    d = directory.resolve()
    if not d.is_dir():
        raise UsageError(f"--modules: {directory}: no such directory")
    if (d / "lib" / "modules").is_dir():
        d = d / "lib" / "modules"
    elif (d / "modules.dep").is_file() or (d / "kernel").is_dir():
        # One release directory: the image root must hold <release>/ itself.
        staging_root = d.parent
        if not (staging_root / d.name).samefile(d):
            raise UsageError(f"--modules: {directory}: cannot tell the release directory")
        d = staging_root
    if not any((p / "modules.dep").is_file() for p in d.iterdir() if p.is_dir()):
        raise UsageError(f"--modules: {directory}: no <release>/modules.dep inside "
                         "(run `make modules_install INSTALL_MOD_PATH=DIR`)")
    key = tree_identity(d)
    image = cache.cache_root() / "modules" / f"{cache.content_hash([key])[:16]}.ext4"
    if not image.is_file():
        # Under the lock, so that guests started together (pytest -n) make it once.
        with cache.locked(image):
            if not image.is_file():
                tmp = image.with_suffix(f".tmp{os.getpid()}")
                make_modules_image(d, tmp)
                os.replace(tmp, image)
    cache.mark_used(image)
    return image


def make_modules_image(modules_root: Path, image: Path) -> None:
    """An ext4 image whose root is a /lib/modules tree (one directory per release)."""
    size = max(64 << 20, cache.dir_size(modules_root) * 2)
    proc = subprocess.run(["mkfs.ext4", "-q", "-F", "-L", "nvh-modules", "-d", str(modules_root),
                           str(image), f"{size // 1024}k"], capture_output=True, text=True)
    if proc.returncode != 0:
        raise InfraError(f"mkfs.ext4 for the modules disk failed: {proc.stderr.strip()}")
