"""ndctl's own test suites (`meson test` in ndctl's source) run in the guest: where the
source comes from, its build (in the guest, against the guest's libraries, cached on the
host), one upstream test's run, and what its result means for the harness.

The pytest family around it is testcases/upstream/test_ndctl.py; `nvdimm-harness
ndctl-test` (harness/cli.py) runs that family.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import shlex
import tarfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from . import cache, progress
from .errors import InfraError, UsageError
from .kmsg import Finding

ROOT = Path(__file__).resolve().parent.parent
SUITES = ("dax", "ndctl", "cxl")
# Where the source is looked for when --ndctl-src is not given (the project's shared inputs).
SHARED_SOURCES = ROOT.parent / "shared" / "third-party"
# Debian's ndctl_81.orig.tar.gz is upstream's v81 release tarball: the same files as tag v81
# (checked file by file against the v81 tarball on 2026-12-03). Pinned by hash.
DEBIAN_ORIG_URL = "http://deb.debian.org/debian/pool/main/n/ndctl/ndctl_81.orig.tar.gz"
DEBIAN_ORIG_SHA256 = "e40784687ac2d0c176748c9ffb8bde541a12301b6fedb607a9a70c8fd1f94929"
WHERE_TO_GET = ("get v81 with `git clone https://github.com/pmem/ndctl && git -C ndctl "
                "checkout v81` and pass --ndctl-src ndctl, or use --ndctl-src debian "
                "(Debian's copy of the v81 tarball)")

# meson bakes absolute source and build paths into each test's environment (NDCTL, DAXCTL,
# TEST_PATH, DATA_PATH: test/meson.build), so the build always lives at this guest path.
GUEST_DIR = "/opt/nvh-ndctl"
# docs off (asciidoctor is not in the image); systemd off (no unit files needed); the `ndctl
# test` subcommand and the destructive tests on: the dax suite is mostly destructive tests.
MESON_OPTIONS = ("-Ddocs=disabled", "-Dsystemd=disabled", "-Dtest=enabled",
                 "-Ddestructive=enabled")
# Per guest boot (/run is a tmpfs): the build is there and the DIMMs are labelled.
READY = "/run/nvh-ndctl-ready"
# QEMU's label area starts blank, which the kernel reads as a label-less region: one
# namespace spanning it, which cannot be divided ("Legacy / label-less namespaces do not
# support sub-dividing a region"). ndctl's tests create namespaces by size on ACPI.NFIT
# (dm.sh, daxctl-devices.sh, sub-section.sh), as on real labelled DIMMs: write the label
# index first (ndctl init-labels needs the regions disabled).
LABEL_ACPI_NFIT = ("{ndctl} disable-region -b ACPI.NFIT all && "
                   "{ndctl} init-labels -f -b ACPI.NFIT all && "
                   "{ndctl} enable-region -b ACPI.NFIT all")
# The harness's guest runs no udevd (setup.sh loads modules itself), but ndctl's tests
# assume one: dm.sh's `dmsetup create` waits for udev to make /dev/mapper/NAME (without it
# the node never appears), cxl-xor-region.sh runs `udevadm settle`. Started for new events
# only; no `udevadm trigger` replay of the boot's devices.
START_UDEV = ("pgrep -x systemd-udevd > /dev/null || "
              "/lib/systemd/systemd-udevd --daemon")
# Bump when the build steps change: a new cache entry.
BUILD_FORMAT = "1"
# Every upstream test has `timeout: 600` (test/meson.build); meson kills it after that times
# --timeout-multiplier. The harness's own deadline for the command is this much later.
MESON_TIMEOUT_S = 600
HARNESS_GRACE_S = 120
# mmap.sh (36 runs over a 1 GiB file, each writing and reading it 3 times) got through 30 runs
# in its 600 s under TCG on 2 cores (2026-12-03, Debian 6.1.0-57): emulation needs about twice
# the time upstream allows a real machine.
TCG_FACTOR = 2
# Registration lines of test/meson.build: [ 'name', program, 'suite' ],
TEST_ENTRY = re.compile(r"\[\s*'([^']+)'\s*,\s*\w+\s*,\s*'(\w+)'\s*\]")


@dataclass(frozen=True)
class UpstreamTest:
    name: str   # meson's test name: "dax-ext4.sh", "libndctl"
    suite: str  # dax, ndctl or cxl

    @property
    def test_id(self) -> str:
        """The harness's id for it: ndctl/<suite>/<name>."""
        return f"ndctl/{self.suite}/{self.name}"


