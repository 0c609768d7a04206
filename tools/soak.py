#!/usr/bin/env python3
"""`make soak`: run the suite N times in a row; are the verdicts stable, is anything leaked?

    make soak                          # the default suite, 5 times
    make soak SOAK_N=3 ARGS='-k pin'   # ARGS (after -- here) go to every `nvdimm-harness run`
    python tools/soak.py -n 5 -- -k "odirect and ext4"

For each run: its exit code, duration and outcome per test (results/soak-<stamp>/run-<i>/).
Afterwards: every test's outcome compared across the runs, and what the runs left behind:

- QEMU processes: exact, each run carries a tag in its environment and QEMU inherits it;
- files under /tmp: the runs get their own TMPDIR, /tmp/nvh-soak-<tag>/ (tempfile, QEMU's
  snapshot overlays, ssh, mmdebstrap and gcc all honour it), so what is left there is
  exactly what the runs left. New /tmp and /var/tmp entries outside it are listed too (other
  users of a shared machine, or code that ignores TMPDIR: read the names) but not counted,
  since on a shared machine they cannot be told apart by name.

Exit 0 only when every verdict was identical and nothing was left.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shlex
import subprocess
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TAG_VAR = "NVH_SOAK_TAG"
TMP_DIRS = (Path("/tmp"), Path("/var/tmp"))


def qemu_pids(tag: str | None = None) -> set[int]:
    """qemu-system processes; with `tag`, only those started by this soak."""
    pids = set()
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            cmd = (d / "cmdline").read_bytes()
            if b"qemu-system" not in cmd.split(b"\0")[0]:
                continue
            if tag and f"{TAG_VAR}={tag}".encode() not in (d / "environ").read_bytes().split(b"\0"):
                continue
        except OSError:
            continue
        pids.add(int(d.name))
    return pids


def tmp_entries() -> set[Path]:
    entries = set()
    for d in TMP_DIRS:
        with contextlib.suppress(OSError):
            entries |= set(d.iterdir())
    return entries


def outcomes(results: Path) -> dict[str, str]:
    try:
        data = json.loads((results / "summary.json").read_text())
    except (OSError, ValueError):
        return {}
    return {t["id"]: t["outcome"] for t in data.get("tests", [])}


def differences(runs: list[dict[str, str]]) -> dict[str, list[str]]:
    """Tests whose outcome was not the same in every run: id -> outcome per run ('-': the
    test has no record in that run)."""
    ids = sorted({t for run in runs for t in run})
    diff = {}
    for t in ids:
        seen = [run.get(t, "-") for run in runs]
        if len(set(seen)) > 1:
            diff[t] = seen
    return diff


def stable(runs: list[dict[str, str]], exit_codes: list[int]) -> bool:
    """Every run wrote results, with the same verdict for every test and the same exit."""
    return not differences(runs) and len(set(exit_codes)) == 1 and all(runs)


def report(runs: list[dict[str, str]], exit_codes: list[int], durations: list[float],
           qemu_left: list[int], tmp_left: list[Path], others: list[Path] = ()) -> str:
    lines = ["", f"{'run':>3}  {'exit':>4}  {'duration':>9}  outcomes"]
    for i, (run, code, dur) in enumerate(zip(runs, exit_codes, durations, strict=True), 1):
        counts: dict[str, int] = {}
        for outcome in run.values():
            counts[outcome] = counts.get(outcome, 0) + 1
        text = ", ".join(f"{n} {o}" for o, n in sorted(counts.items())) or "(no results)"
        lines.append(f"{i:>3}  {code:>4}  {dur:>8.0f}s  {text}")
    diff = differences(runs)
    n_tests = len({t for run in runs for t in run})
    same = stable(runs, exit_codes)
    lines.append("")
    lines.append(f"verdicts identical in all {len(runs)} runs: {'yes' if same else 'NO'} "
                 f"({n_tests} tests)")
    for t, seen in diff.items():
        lines.append(f"  {t}: {' / '.join(seen)}")
    if len(set(exit_codes)) > 1:
        lines.append(f"  exit codes differ: {exit_codes}")
    lines.append(f"QEMU processes left: {len(qemu_left)}"
                 + (f" (pids {sorted(qemu_left)})" if qemu_left else ""))
    lines.append(f"new entries under /tmp left (in the runs' TMPDIR): {len(tmp_left)}")
    for p in sorted(tmp_left):
        lines.append(f"  {p}")
    if others:
        lines.append(f"other new entries under /tmp, /var/tmp, outside the runs' TMPDIR "
                     f"(other users?; not counted): {len(others)}")
        for p in sorted(others):
            lines.append(f"  {p}")
    return "\n".join(lines) + "\n"


def left_behind(private_tmp: Path, before: set[Path]) -> tuple[list[Path], list[Path]]:
    """(what the runs left in their TMPDIR, other new entries under /tmp and /var/tmp)."""
    ours = sorted(private_tmp.iterdir()) if private_tmp.is_dir() else []
    others = sorted(p for p in tmp_entries() - before if p != private_tmp and p.exists())
    return ours, others


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=int(os.environ.get("SOAK_N", "5")),
                        help="number of runs (default 5, or $SOAK_N)")
    parser.add_argument("--out", type=Path, help="where the runs' results go "
                                                 "(default results/soak-<stamp>)")
    parser.add_argument("run_args", nargs=argparse.REMAINDER,
                        help="after --: arguments for every `nvdimm-harness run`")
    args = parser.parse_args(argv)
    run_args = args.run_args[1:] if args.run_args[:1] == ["--"] else args.run_args
    out = args.out or ROOT / "results" / f"soak-{time.strftime('%Y%m%d-%H%M%S')}"
    out.mkdir(parents=True, exist_ok=True)
    tag = uuid.uuid4().hex
    tmp_before = tmp_entries()
    private_tmp = Path("/tmp") / f"nvh-soak-{tag[:12]}"
    private_tmp.mkdir()
    env = {**os.environ, TAG_VAR: tag, "TMPDIR": str(private_tmp)}
    nvh = [sys.executable, "-m", "harness.cli", "run"]
    qemu_before = qemu_pids()
    runs, codes, durations = [], [], []
    for i in range(1, args.n + 1):
        results = out / f"run-{i}"
        print(f"soak: run {i}/{args.n}: nvdimm-harness run {shlex.join(run_args)} "
              f"--results {results}", flush=True)
        started = time.monotonic()
        try:
            code = subprocess.call([*nvh, *run_args, "--results", str(results)], cwd=ROOT,
                                   env=env)
        except KeyboardInterrupt:
            print("soak: interrupted", file=sys.stderr)
            with contextlib.suppress(OSError):
                private_tmp.rmdir()  # kept (and named) only if a run left something in it
            return 130
        durations.append(time.monotonic() - started)
        codes.append(code)
        runs.append(outcomes(results))
        print(f"soak: run {i}: exit {code} after {durations[-1]:.0f}s", flush=True)
    deadline = time.monotonic() + 10  # a QEMU being reaped right now is not a leak
    while qemu_pids(tag) and time.monotonic() < deadline:
        time.sleep(0.5)
    qemu_left = sorted(qemu_pids(tag))
    tmp_left, others = left_behind(private_tmp, tmp_before)
    if not tmp_left:
        private_tmp.rmdir()
    text = report(runs, codes, durations, qemu_left, tmp_left, others)
    text += (f"qemu-system processes on the machine (anyone's): before {len(qemu_before)}, "
             f"after {len(qemu_pids())}\nresults: {out}\n")
    print(text, end="")
    (out / "soak.txt").write_text(text)
    (out / "soak.json").write_text(json.dumps({
        "runs": args.n, "args": run_args, "exit_codes": codes,
        "durations_s": [round(d, 1) for d in durations], "outcomes": runs,
        "differences": differences(runs), "qemu_left": qemu_left,
        "tmp_left": [str(p) for p in tmp_left],
        "others_tmp": [str(p) for p in others]}, indent=2) + "\n")
    return 0 if stable(runs, codes) and not qemu_left and not tmp_left else 1


if __name__ == "__main__":
    sys.exit(main())
