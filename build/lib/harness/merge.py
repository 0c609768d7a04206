"""Join results directories into one run: the shards of a CI matrix (`nvdimm-harness merge`)
and the per-worker directories of a `--jobs N` run (conftest.py).

merge_summaries() is pure (summaries in, one summary and warnings out); merge_dirs() moves
the files: tests/<id>/ of every input side by side, one console.log with a header per
input, then the usual summary.json, junit.xml, report.html and summary.md.

Rules, and why:
- a test id in two inputs is an error: the shards overlap (same shard twice, different
  -k), and silently keeping one of the results would hide a test's second outcome;
- inputs with different kernels, config hashes or QEMUs are kept, with a warning in the
  summary and on stderr: a CI matrix on mixed runners is legitimate, but whoever reads the
  report must know it was not one machine;
- duration_s is the longest input (the inputs ran in parallel); merge.duration_sum_s is the
  machine time they took together;
- an input's infrastructure error stays an infrastructure error of the merged run, and so
  does a missing shard (1/3 and 3/3 without 2/3): the merged run did not run the suite.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .errors import UsageError
from .results import RunSummary, write_reports
from .shard import parse_shard

# Fields that should agree between inputs: (section, key, how the warning names it).
CONSISTENT_FIELDS = (
    ("kernel", "release", "kernel release"),
    ("kernel", "config_hash", "kernel config hash"),
    ("qemu", "version", "QEMU version"),
    ("qemu", "accel", "accelerator"),
    ("profile", "name", "machine profile"),
)
CONSOLE_HEADER = "===== nvdimm-harness merge: {label} (run {run_id}{shard}) ====="


@dataclass
class Source:
    label: str       # how reports and console headers name this input (dir name, worker id)
    directory: Path
    summary: RunSummary


def load_source(directory: Path, label: str | None = None) -> Source:
    path = directory / "summary.json"
    if not path.is_file():
        raise UsageError(f"{directory}: no summary.json (not a results directory)")
    try:
        summary = RunSummary.from_json(json.loads(path.read_text()))
    except (OSError, ValueError, TypeError) as e:
        raise UsageError(f"{path}: not a readable summary: {e}") from None
    return Source(label or directory.name, directory, summary)


def load_sources(dirs: Sequence[Path]) -> list[Source]:
    """Sources labelled by directory name, or by the path as given when names repeat."""
    resolved = [d.resolve() for d in dirs]
    for i, d in enumerate(resolved):
        if d in resolved[:i]:
            raise UsageError(f"{dirs[i]}: given twice")
    names = [d.name for d in dirs]
    return [load_source(d, d.name if names.count(d.name) == 1 else str(d)) for d in dirs]


def merge_summaries(sources: Sequence[tuple[str, RunSummary]], run_id: str,
                    kind: str = "merge") -> tuple[RunSummary, list[str]]:
    """One summary for (label, summary) pairs, and the warnings to show. Pure."""
    if not sources:
        raise UsageError("merge: no results directories given")
    _check_no_duplicate_tests(sources)
    runs = [s for _, s in sources]
    warnings = _differences(sources)
    shard, shard_problem, shard_warning = _merged_shard(sources)
    if shard_warning:
        warnings.append(shard_warning)

    def first(section: str) -> dict:
        return dict(next((getattr(r, section) for r in runs if getattr(r, section)), {}))

    boot = first("boot")
    if any(r.boot for r in runs):
        boot["boots"] = sum(int(r.boot.get("boots") or 0) for r in runs)
    # The same error in several inputs (every worker interrupted) is said once.
    infra: dict[str, list[str]] = {}
    for label, s in sources:
        if s.infra_error:
            infra.setdefault(s.infra_error, []).append(label)
    if len(sources) == 1:
        infra_error = runs[0].infra_error
    else:
        infra_error = "\n".join(f"[{', '.join(labels)}] {err}" for err, labels in infra.items())
    if shard_problem:
        infra_error = "\n".join(x for x in (shard_problem, infra_error) if x)
    merged = RunSummary(
        run_id=run_id,
        started=min((r.started for r in runs if r.started), default=""),
        duration_s=max(r.duration_s for r in runs),
        host=first("host"), qemu=first("qemu"), kernel=first("kernel"), upstream=first("upstream"),
        profile=first("profile"), boot=boot,
        tests=[t for r in runs for t in r.tests],
        run_findings=[_with_source(f, label) for label, s in sources for f in s.run_findings],
        infra_error=infra_error, shard=shard,
        merge={"kind": kind,
               "duration_sum_s": round(sum(r.duration_s for r in runs), 1),
               "warnings": warnings,
               "sources": [_describe(label, s) for label, s in sources]},
    )
    return merged, warnings


def _check_no_duplicate_tests(sources: Sequence[tuple[str, RunSummary]]) -> None:
    seen: dict[str, str] = {}
    dups: list[str] = []
    for label, s in sources:
        for t in s.tests:
            if t.id in seen:
                dups.append(f"{t.id} ({seen[t.id]}, {label})")
            else:
                seen[t.id] = label
    if dups:
        more = f" and {len(dups) - 3} more" if len(dups) > 3 else ""
        raise UsageError(f"merge: {len(dups)} test id(s) in more than one input "
                         f"(overlapping shards?): {'; '.join(dups[:3])}{more}")


def _differences(sources: Sequence[tuple[str, RunSummary]]) -> list[str]:
    warnings = []
    for section, key, name in CONSISTENT_FIELDS:
        values: dict[str, list[str]] = {}
        for label, s in sources:
            value = getattr(s, section).get(key)
            if value not in (None, ""):
                values.setdefault(str(value), []).append(label)
        if len(values) > 1:
            warnings.append(f"inputs differ in {name}: " + "; ".join(
                f"{v} ({', '.join(labels)})" for v, labels in values.items()))
    return warnings


def _merged_shard(sources: Sequence[tuple[str, RunSummary]]) -> tuple[str, str, str]:
    """(merged shard, infrastructure problem, warning) from the inputs' shard fields."""
    shards = [s.shard for _, s in sources]
    if len(set(shards)) == 1:
        return shards[0], "", ""  # one run's workers, or one input
    try:
        parsed = [parse_shard(x) for x in shards]
    except UsageError:
        parsed = []
    totals = {p.total for p in parsed}
    if not parsed or len(totals) != 1:
        return ",".join(sorted(set(shards), key=str)), "", \
            "inputs mix shard settings: " + ", ".join(
                f"{label}={s.shard or 'unsharded'}" for label, s in sources)
    total = totals.pop()
    missing = sorted(set(range(1, total + 1)) - {p.index for p in parsed})
    if missing:
        have = ",".join(str(p) for p in sorted(set(parsed), key=lambda p: p.index))
        return have, ("incomplete run: shard(s) " + ", ".join(f"{k}/{total}" for k in missing)
                      + " not among the inputs"), ""
    return "", "", ""  # every shard is here: the whole suite