def parse_meson_tests(meson_build: str) -> list[UpstreamTest]:
    """Every test test/meson.build registers (with -Ddestructive and keyutils enabled, as
    the harness builds it), in registration order."""
    return [UpstreamTest(name, suite) for name, suite in TEST_ENTRY.findall(meson_build)]


def select(tests: list[UpstreamTest], suite: str) -> list[UpstreamTest]:
    if suite == "all":
        return list(tests)
    if suite not in SUITES:
        raise UsageError(f"--suite: unknown suite {suite!r} (use {', '.join(SUITES)} or all)")
    return [t for t in tests if t.suite == suite]


# -- the source -------------------------------------------------------------------------------
@dataclass(frozen=True)
class NdctlSource:
    """ndctl's source tree: a release tarball or a checkout. Files are read with the top
    directory of a tarball stripped."""

    path: Path

    def files(self) -> dict[str, tuple[bytes, bool]]:
        """relative path -> (content, executable); no .git, no meson build directories."""
        if self.path.is_dir():
            return _dir_files(self.path)
        return _tar_files(self.path)

    def read(self, relative: str) -> str:
        data = self.files().get(relative)
        if data is None:
            raise UsageError(f"--ndctl-src: {self.path}: no {relative} (not an ndctl source "
                             f"tree; {WHERE_TO_GET})")
        return data[0].decode(errors="replace")

    def tests(self) -> list[UpstreamTest]:
        tests = parse_meson_tests(self.read("test/meson.build"))
        if not tests:
            raise UsageError(f"--ndctl-src: {self.path}: test/meson.build registers no test "
                             "in the form [ 'name', program, 'suite' ]")
        return tests

    def version(self) -> str:
        m = re.search(r"version\s*:\s*'([^']+)'", self.read("meson.build"))
        return m.group(1) if m else "unknown"

    def content_key(self) -> str:
        """A hash of the files themselves: the v81 tarball and a v81 checkout agree."""
        parts: list[bytes | str] = []
        for name, (data, exe) in sorted(self.files().items()):
            parts += [name, "x" if exe else "-", data]
        return cache.content_hash(parts)

    def write_tarball(self, dest: Path) -> None:
        """The files as ndctl-src/..., for the guest."""
        with tarfile.open(dest, "w:gz") as tar:
            for name, (data, exe) in sorted(self.files().items()):
                info = tarfile.TarInfo(f"ndctl-src/{name}")
                info.size, info.mode, info.mtime = len(data), 0o755 if exe else 0o644, 0
                tar.addfile(info, io.BytesIO(data))


def _dir_files(top: Path) -> dict[str, tuple[bytes, bool]]:
    build_dirs = {p.parent for p in top.rglob("meson-private")}
    out: dict[str, tuple[bytes, bool]] = {}
    for p in sorted(top.rglob("*")):
        rel = p.relative_to(top)
        if rel.parts[0] == ".git" or any(b == p or b in p.parents for b in build_dirs):
            continue
        if p.is_file():  # follows symlinks: test/dax-ext4.sh -> dax.sh becomes a copy
            out[rel.as_posix()] = (p.read_bytes(), bool(p.stat().st_mode & 0o111))
    return out


def _tar_files(path: Path) -> dict[str, tuple[bytes, bool]]:
    out: dict[str, tuple[bytes, bool]] = {}
    try:
        with tarfile.open(path) as tar:
            members = tar.getmembers()
            links = {}
            for m in members:
                parts = Path(m.name).parts
                if len(parts) < 2:
                    continue
                rel = Path(*parts[1:]).as_posix()
                if m.isfile():
                    f = tar.extractfile(m)
                    out[rel] = (f.read() if f else b"", bool(m.mode & 0o111))
                elif m.issym():
                    links[rel] = (Path(rel).parent / m.linkname).as_posix()
            for rel, target in links.items():
                if target in out:
                    out[rel] = out[target]
    except (tarfile.TarError, OSError) as e:
        why = str(e).splitlines()[0].rstrip(":") if str(e) else type(e).__name__
        raise UsageError(f"--ndctl-src: {path}: not a readable tarball ({why})") from None
    return out


