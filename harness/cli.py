"""The `nvdimm-harness` command line (DESIGN.md). Only argument handling and output here."""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from . import progress, symbolize
from .accel import AccelChoice, choose_accel
from .errors import (
    EXIT_INFRA,
    EXIT_SIGINT,
    EXIT_SIGTERM,
    EXIT_USAGE,
    HarnessError,
    InfraError,
    UsageError,
)
from .guest_options import SERIES_FLAGS, GuestOptions, add_guest_options
from .image import ensure_image, image_dir, load_recipe

ROOT = Path(__file__).resolve().parent.parent
TESTCASES = ROOT / "testcases"


class OneLineParser(argparse.ArgumentParser):
    """argparse prints usage + error on two lines; DESIGN.md wants one clear line."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(EXIT_USAGE, f"nvdimm-harness: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="nvdimm-harness",
                           description="QEMU/NVDIMM integration tests for DAX, GUP and pmem.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=OneLineParser)

    run = sub.add_parser("run", help="boot a guest and run the test suite")
    add_guest_options(run.add_argument)
    run.add_argument("-k", dest="keyword", metavar="EXPR", help="select tests (pytest -k)")
    run.add_argument("--results", metavar="DIR", help="results directory "
                                                      "(default: results/<run-id>)")
    run.add_argument("--jobs", metavar="N", default="1",
                     help="run the suite in N guests at once (pytest-xdist workers; default 1)")
    run.add_argument("--shard", metavar="K/N", help="run only shard K of N: every Nth test "
                     "of the selection (for CI matrices; join them with `merge`)")

    nt = sub.add_parser("ndctl-test", help="run ndctl's own test suites (meson test) in a "
                                           "guest, with the harness's reports")
    add_guest_options(nt.add_argument)
    nt.add_argument("--suite", default="dax", choices=("dax", "ndctl", "cxl", "all"),
                    help="which of ndctl's suites (default: dax)")
    nt.add_argument("--ndctl-src", metavar="DIR|TARBALL", help="ndctl source: a checkout, a "
                    "release tarball, or `debian` (Debian's copy of the v81 tarball); "
                    "default: ../shared/third-party/ndctl-*.tar.gz")
    nt.add_argument("-k", dest="keyword", metavar="EXPR", help="select tests (pytest -k), "
                    "e.g. -k 'dax-ext4 or mmap'")
    nt.add_argument("--results", metavar="DIR", help="results directory "
                                                      "(default: results/<run-id>)")

    mx = sub.add_parser("matrix", help="the suite on several kernels, one report with the "
                                       "kernels side by side")
    mx.add_argument("--kernels", metavar="LIST", help="comma-separated: default (the image's "
                    "Debian kernel), a suite or package (trixie, SUITE/PKG, FILE.deb), "
                    "tree:DIR, kernel:BZIMAGE; the first is the baseline")
    mx.add_argument("--from", dest="from_dirs", metavar="RESULTS_DIR", nargs="+",
                    help="no runs: the report of these results directories (CI jobs)")
    mx.add_argument("--results", metavar="DIR", help="the matrix directory: one results "
                    "directory per kernel (reused when complete) and matrix.md/.html/.json "
                    "(default: results/matrix-<run-id>)")
    mx.add_argument("-k", dest="keyword", metavar="EXPR", help="select tests (pytest -k)")
    mx.add_argument("--profile", help="machine profile for every kernel")
    mx.add_argument("--jobs", metavar="N", default="1", help="guests per run (as for run)")

    boot = sub.add_parser("boot", help="boot a guest, print how to ssh in, wait for Ctrl-C")
    add_guest_options(boot.add_argument)
    shell = sub.add_parser("shell", help="boot a guest and open an interactive shell in it")
    add_guest_options(shell.add_argument)
    for p in (boot, shell):
        p.add_argument("--results", metavar="DIR", help="where the console log is kept "
                                                        "(default: results/<boot|shell>-<id>)")
    qcmd = sub.add_parser("qemu-cmd", help="print the exact QEMU command line; boots nothing")
    add_guest_options(qcmd.add_argument)

    image = sub.add_parser("image", help="guest images")
    image_sub = image.add_subparsers(dest="image_command", required=True,
                                     parser_class=OneLineParser)
    ib = image_sub.add_parser("build", help="build (or reuse) the guest image")
    ib.add_argument("--recipe")
    ib.add_argument("--force", action="store_true", help="rebuild even if cached")

    kernel = sub.add_parser("kernel", help="the developer's kernel")
    kernel_sub = kernel.add_subparsers(dest="kernel_command", required=True,
                                       parser_class=OneLineParser)
    kb = kernel_sub.add_parser("build", help="apply a series to a tree, configure, build")
    kb.add_argument("--tree", required=True, help="kernel source tree (never modified)")
    add_guest_options(kb.add_argument, SERIES_FLAGS)
    kb.add_argument("--out", metavar="DIR", help="also copy bzImage, vmlinux, config here")

    scan = sub.add_parser("scan", help="find crashes and warnings in a kernel console log")
    scan.add_argument("logfile")
    scan.add_argument("--json", action="store_true")
    scan.add_argument("--vmlinux", metavar="FILE", help="the log's vmlinux, with DWARF "
                      "(the harness's own builds have it): call traces get file:line")
    scan.add_argument("--modules", metavar="DIR", help="where the log's .ko files are "
                      "(with --vmlinux)")

    compare = sub.add_parser("compare", help="what changed between two runs "
                                             "(baseline vs patched)")
    compare.add_argument("baseline", metavar="BASELINE", help="results directory of the "
                                                              "baseline run")
    compare.add_argument("patched", metavar="PATCHED", help="results directory of the "
                                                            "patched run")
    compare.add_argument("--html", metavar="FILE", help="also write the comparison as a "
                                                        "self-contained HTML page")

    merge = sub.add_parser("merge", help="join results directories (shards) into one run")
    merge.add_argument("inputs", metavar="RESULTS_DIR", nargs="+",
                       help="results directories, e.g. one per --shard")
    merge.add_argument("--out", metavar="DIR", help="the merged results directory "
                                                    "(default: results/<run-id>)")

    report = sub.add_parser("report", help="rewrite report.html and summary.md from summary.json")
    report.add_argument("results_dir")

    sub.add_parser("doctor", help="check the host: QEMU, KVM, image tools, disk, cache")

    cache_p = sub.add_parser("cache", help="list the cache (images, kernels, build trees) "
                                           "or prune what was not used lately")
    cache_sub = cache_p.add_subparsers(dest="cache_command", parser_class=OneLineParser)
    cache_sub.add_parser("list", help="every entry with its size and days unused (default)")
    prune = cache_sub.add_parser("prune", help="remove entries not used for DAYS days")
    prune.add_argument("--older-than", metavar="DAYS", required=True,
                       help="days since the entry was last used (0 removes everything)")
    prune.add_argument("--dry-run", action="store_true", help="only say what would go")
    return parser


class Terminated(KeyboardInterrupt):
    """SIGTERM, turned into an exception so `with` blocks stop their guests."""


def _raise_terminated(signum, frame):
    raise Terminated()


def _prep():
    """harness.prepare, imported by the commands that boot (it pulls in paramiko: `scan`,
    `compare` and `report` start faster without it)."""
    from . import prepare
    return prepare


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    signal.signal(signal.SIGTERM, _raise_terminated)
    handler = {
        "run": cmd_run, "ndctl-test": cmd_ndctl_test, "matrix": cmd_matrix,
        "boot": cmd_boot, "shell": cmd_shell, "qemu-cmd": cmd_qemu_cmd,
        "image": cmd_image, "kernel": cmd_kernel, "scan": cmd_scan, "compare": cmd_compare,
        "report": cmd_report, "merge": cmd_merge, "cache": cmd_cache,
        "doctor": cmd_doctor,
    }[args.command]
    try:
        return handler(args)
    except HarnessError as e:
        first, *rest = str(e).splitlines() or [""]
        print(f"nvdimm-harness: {first}", file=sys.stderr)
        if rest:
            print("\n".join(rest), file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt as e:
        print("nvdimm-harness: interrupted", file=sys.stderr)
        return EXIT_SIGTERM if isinstance(e, Terminated) else EXIT_SIGINT
    except OSError as e:
        # A missing tool or a full disk is an infrastructure failure, said in one line.
        print(f"nvdimm-harness: {e.filename or ''}: {e.strerror or e}".replace(": : ", ": "),
              file=sys.stderr)
        return EXIT_INFRA


def _options(args: argparse.Namespace) -> GuestOptions:
    return GuestOptions.from_args(args)


# -- run -------------------------------------------------------------------------------------
def cmd_run(args: argparse.Namespace) -> int:
    from .shard import parse_shard

    shard = parse_shard(args.shard) if args.shard is not None else None
    return _run_suite(_options(args), TESTCASES, [], args.keyword, args.results,
                      _jobs(args.jobs), shard)


# ndctl-test boots this profile unless --profile says otherwise (e820 + ACPI.NFIT buses).
NDCTL_PROFILE = "ndctl"
# ...and builds a --kernel-tree with this fragment: nfit_test's config, and its modules.
NFIT_FRAGMENT = "nfit"


def cmd_ndctl_test(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from .ndctl_upstream import resolve_source, select

    options = _options(args)
    if options.profile is None:
        options = replace(options, profile=NDCTL_PROFILE)
    if options.kernel_tree and NFIT_FRAGMENT not in options.configs:
        options = replace(options, configs=(NFIT_FRAGMENT, *options.configs))
    source = resolve_source(args.ndctl_src)
    select(source.tests(), args.suite)
    progress.say(f"ndctl {source.version()} from {source.path}, suite {args.suite}")
    extra = ["--ndctl-src", str(source.path), "--ndctl-suite", args.suite]
    return _run_suite(options, TESTCASES / "upstream", extra, args.keyword, args.results, 1,
                      None)


def cmd_matrix(args: argparse.Namespace) -> int:
    from . import matrix
    from .results import new_run_id

    if bool(args.kernels) == bool(args.from_dirs):
        raise UsageError("matrix: give --kernels (run the suite on each) or --from (report "
                         "existing runs), one of them")
    if args.from_dirs:
        labels, runs = matrix.load_runs([Path(d) for d in args.from_dirs])
        out = Path(args.results) if args.results else ROOT / "results" / f"matrix-{new_run_id()}"
        return _matrix_report(matrix.build_matrix(labels, runs), out)
    specs = matrix.parse_kernels(args.kernels)
    jobs = _jobs(args.jobs)
    for spec in specs:  # every column's bad input is found before the first boot
        given = dict(zip(spec.flags[::2], spec.flags[1::2], strict=True))
        _prep().validate(GuestOptions.from_flags(
            lambda flag, given=given: args.profile if flag == "--profile" else given.get(flag)))
    if args.keyword is not None:
        _check_keyword(args.keyword)
    out = Path(args.results) if args.results else ROOT / "results" / f"matrix-{new_run_id()}"
    _check_results_dir(out)
    for i, spec in enumerate(specs, 1):
        run_dir = out / spec.label
        if (run_dir / "summary.json").is_file():
            progress.say(f"matrix {i}/{len(specs)}: {spec.text}: reusing {run_dir} (remove it "
                         "to run again)")
            continue
        progress.say(f"matrix {i}/{len(specs)}: {spec.text} -> {run_dir}")
        cmd = [sys.executable, "-m", "harness.cli", "run", *spec.flags, "--results",
               str(run_dir), "--jobs", str(jobs)]
        cmd += ["--profile", args.profile] if args.profile else []
        cmd += ["-k", args.keyword] if args.keyword else []
        status = _run_pytest(cmd)
        if status in (EXIT_SIGINT, EXIT_SIGTERM):
            raise KeyboardInterrupt
        if not (run_dir / "summary.json").is_file():
            raise InfraError(f"matrix: the run on {spec.text} ended with status {status} "
                             f"and no summary.json in {run_dir}")
    labels, runs = matrix.load_runs([out / s.label for s in specs], [s.label for s in specs])
    return _matrix_report(matrix.build_matrix(labels, runs), out)


def _matrix_report(m, out: Path) -> int:
    from . import matrix

    matrix.write_reports(m, out)
    print(matrix.markdown(m).split("\n## What differs")[0].rstrip())
    print(f"\nmatrix: {out / 'matrix.html'}  ({len(m.differing())} tests differ)")
    return m.exit_code()


def _run_suite(options: GuestOptions, target: Path, extra: list[str], keyword: str | None,
               results: str | None, jobs: int, shard) -> int:
    """pytest over `target` (extra: its own options) in a child, then the results."""
    _prep().validate(options)
    results_dir = Path(results) if results else None
    _check_results_dir(results_dir or ROOT / "results")
    if results_dir and results_dir.exists() and any(results_dir.iterdir()):
        raise UsageError(f"--results: {results_dir} exists and is not empty")
    if keyword is not None:
        _check_keyword(keyword, target, extra)
    started = time.monotonic()
    config = _prep().prepare(options)
    progress.say(f"accelerator: {config.accel.accel} ({config.accel.reason})")
    if results_dir is None:
        from .results import new_run_id
        results_dir = ROOT / "results" / new_run_id()
    cmd = [sys.executable, "-m", "pytest", str(target), "-v", "-p", "no:cacheprovider",
           "--rootdir", str(ROOT), "-o", "testpaths=testcases", "--results", str(results_dir),
           # The accel is decided once here; the child must not probe again.
           "--accel", config.accel.accel, *options.to_flags(exclude=("--accel",)), *extra]
    if keyword:
        cmd += ["-k", keyword]
    if shard:
        cmd += ["--shard", str(shard)]
    if jobs > 1:
        # One guest per xdist worker; conftest.py merges the workers' results directories.
        cmd += ["-n", str(jobs)]
    status = _run_pytest(cmd)
    if status == 5 and shard and shard.total > 1:
        raise UsageError(f"--shard {shard}: no test in this shard (the selection has "
                         "fewer tests than shards, or none)")
    return _finish_run(results_dir, status, keyword, time.monotonic() - started)


# Below this, a run cannot even keep its console log and reports: say so before booting.
MIN_RESULTS_FREE = 16 << 20


def _check_results_dir(results_dir: Path) -> None:
    """A results path that cannot be a writable directory is bad input (exit 2); one on a
    full disk is found here, before any guest boots (exit 3)."""
    if results_dir.exists() and not results_dir.is_dir():
        raise UsageError(f"--results: {results_dir}: exists and is not a directory")
    parent = results_dir
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise UsageError(f"--results: {results_dir}: cannot create it ({parent} is not a "
                         "writable directory)")
    usage = shutil.disk_usage(parent)
    if usage.total == 0:
        raise UsageError(f"--results: {results_dir}: {parent} is not a disk filesystem")
    free = usage.free
    if free < MIN_RESULTS_FREE:
        raise InfraError(f"--results: {results_dir}: no space left for results "
                         f"({free >> 10} KiB free on {parent})")


def _check_keyword(keyword: str, target: Path = TESTCASES, extra: list[str] = ()) -> None:
    """Let pytest judge -k now (it collects in a second): a bad expression or one that
    selects nothing ends here with one line, before any image build or boot."""
    proc = subprocess.run([sys.executable, "-m", "pytest", str(target), "--collect-only",
                           "-q", "-p", "no:cacheprovider", "--rootdir", str(ROOT),
                           "-o", "testpaths=testcases", *extra, "-k", keyword],
                          cwd=ROOT, capture_output=True, text=True)
    if proc.returncode == 4:
        why = next((ln for ln in (proc.stderr + proc.stdout).splitlines()
                    if "expression" in ln), "")
        why = why.split(f"{keyword}: ", 1)[-1] if why else "pytest rejected it"
        raise UsageError(f"-k: {keyword!r} is not a valid expression: {why}")
    if proc.returncode == 5:
        raise UsageError(f"-k: no test matches {keyword!r}")


def _jobs(text: str) -> int:
    if not text.strip().isdigit() or int(text) < 1:
        raise UsageError(f"--jobs: {text!r} is not a whole number of guests (1 or more)")
    return int(text)


_received_signal: int | None = None


def _run_pytest(cmd: list[str]) -> int:
    """Run pytest as a child; forward SIGTERM so it can stop its guest and write results."""
    global _received_signal
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env)

    def forward(signum, _frame):
        global _received_signal
        _received_signal = signum
        if proc.poll() is None:
            proc.send_signal(signum)

    old_term = signal.signal(signal.SIGTERM, forward)
    try:
        while True:
            try:
                return proc.wait()
            except KeyboardInterrupt:
                # The terminal sent SIGINT to the whole group: pytest is stopping too.
                _received_signal = signal.SIGINT
    finally:
        signal.signal(signal.SIGTERM, old_term)
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _finish_run(results_dir: Path, pytest_status: int, keyword: str | None,
                elapsed_s: float) -> int:
    from .results import load_summary

    if pytest_status == 4 and keyword is not None:
        raise UsageError(f"-k: pytest rejected the expression {keyword!r}")
    if pytest_status == 5:
        raise UsageError(f"-k: no test matches {keyword!r}" if keyword else "no tests collected")
    if not (results_dir / "summary.json").exists():
        if _received_signal:
            return EXIT_SIGTERM if _received_signal == signal.SIGTERM else EXIT_SIGINT
        existing = results_dir if results_dir.exists() else results_dir.parent
        if existing.exists() and shutil.disk_usage(existing).free < MIN_RESULTS_FREE:
            print(f"nvdimm-harness: {results_dir}: the disk filled up during the run "
                  f"({shutil.disk_usage(existing).free >> 10} KiB free); results are "
                  "incomplete", file=sys.stderr)
            return EXIT_INFRA
        print(f"nvdimm-harness: the test run ended (pytest status {pytest_status}) "
              "without writing results", file=sys.stderr)
        return EXIT_INFRA
    run = load_summary(results_dir)
    print()
    print((results_dir / "summary.md").read_text().rstrip())
    print(f"\nresults: {results_dir}  ({elapsed_s:.0f}s)")
    if _received_signal:
        return EXIT_SIGTERM if _received_signal == signal.SIGTERM else EXIT_SIGINT
    return run.exit_code()


# -- boot / shell / qemu-cmd -----------------------------------------------------------------
def _booted_guest(args: argparse.Namespace):
    """A guest for `boot`/`shell`; its console log outlives it (an oops met while poking
    around by hand is worth keeping), in results/<command>-<id>/ like a run's."""
    from .guest import Guest
    from .results import new_run_id

    results = Path(args.results) if args.results else \
        ROOT / "results" / f"{args.command}-{new_run_id()}"
    _check_results_dir(results)
    config = _prep().prepare(_options(args))
    progress.say(f"accelerator: {config.accel.accel} ({config.accel.reason})")
    return Guest(config, console_sink=results / "console.log")


