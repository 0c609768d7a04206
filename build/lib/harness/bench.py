"""`make bench`: figures for the README, not pass/fail.

Image build time (cold: a fresh cache directory; warm: a cache hit), boot-to-SSH (median of
N boots), the wall time of a -k subset with --jobs 1 and --jobs 2, and of a whole default
`nvdimm-harness run`.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .guest import Guest
from .image import ensure_image, load_recipe
from .prepare import GuestOptions, prepare

ROOT = Path(__file__).resolve().parent.parent


def timed(fn) -> float:
    start = time.monotonic()
    fn()
    return time.monotonic() - start


def bench_image(cold: bool) -> dict[str, float]:
    recipe = load_recipe(None)
    figures = {"image_warm_s": timed(lambda: ensure_image(recipe))}
    if cold:
        with tempfile.TemporaryDirectory(prefix="nvh-bench-cache-", dir="/var/tmp") as tmp:
            old = os.environ.get("NVH_CACHE_DIR")
            os.environ["NVH_CACHE_DIR"] = tmp
            try:
                figures["image_cold_s"] = timed(lambda: ensure_image(recipe))
            finally:
                if old is None:
                    os.environ.pop("NVH_CACHE_DIR")
                else:
                    os.environ["NVH_CACHE_DIR"] = old
    return figures


def bench_boot(boots: int, accel: str | None) -> dict[str, float]:
    config = prepare(GuestOptions(accel=accel))
    times = []
    for _ in range(boots):
        with Guest(config) as guest:
            assert guest.boot_s is not None
            times.append(guest.boot_s)
    return {"boot_to_ssh_median_s": statistics.median(times),
            "boot_to_ssh_min_s": min(times), "boot_to_ssh_max_s": max(times),
            "boots": float(boots), "accel": config.accel.accel}  # type: ignore[dict-item]


def bench_odirect(accel: str | None, runs: int = 5, size: int = 64 << 20) -> dict[str, float]:
    """O_DIRECT throughput with the buffer in each mode: MiB/s of the key syscall alone
    (the workload times it), median of `runs`, in one guest. Figures, not pass/fail; under
    TCG they measure the emulator as much as the kernel."""
    from . import dax
    from .ndctl import Ndctl
    from .odirect import odirect_command, run_odirect
    from .qemu import SCRATCH_DISK_IN_GUEST

    figures: dict[str, float] = {}
    with Guest(prepare(GuestOptions(accel=accel))) as guest:
        ndctl = Ndctl(guest)
        for mode in dax.buffer_modes():
            with dax.buffer_in_mode(ndctl, mode) as buffer:
                for case, label in (("read-untouched", "read"), ("write-prefaulted", "write")):
                    rates = []
                    for _ in range(runs):
                        obs = run_odirect(guest, odirect_command(buffer, SCRATCH_DISK_IN_GUEST,
                                                                 case, size))
                        ns = obs.get("transfer_ns")
                        if ns and (obs.get("transfer") or {}).get("ret") == size:
                            rates.append(size / (1 << 20) / (ns / 1e9))
                    if rates:
                        figures[f"odirect_{label}_MiBps[{mode.name}]"] = statistics.median(rates)
    return figures


def bench_scan() -> dict[str, float]:
    """Kernel-log scanner throughput over the test corpus (it runs on every test's slice)."""
    from .kmsg import scan_kernel_log

    corpus = ROOT / "tests" / "data" / "kmsg"
    text = "\n".join(p.read_text() for p in sorted(corpus.glob("*.log"))) * 20
    lines = text.count("\n")
    seconds = timed(lambda: scan_kernel_log(text))
    return {"scan_lines_per_s": lines / seconds}


def bench_run(extra: list[str]) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="nvh-bench-results-") as tmp:
        cmd = [sys.executable, "-m", "harness.cli", "run", "--results", f"{tmp}/r", *extra]
        start = time.monotonic()
        status = subprocess.run(cmd, cwd=ROOT, stdout=subprocess.DEVNULL).returncode
        return {"run_s": time.monotonic() - start, "run_exit": float(status)}


# Six quick O_DIRECT cells: enough for both guests of --jobs 2 to have work after booting.
JOBS_SUBSET = "test_odirect and 4K and not unaligned and (fsdax-ext4-mem or devdax-2M-mem or anon)"


def bench_jobs(keyword: str, accel: str | None, jobs: tuple[int, ...] = (1, 2)
               ) -> dict[str, float]:
    """Suite wall time with N guests at once. Under TCG each guest wants its vCPUs: on a
    2-core host two guests mostly share the cores, so the gain is the overlap of boots and
    of waiting on I/O, not 2x."""
    figures: dict[str, float] = {}
    extra = ["--accel", accel] if accel else []
    for n in jobs:
        r = bench_run(["-k", keyword, "--jobs", str(n), *extra])
        figures[f"suite_jobs{n}_s"] = r["run_s"]
        figures[f"suite_jobs{n}_exit"] = r["run_exit"]
    return figures


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="make bench")
    p.add_argument("--no-cold", dest="cold", action="store_false",
                   help="skip the cold image build (a full build into a scratch cache)")
    p.add_argument("--boots", type=int, default=5)
    p.add_argument("--accel", default=None)
    p.add_argument("--skip-run", action="store_true")
    p.add_argument("--skip-odirect", action="store_true")
    p.add_argument("--skip-jobs", action="store_true", help="skip the --jobs 1 vs 2 figure")
    p.add_argument("--jobs-k", default=JOBS_SUBSET, metavar="EXPR",
                   help="the -k subset timed with --jobs 1 and --jobs 2")
    args = p.parse_args(argv)
    figures: dict[str, float] = bench_scan()
    figures.update(bench_image(args.cold))
    figures.update(bench_boot(args.boots, args.accel))
    if not args.skip_odirect:
        figures.update(bench_odirect(args.accel))
    if not args.skip_jobs:
        figures.update(bench_jobs(args.jobs_k, args.accel))
    if not args.skip_run:
        figures.update(bench_run(["--accel", args.accel] if args.accel else []))
    print("\nnvdimm-harness bench")
    for key, value in figures.items():
        print(f"  {key:40} {value:.1f}" if isinstance(value, float) else f"  {key:40} {value}")
    if not args.skip_jobs:
        print(f"  (suite_jobs*: nvdimm-harness run -k {args.jobs_k!r})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