def resolve_source(spec: str | None) -> NdctlSource:
    """--ndctl-src: a directory, a tarball, `debian`, or nothing (the shared v81 tarball)."""
    if spec is None:
        found = sorted(SHARED_SOURCES.glob("ndctl-*.tar.gz"))
        if not found:
            raise UsageError(f"--ndctl-src: no ndctl source given and none in "
                             f"{SHARED_SOURCES}; {WHERE_TO_GET}")
        source = NdctlSource(found[-1])
    elif spec == "debian":
        source = NdctlSource(fetch_debian_orig())
    else:
        path = Path(spec).expanduser()
        if not path.exists():
            raise UsageError(f"--ndctl-src: {spec}: no such file or directory; {WHERE_TO_GET}")
        source = NdctlSource(path.resolve())
    source.tests()  # an ndctl tree, or one line saying what it is not
    return source


def fetch_debian_orig() -> Path:
    """Debian's ndctl_81.orig.tar.gz, downloaded once into the cache and checked by hash."""
    dest = cache.cache_root() / "ndctl" / "ndctl_81.orig.tar.gz"
    if dest.is_file() and _sha256(dest.read_bytes()) == DEBIAN_ORIG_SHA256:
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        with urllib.request.urlopen(DEBIAN_ORIG_URL, timeout=60) as r:
            data = r.read()
    except OSError as e:
        raise InfraError(f"--ndctl-src debian: cannot download {DEBIAN_ORIG_URL}: {e}") from None
    if _sha256(data) != DEBIAN_ORIG_SHA256:
        raise InfraError(f"--ndctl-src debian: {DEBIAN_ORIG_URL} has sha256 {_sha256(data)}, "
                         f"not the pinned {DEBIAN_ORIG_SHA256}")
    tmp = dest.with_suffix(".part")
    tmp.write_bytes(data)
    tmp.rename(dest)
    return dest


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# -- the build in the guest -------------------------------------------------------------------
class GuestNdctl:
    """ndctl built from `source` in guests of one image: built once (in the guest, with the
    image's compiler and libraries), the build directory cached on the host as a tarball and
    unpacked into every later guest (a restarted guest starts from the pristine image)."""

    def __init__(self, source: NdctlSource, image_key: str):
        self.source = source
        self.key = cache.content_hash([f"format={BUILD_FORMAT}", source.content_key(),
                                       image_key, *MESON_OPTIONS])[:16]
        self.entry = cache.cache_root() / "ndctl" / self.key
        self.tarball = self.entry / "ndctl-build.tar.gz"

    @property
    def build_dir(self) -> str:
        return f"{GUEST_DIR}/build"

    def ensure(self, guest) -> None:
        """This guest boot is ready for ndctl's tests: the build is in it (unpacked from the
        cache, or built now) and its ACPI.NFIT DIMMs have labels."""
        if guest.run(f"test -e {READY}", timeout_s=30).status == 0:
            return
        self._install(guest)
        guest.succeed(START_UDEV, timeout_s=60)
        guest.succeed(LABEL_ACPI_NFIT.format(ndctl=f"{self.build_dir}/ndctl/ndctl"),
                      timeout_s=300)
        guest.succeed(f"touch {READY}", timeout_s=30)

    def _install(self, guest) -> None:
        if guest.run(f"test -x {self.build_dir}/ndctl/ndctl", timeout_s=30).status == 0:
            return
        with cache.locked(self.entry):
            if not cache.is_complete(self.entry):
                with cache.staging_dir(self.entry) as tmp:
                    self._build(guest, tmp / self.tarball.name)
            else:
                with progress.step("unpacking the cached ndctl build in the guest"):
                    guest.upload(self.tarball, "/tmp/ndctl-build.tar.gz")
                    guest.succeed(f"mkdir -p {GUEST_DIR} && tar -xzf /tmp/ndctl-build.tar.gz "
                                  f"-C {GUEST_DIR} && rm /tmp/ndctl-build.tar.gz",
                                  timeout_s=300)
        cache.mark_used(self.entry)

    def _build(self, guest, tarball: Path) -> None:
        with progress.step(f"building ndctl {self.source.version()} in the guest (meson; "
                           "cached afterwards)") as step:
            src_tar = tarball.parent / "ndctl-src.tar.gz"
            self.source.write_tarball(src_tar)
            guest.upload(src_tar, "/tmp/ndctl-src.tar.gz")
            src_tar.unlink()
            script = (f"set -e; rm -rf {GUEST_DIR}; mkdir -p {GUEST_DIR}; cd {GUEST_DIR}; "
                      "tar -xzf /tmp/ndctl-src.tar.gz; mv ndctl-src src; "
                      f"meson setup build src {' '.join(MESON_OPTIONS)}; "
                      "ninja -C build")
            status, log = run_logged(guest, script, f"{GUEST_DIR}.log", step, 3600)
            if status != 0:
                tail = "\n".join(log.strip().splitlines()[-15:])
                raise InfraError(f"building ndctl in the guest failed (exit {status}); "
                                 f"last lines:\n{tail}")
            guest.succeed(f"tar -czf /tmp/ndctl-build.tar.gz -C {GUEST_DIR} src build",
                          timeout_s=600)
            guest.download("/tmp/ndctl-build.tar.gz", tarball)
            guest.run("rm -f /tmp/ndctl-build.tar.gz /tmp/ndctl-src.tar.gz", timeout_s=30)

    def version(self, guest) -> str:
        return guest.succeed(f"{self.build_dir}/ndctl/ndctl --version", timeout_s=30).strip()

    def listed(self, guest) -> list[str]:
        """The tests meson itself lists (`meson test --list`), e.g. "ndctl:dax / dax-dev"."""
        out = guest.succeed(f"cd {self.build_dir} && meson test --no-rebuild --list",
                            timeout_s=120)
        return [ln.strip() for ln in out.splitlines() if " / " in ln]

    def run(self, guest, test: UpstreamTest, emulated: bool) -> MesonResult:
        """One upstream test with `meson test`; its result from meson's JSON log. meson's
        deadline is 600 s times TCG_FACTOR under emulation, times the kernel's slowdown (the
        harness's own deadline scales by that already)."""
        factor = TCG_FACTOR if emulated else 1
        multiplier = factor * guest.config.kernel.slowdown
        base = "nvh-" + re.sub(r"[^A-Za-z0-9_.-]", "_", test.name)
        logs = f"{self.build_dir}/meson-logs"
        command = (f"cd {self.build_dir} && rm -f meson-logs/{base}.json && "
                   f"meson test --no-rebuild --timeout-multiplier {multiplier:g} "
                   f"--logbase {base} {shlex.quote(test.name)} > meson-logs/{base}.out 2>&1; "
                   f"echo meson-exit=$?; cat {logs}/{base}.out; echo '--- json'; "
                   f"cat {logs}/{base}.json")
        r = guest.run(command, timeout_s=MESON_TIMEOUT_S * factor + HARNESS_GRACE_S)
        return parse_meson_run(test, r.stdout)