def _console_saved(guest) -> None:
    if guest.console_sink and guest.console_sink.exists():
        progress.say(f"console log kept in {guest.console_sink}")


def _ssh_command(guest, known_hosts: Path) -> list[str]:
    known_hosts.write_text(f"[127.0.0.1]:{guest.ssh_port} {guest.config.image.host_public_key}\n")
    return ["ssh", "-i", str(guest.config.image.ssh_key), "-p", str(guest.ssh_port),
            "-o", f"UserKnownHostsFile={known_hosts}", "-o", "StrictHostKeyChecking=yes",
            "-o", "IdentitiesOnly=yes", "root@127.0.0.1"]


def cmd_boot(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory(prefix="nvh-boot-") as tmp:
        guest = _booted_guest(args)
        try:
            with guest:
                ssh = _ssh_command(guest, Path(tmp) / "known_hosts")
                print(f"guest up ({guest.kernel_release}); log in with:\n  {shlex.join(ssh)}")
                print(f"console log (live): {guest.files.console_log}\n"
                      "Ctrl-C stops the guest.", flush=True)
                try:
                    while guest.is_alive():
                        time.sleep(1)
                except KeyboardInterrupt as e:
                    print("\nstopping the guest")
                    return EXIT_SIGTERM if isinstance(e, Terminated) else EXIT_SIGINT
        finally:
            _console_saved(guest)
    print("the guest exited", file=sys.stderr)
    return EXIT_INFRA


def cmd_shell(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory(prefix="nvh-shell-") as tmp:
        guest = _booted_guest(args)
        try:
            with guest:
                return subprocess.call(_ssh_command(guest, Path(tmp) / "known_hosts"))
        finally:
            _console_saved(guest)


def cmd_qemu_cmd(args: argparse.Namespace) -> int:
    from .accel import cached_verdict
    from .guest import GuestConfig
    from .image import image_at
    from .qemu import GuestFiles, build_argv, free_loopback_port

    options = _options(args)
    profile = _prep().validate(options)
    recipe = load_recipe(options.recipe)
    entry = image_dir(recipe)
    # Boots nothing: show the image paths whether or not the image is built yet.
    image = image_at(entry, {"recipe": recipe.name})
    kernel = _prep().kernel_choice(options, image)
    requested = options.accel or profile.accel
    if requested == "auto":
        cached = cached_verdict(kernel.kernel)
        accel = AccelChoice("kvm" if cached and cached[0] else "tcg",
                            cached[1] if cached else "auto, not probed yet: showing TCG")
    else:
        accel = choose_accel(requested, kernel.kernel) if requested == "kvm" \
            else AccelChoice("tcg", "requested")
    config = GuestConfig(profile=profile, image=image, kernel=kernel, accel=accel)
    files = GuestFiles(Path(tempfile.gettempdir()) / "nvh-guest-XXXXXX")
    argv = build_argv(profile, config.boot_spec(), files, accel.accel, free_loopback_port())
    print(f"# accel: {accel.accel} ({accel.reason})")
    for i, d in enumerate(profile.nvdimms):
        print(f"# nvdimm{i}: region {d.region_size} bytes = backend {d.backend_size} "
              f"- label {d.label_size}, aligned to {d.align}")
    print(" \\\n  ".join(shlex.quote(a) for a in argv))
    return 0


# -- image, scan, report, doctor -------------------------------------------------------------
def cmd_image(args: argparse.Namespace) -> int:
    image = ensure_image(load_recipe(args.recipe), force=args.force)
    m = image.manifest
    print(f"image: {image.directory}\nkernel: {image.kernel_release}\n"
          f"built: {m.get('built')} in {m.get('build_s')}s")
    return 0


def cmd_kernel(args: argparse.Namespace) -> int:
    from .kernel import DEFAULT_FRAGMENTS, build_kernel

    fragments = ["nvdimm", *args.config] if args.config else list(DEFAULT_FRAGMENTS)
    built = build_kernel(Path(args.tree), args.patches, fragments,
                         Path(args.out) if args.out else None)
    print(f"kernel: {built.release}\nbzImage: {built.bzimage}\n"
          f"boot image: {built.boot_image}\nconfig hash: {built.config_hash}")
    for subject in built.patches:
        print(f"  applied: {subject}")
    if built.modules_image:
        print(f"modules disk: {built.modules_image}")
    if args.out and (Path(args.out) / "modules").is_dir():
        print(f"modules: {Path(args.out) / 'modules'} (pass as --modules with --kernel)")
    return 0


def cmd_scan(args: argparse.Namespace) -> int:
    from . import kmsg

    path = Path(args.logfile)
    try:
        text = path.read_text(errors="replace")
    except OSError as e:
        raise UsageError(f"{path}: {e.strerror}") from None
    findings = kmsg.scan_kernel_log(text)
    symbolizer = _scan_symbolizer(args)
    records = []
    for f in findings:
        record = f.to_json()
        if symbolizer:
            loc = symbolize.finding_location(symbolizer, f.title, f.text)
            record["location"] = str(loc) if loc else None
        records.append(record)
    if args.json:
        print(json.dumps({"findings": records}, indent=2))
    else:
        for f, record in zip(findings, records, strict=True):
            where = f" ({record['location']})" if record.get("location") else ""
            print(f"{path}:{f.line}: {f.kind}: {f.title}{where}")
            if symbolizer:
                print("    " + symbolizer.annotate(f.text).rstrip().replace("\n", "\n    "))
        if not findings:
            print(f"{path}: no kernel problems found")
    return 1 if findings else 0


def _scan_symbolizer(args: argparse.Namespace):
    if not args.vmlinux:
        if args.modules:
            raise UsageError("scan: --modules needs --vmlinux")
        return None
    vmlinux = Path(args.vmlinux)
    if not vmlinux.is_file():
        raise UsageError(f"--vmlinux: {vmlinux}: no such file")
    if args.modules and not Path(args.modules).is_dir():
        raise UsageError(f"--modules: {args.modules}: no such directory")
    symbolizer = symbolize.for_kernel(vmlinux, Path(args.modules) if args.modules else None)
    if symbolizer is None:
        raise UsageError(f"--vmlinux: {vmlinux}: no DWARF line tables (build with "
                         "the harness's own builds have them) or binutils missing")
    return symbolizer


def cmd_compare(args: argparse.Namespace) -> int:
    from .compare import compare_dirs, markdown, report_html

    comp = compare_dirs(Path(args.baseline), Path(args.patched))
    if args.html:
        out = Path(args.html)
        tmp = out.with_name(f".{out.name}.tmp{os.getpid()}")
        try:
            tmp.write_text(report_html(comp))
            os.replace(tmp, out)
        except OSError as e:
            tmp.unlink(missing_ok=True)
            raise UsageError(f"--html: {out}: {e.strerror}") from None
    print(markdown(comp), end="")
    if args.html:
        # stderr: stdout stays pure markdown for a cover letter or a CI comment.
        print(f"html: {args.html}", file=sys.stderr)
    return comp.exit_code()


def cmd_report(args: argparse.Namespace) -> int:
    from .results import load_summary, write_reports

    d = Path(args.results_dir)
    if not (d / "summary.json").is_file():
        raise UsageError(f"{d}: no summary.json (not a results directory)")
    write_reports(load_summary(d), d)
    print(f"rewrote {d / 'report.html'} and {d / 'summary.md'}")
    return 0


def cmd_merge(args: argparse.Namespace) -> int:
    from .merge import load_sources, merge_dirs
    from .results import new_run_id

    sources = load_sources([Path(d) for d in args.inputs])
    run_id = new_run_id()
    out = Path(args.out) if args.out else ROOT / "results" / run_id
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UsageError(f"--out: {out} exists and is not empty")
    run, warnings = merge_dirs(sources, out, run_id)
    for w in warnings:
        print(f"nvdimm-harness: warning: {w}", file=sys.stderr)
    print((out / "summary.md").read_text().rstrip())
    print(f"\nresults: {out}  (merged from {len(sources)} directories)")
    # The merged run's verdict, so a CI job can gate on this step alone.
    return run.exit_code()


def cmd_cache(args: argparse.Namespace) -> int:
    from . import cache, cache_admin

    root = cache.cache_root()
    if args.cache_command != "prune":
        print(f"cache: {root}")
        print(cache_admin.listing(cache_admin.entries(root)))
        return 0
    try:
        days = float(args.older_than)
    except ValueError:
        days = -1.0
    if not days >= 0:  # also NaN
        raise UsageError(f"--older-than: {args.older_than!r} is not a number of days (>= 0)")
    removed, busy = cache_admin.prune(days, dry_run=args.dry_run, root=root)
    verb = "would remove" if args.dry_run else "removed"
    for e in removed:
        print(f"{verb} {e.kind} {e.path} ({cache_admin.human(e.size)})")
    for e in busy:
        print(f"kept {e.kind} {e.path}: a build is using it")
    total = cache_admin.human(sum(e.size for e in removed))
    print(f"{verb} {len(removed)} entries ({total}) unused for {days:g}+ days")
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    from . import cache
    from .accel import kvm_works
    from .qemu import QEMU_BINARY, qemu_version

    ok = True

    def line(name: str, good: bool, text: str) -> None:
        nonlocal ok
        ok &= good
        print(f"{'ok ' if good else 'BAD'} {name:12} {text}")

    qemu = shutil.which(QEMU_BINARY)
    line("qemu", bool(qemu), f"{qemu} {qemu_version()}" if qemu else f"{QEMU_BINARY} missing")
    for tool in ("mmdebstrap", "mkfs.ext4", "ssh-keygen"):
        path = shutil.which(tool)
        line(tool, bool(path), path or "missing (make setup installs it)")
    line("root", os.geteuid() == 0, "yes" if os.geteuid() == 0 else
         "no: the image build needs root once")
    root = cache.cache_root()
    root.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(root).free
    line("disk", free > 8 << 30, f"{free >> 30} GiB free under {root}")
    line("cache", True, f"{root}, {cache.dir_size(root) >> 20} MiB")
    recipe = load_recipe(None)
    entry = image_dir(recipe)
    if (entry / "vmlinuz").exists():
        works, why = kvm_works(entry / "vmlinuz")
        line("kvm", True, f"{'usable' if works else 'not usable, TCG will be used'}: {why}")
        line("image", True, f"{entry.name} built")
    else:
        line("kvm", True, "not probed (needs the guest kernel: build the image first)")
        line("image", True, "not built yet (make run builds it)")
    return 0 if ok else EXIT_INFRA


if __name__ == "__main__":
    sys.exit(main())