def _with_source(finding: dict, label: str) -> dict:
    inner = finding.get("source")
    return {**finding, "source": f"{label}: {inner}" if inner else label}


def _describe(label: str, s: RunSummary) -> dict:
    return {"label": label, "run_id": s.run_id, "shard": s.shard, "started": s.started,
            "duration_s": s.duration_s, "tests": len(s.tests), "verdict": s.verdict(),
            "hostname": s.host.get("hostname"), "kernel_release": s.kernel.get("release"),
            "config_hash": s.kernel.get("config_hash"), "qemu": s.qemu.get("version"),
            "accel": s.qemu.get("accel")}


def merge_dirs(sources: Sequence[Source], out: Path, run_id: str, *, move: bool = False,
               kind: str = "merge") -> tuple[RunSummary, list[str]]:
    """Write the merged results directory `out`. With move=True the inputs' tests/<id>/
    directories are moved instead of copied (the --jobs worker directories, which are
    removed afterwards). Nothing is written when the inputs cannot be merged."""
    summary, warnings = merge_summaries([(s.label, s.summary) for s in sources], run_id, kind)
    plan: dict[str, Path] = {}
    for s in sources:
        tests = s.directory / "tests"
        for d in sorted(tests.iterdir()) if tests.is_dir() else []:
            if d.name in plan or (out / "tests" / d.name).exists():
                raise UsageError(f"merge: tests/{d.name} exists in more than one input "
                                 f"({s.directory})")
            plan[d.name] = d
    (out / "tests").mkdir(parents=True, exist_ok=True)
    for name, d in plan.items():
        if move:
            os.replace(d, out / "tests" / name)
        else:
            shutil.copytree(d, out / "tests" / name, symlinks=True)
    _join_consoles(sources, out / "console.log")
    write_reports(summary, out)
    return summary, warnings


def _join_consoles(sources: Sequence[Source], path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(tmp, "wb") as dst:
        for s in sources:
            shard = f", shard {s.summary.shard}" if s.summary.shard else ""
            header = CONSOLE_HEADER.format(label=s.label, run_id=s.summary.run_id, shard=shard)
            dst.write(header.encode() + b"\n")
            console = s.directory / "console.log"
            if console.is_file():
                with open(console, "rb") as src:
                    shutil.copyfileobj(src, dst)
                    # The next header must start a line of its own.
                    if src.tell():
                        src.seek(-1, os.SEEK_END)
                        if src.read(1) != b"\n":
                            dst.write(b"\n")
            else:
                dst.write(b"(no console.log in this input)\n")
    os.replace(tmp, path)