def run_logged(guest, script: str, log: str, step: progress.Step,
               timeout_s: float) -> tuple[int, str]:
    """Run a long guest script in the background, its output in `log`, reporting its last
    line every 15 s; (exit status, whole log). SSH commands stay short, so a dropped
    connection does not lose the build."""
    guest.succeed(f"rm -f {log} {log}.rc; (sh -c {shlex.quote(script)} > {log} 2>&1; "
                  f"echo $? > {log}.rc) < /dev/null > /dev/null 2>&1 &", timeout_s=30)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        time.sleep(5)
        r = guest.run(f"cat {log}.rc 2>/dev/null; echo '--- tail'; tail -n 1 {log}",
                      timeout_s=30)
        rc, _, last = r.stdout.partition("--- tail\n")
        if rc.strip():
            return int(rc.strip()), guest.run(f"cat {log}", timeout_s=60).stdout
        if last.strip():
            step.note(last.strip()[:150], every_s=15)
    raise InfraError(f"the guest step did not finish in {timeout_s:.0f}s (log {log})")


# -- one test's result ------------------------------------------------------------------------
@dataclass(frozen=True)
class MesonResult:
    test: UpstreamTest
    result: str        # meson's: OK, FAIL, SKIP, TIMEOUT, ERROR, EXPECTEDFAIL, UNEXPECTEDPASS
    returncode: int | None
    duration_s: float
    output: str        # the test's own stdout/stderr as meson logged it
    meson_output: str  # what `meson test` printed

    @property
    def log(self) -> str:
        """The test's log file for the results directory."""
        return (f"# ndctl upstream test {self.test.name} (suite {self.test.suite})\n"
                f"# meson: {self.result}, exit {self.returncode}, {self.duration_s:.1f}s\n"
                f"{self.output}\n--- meson test ---\n{self.meson_output}")


def parse_meson_run(test: UpstreamTest, stdout: str) -> MesonResult:
    """From the run command's output: meson's exit, its console output, its JSON test log."""
    head, _, json_text = stdout.partition("--- json\n")
    meson_output = head.split("\n", 1)[1] if head.startswith("meson-exit=") else head
    record = None
    for line in json_text.splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and entry.get("name", "").endswith(test.name):
            record = entry
    if record is None:
        raise InfraError(f"meson did not run ndctl test {test.name!r} (no entry in its JSON "
                         f"log); it printed:\n{meson_output.strip()[-1500:]}")
    output = str(record.get("stdout") or "")
    if record.get("stderr"):
        output += "\n--- stderr ---\n" + str(record["stderr"])
    rc = record.get("returncode")
    return MesonResult(test, str(record.get("result", "ERROR")),
                       int(rc) if isinstance(rc, int) else None,
                       float(record.get("duration") or 0.0), output, meson_output)


# What a skipping test says about why: ndctl's do_skip/check_prereq lines, the C tests'
# "... skipping tests", a failed modprobe of a test module, "Unable to find a victim ...";
# failing that, a weaker hint (a shell error, cleanup's "Error at line N").
SKIP_WORDS = re.compile(r"skip|unavailable|missing|not supported|requires|need|"
                        r"fatal|unable", re.IGNORECASE)
WEAK_WORDS = re.compile(r"not found|error|failed", re.IGNORECASE)
# err() in test/common: "<script>: failed at line N"
FAILED_AT = re.compile(r"(?P<script>[\w.+/-]+): failed at line (?P<line>\d+)")
# Lines that are not the test talking: `set -x` traces, the libraries' debug log.
NOISE = re.compile(r"^(\++ |libndctl: |libdaxctl: |libcxl: |--- stderr ---$|# )")


def skip_reason(output: str) -> str:
    """Why a test skipped, in its own words: where it stopped (err()'s "failed at line N")
    and the last line saying why (modprobe's error, a printf), else its last line."""
    lines = [ln.strip() for ln in output.splitlines()
             if ln.strip() and not NOISE.match(ln.strip())]
    where = next((ln for ln in reversed(lines) if FAILED_AT.search(ln)), None)
    others = [ln for ln in lines if not FAILED_AT.search(ln)]
    why = next((ln for ln in reversed(others) if SKIP_WORDS.search(ln)), None) or \
        next((ln for ln in reversed(others) if WEAK_WORDS.search(ln)), None)
    text = ": ".join(x for x in (where, why) if x) or (lines[-1] if lines else "no output")
    return text[:300]


def failure_location(r: MesonResult) -> str:
    """Where an upstream test failed, stably: "dax.sh line 45" from err()'s line, else the
    exit status (C tests exit with their error code)."""
    hits = FAILED_AT.findall(r.output)
    if hits:
        script, line = hits[-1]
        return f"{Path(script).name} line {line}"
    return f"exit {r.returncode}"


PASSED = ("OK", "EXPECTEDFAIL")


@dataclass(frozen=True)
class Judgement:
    outcome: str  # passed, skipped, failed, timeout
    message: str
    finding: Finding | None = None  # for a failure: what known_failures.yaml can name


def judge(r: MesonResult) -> Judgement:
    """What meson's result means for the harness test. A finding (its title stable across
    runs: "ndctl test dax-ext4.sh failed: dax.sh line 45") lets the known-failures table
    name an upstream failure the way it names a kernel report."""
    if r.result in PASSED:
        return Judgement("passed", f"meson: {r.result}")
    if r.result == "SKIP":
        return Judgement("skipped", f"ndctl {r.test.name}: {skip_reason(r.output)}")
    tail = "\n".join(r.output.strip().splitlines()[-20:])
    if r.result == "TIMEOUT":
        return Judgement("timeout", f"meson: TIMEOUT after {r.duration_s:.0f}s (ndctl's "
                                    f"{MESON_TIMEOUT_S}s limit, times {TCG_FACTOR} under TCG "
                                    f"and the kernel's slowdown); last lines:\n{tail}")
    where = failure_location(r)
    title = f"ndctl test {r.test.name} failed: {where}"
    finding = Finding("upstream", title, 0, tail)
    return Judgement("failed", f"meson: {r.result} (exit {r.returncode}) after "
                               f"{r.duration_s:.1f}s, at {where}; last lines of its output:\n"
                               f"{tail}", finding)
