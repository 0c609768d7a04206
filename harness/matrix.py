"""The kernel matrix: the same suite on several kernels, one report with kernels as columns.

`nvdimm-harness matrix --kernels default,trixie,tree:~/linux` runs the suite once per kernel
(each an ordinary `run` into RESULTS/<label>/, reused when it is already there, so an
interrupted matrix resumes and CI jobs can run the kernels apart and join them with
`--from`), then writes matrix.md, matrix.html and matrix.json: per test, each kernel's
outcome, the expectation that applied on it (expectation rows carry kernel ranges, so two
kernels may be judged against different rows) and what it observed, and the change from the
first kernel (the baseline) as `compare` judges it. Pure except run_kernels()/load_runs().
"""

from __future__ import annotations

import html
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .compare import _judge, _known_title, load_run
from .errors import EXIT_INFRA, EXIT_OK, EXIT_TEST_FAILED, UsageError
from .ktap import family
from .results import RunSummary, TestRecord

_LABEL_RE = re.compile(r"[^A-Za-z0-9_.+-]+")


@dataclass(frozen=True)
class KernelSpec:
    """One column: how `run` is told to boot it, and the label of its results directory."""

    text: str
    flags: tuple[str, ...]
    label: str


def parse_kernels(text: str) -> list[KernelSpec]:
    """'default,trixie,tree:DIR,kernel:BZIMAGE,FILE.deb,SUITE/PKG' -> specs. UsageError if bad."""
    specs: list[KernelSpec] = []
    for item in (x.strip() for x in text.split(",")):
        if not item:
            raise UsageError(f"--kernels: {text!r} has an empty entry")
        kind, colon, value = item.partition(":")
        if item == "default":
            spec = KernelSpec(item, (), "default")
        elif colon and kind == "tree":
            spec = KernelSpec(item, ("--kernel-tree", value), "tree-" + _label(Path(value).name))
        elif colon and kind == "kernel":
            spec = KernelSpec(item, ("--kernel", value), "kernel-" + _label(Path(value).name))
        elif colon and kind == "package":
            spec = KernelSpec(item, ("--kernel-package", value), _label(value))
        elif colon:
            raise UsageError(f"--kernels: {item!r}: unknown kind {kind!r} (use default, a "
                             "package or suite name, package:NAME, tree:DIR or kernel:FILE)")
        else:
            spec = KernelSpec(item, ("--kernel-package", item),
                              _label(Path(item).stem if item.endswith(".deb") else item))
        if any(s.label == spec.label for s in specs):
            raise UsageError(f"--kernels: {item!r} given twice (as {spec.label!r})")
        specs.append(spec)
    if len(specs) < 2:
        raise UsageError(f"--kernels: {text!r}: a matrix needs two kernels or more")
    return specs


def _label(text: str) -> str:
    return _LABEL_RE.sub("-", text).strip("-") or "kernel"


# -- the matrix ------------------------------------------------------------------------------
@dataclass
class Cell:
    record: TestRecord | None  # None: the test did not run on this kernel

    @property
    def outcome(self) -> str:
        return self.record.outcome if self.record else "absent"

    def text(self) -> str:
        if self.record is None:
            return "absent"
        title = _known_title(self.record)
        return f"{self.outcome} ({title})" if title and self.outcome in (
            "known_failure", "fixed") else self.outcome


@dataclass
class Row:
    id: str
    cells: list[Cell]
    # Per kernel after the first: the change from the first as compare judges it, or "".
    changes: list[str] = field(default_factory=list)

    @property
    def outcome_differs(self) -> bool:
        return len({c.text() for c in self.cells}) > 1

    @property
    def observed_differs(self) -> bool:
        seen = {c.record.observed for c in self.cells if c.record}
        return len(seen) > 1

    @property
    def expected_differs(self) -> bool:
        return len({c.record.expected for c in self.cells if c.record}) > 1

    @property
    def differs(self) -> bool:
        return self.outcome_differs or self.observed_differs or self.expected_differs

    @property
    def regressed(self) -> bool:
        return any(c.startswith("regression") for c in self.changes)


@dataclass
class Matrix:
    labels: list[str]
    runs: list[RunSummary]
    rows: list[Row]

    def exit_code(self) -> int:
        if any(r.infra_error for r in self.runs):
            return EXIT_INFRA
        if any(r.verdict() == "failed" for r in self.runs) or any(r.regressed for r in self.rows):
            return EXIT_TEST_FAILED
        return EXIT_OK

    def differing(self) -> list[Row]:
        return [r for r in self.rows if r.differs]

    def to_json(self) -> dict[str, Any]:
        return {
            "kernels": [{"label": label, **_kernel_facts(run)}
                        for label, run in zip(self.labels, self.runs, strict=True)],
            "exit_code": self.exit_code(),
            "tests": [{"id": r.id, "outcomes": [c.outcome for c in r.cells],
                       "known": [_known_title(c.record) if c.record else "" for c in r.cells],
                       "expected": [c.record.expected if c.record else None for c in r.cells],
                       "observed": [c.record.observed if c.record else None for c in r.cells],
                       "changes": r.changes} for r in self.rows],
        }


def build_matrix(labels: list[str], runs: list[RunSummary]) -> Matrix:
    by_kernel = [{t.id: t for t in run.tests} for run in runs]
    ids: list[str] = []
    for run in runs:
        ids += [t.id for t in run.tests if t.id not in ids]
    rows = []
    for test_id in ids:
        cells = [Cell(k.get(test_id)) for k in by_kernel]
        changes = []
        base = cells[0].record
        for cell in cells[1:]:
            if base is None or cell.record is None:
                changes.append("" if base is cell.record else
                               ("only on this kernel" if base is None else "not run here"))
                continue
            judged = _judge(base, cell.record)
            changes.append(f"{judged[0]}{': ' + judged[1] if judged[1] else ''}" if judged
                           else ("behaviour changed" if base.observed != cell.record.observed
                                 else ""))
        rows.append(Row(test_id, cells, changes))
    return Matrix(labels, runs, rows)


def _kernel_facts(run: RunSummary) -> dict[str, Any]:
    k = run.kernel or {}
    return {"release": k.get("release"), "source": k.get("source"),
            "package": k.get("package"), "package_version": k.get("package_version"),
            "patches": k.get("patches") or [], "verdict": run.verdict(),
            "counts": {o: n for o, n in run.counts().items() if n},
            "duration_s": run.duration_s, "infra_error": run.infra_error}


def _kernel_name(label: str, run: RunSummary) -> str:
    k = run.kernel or {}
    return f"{label}: {k.get('release') or '?'} ({k.get('source') or '?'})"


# -- loading and running ---------------------------------------------------------------------
def load_runs(dirs: list[Path],
              labels: list[str] | None = None) -> tuple[list[str], list[RunSummary]]:
    runs = [load_run(d) for d in dirs]
    if labels is None:
        names = [d.name for d in dirs]
        labels = names if len(set(names)) == len(names) else [str(d) for d in dirs]
    return labels, runs


# -- reports ---------------------------------------------------------------------------------
def markdown(m: Matrix) -> str:
    out = ["# nvdimm-harness kernel matrix", ""]
    out.append("| kernel | release | source | verdict | outcomes | duration |")
    out.append("|---|---|---|---|---|---|")
    for label, run in zip(m.labels, m.runs, strict=True):
        f = _kernel_facts(run)
        src = f["source"] or "?"
        if f["package"]:
            src += f" {f['package']} {f['package_version']}"
        counts = ", ".join(f"{n} {o}" for o, n in f["counts"].items())
        verdict = f["verdict"] + (f" ({run.infra_error})" if run.infra_error else "")
        out.append(f"| {label} | `{f['release'] or '?'}` | {src} | {verdict} | {counts} | "
                   f"{run.duration_s:.0f} s |")
    differing = m.differing()
    out += ["", f"{len(m.rows)} tests; {len(differing)} differ between kernels in outcome, "
            "expectation or observed behaviour; exit status "
            f"{m.exit_code()}.", ""]
    if differing:
        out += ["## What differs", ""]
        out.append("| test | " + " | ".join(m.labels) + " | change |")
        out.append("|---|" + "---|" * len(m.labels) + "---|")
        for r in differing:
            change = "; ".join(f"{lab}: {c}" for lab, c in zip(m.labels[1:], r.changes,
                                                                strict=True) if c)
            out.append(f"| `{r.id}` | " + " | ".join(c.text() for c in r.cells)
                       + f" | {change} |")
        out += ["", "### Observed and expected, per kernel", ""]
        for r in differing:
            out.append(f"- `{r.id}`")
            for label, c in zip(m.labels, r.cells, strict=True):
                if c.record is None:
                    out.append(f"  - {label}: did not run")
                    continue
                out.append(f"  - {label}: **{c.text()}**; observed: {c.record.observed or '-'}")
                if r.expected_differs:
                    out.append(f"    expected: {c.record.expected or '-'}")
    out += ["", "## Outcomes by family", ""]
    out.append("| family | " + " | ".join(m.labels) + " |")
    out.append("|---|" + "---|" * len(m.labels))
    families: dict[str, list[dict[str, int]]] = {}
    for r in m.rows:
        per = families.setdefault(family(r.id), [{} for _ in m.labels])
        for i, c in enumerate(r.cells):
            per[i][c.outcome] = per[i].get(c.outcome, 0) + 1
    for fam, per in families.items():
        out.append(f"| {fam} | " + " | ".join(
            ", ".join(f"{n} {o}" for o, n in sorted(p.items())) for p in per) + " |")
    return "\n".join(out) + "\n"


_OUTCOME_CLASS = {"passed": "ok", "fixed": "ok", "known_failure": "known", "skipped": "skip",
                  "absent": "skip"}


def report_html(m: Matrix) -> str:
    e = html.escape
    head = "".join(f"<th>{e(_kernel_name(label, run))}</th>"
                   for label, run in zip(m.labels, m.runs, strict=True))

    def row_html(r: Row) -> str:
        cells = []
        for c in r.cells:
            cls = _OUTCOME_CLASS.get(c.outcome, "bad")
            detail = ""
            if c.record is not None:
                detail = f"<div class='dim'>{e(c.record.observed or '')}</div>"
                if r.expected_differs:
                    detail += f"<div class='exp'>expected: {e(c.record.expected or '')}</div>"
            cells.append(f"<td class='{cls}'><b>{e(c.text())}</b>{detail}</td>")
        change = "<br>".join(f"{e(lab)}: {e(c)}" for lab, c in
                             zip(m.labels[1:], r.changes, strict=True) if c)
        return f"<tr><td><code>{e(r.id)}</code></td>{''.join(cells)}<td>{change}</td></tr>"

    differing = m.differing()
    summary = "".join(
        f"<li>{e(_kernel_name(label, run))}: {e(run.verdict())}, "
        f"{e(', '.join(f'{n} {o}' for o, n in run.counts().items() if n))}, "
        f"{run.duration_s:.0f} s{e(' — ' + run.infra_error) if run.infra_error else ''}</li>"
        for label, run in zip(m.labels, m.runs, strict=True))
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>nvdimm-harness kernel matrix</title>
<style>
body {{ font-family: sans-serif; margin: 1.5em; }}
table {{ border-collapse: collapse; font-size: 90%; }}
td, th {{ border: 1px solid #ccc; padding: 3px 6px; vertical-align: top; }}
td.ok {{ background: #e6f4e6; }} td.bad {{ background: #fbe3e3; }}
td.known {{ background: #fff3d6; }} td.skip {{ background: #eee; }}
.dim {{ color: #555; font-size: 85%; }} .exp {{ color: #735; font-size: 85%; }}
</style></head><body>
<h1>Kernel matrix</h1>
<ul id="kernels">{summary}</ul>
<p id="headline">{len(m.rows)} tests; {len(differing)} differ between kernels; exit status
{m.exit_code()}.</p>
<h2>What differs</h2>
<table id="differing"><tr><th>test</th>{head}<th>change from {e(m.labels[0])}</th></tr>
{''.join(row_html(r) for r in differing)}</table>
<details><summary>All {len(m.rows)} tests</summary>
<table id="all"><tr><th>test</th>{head}<th>change</th></tr>
{''.join(row_html(r) for r in m.rows)}</table></details>
</body></html>
"""


def write_reports(m: Matrix, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "matrix.md").write_text(markdown(m))
    (out / "matrix.html").write_text(report_html(m))
    (out / "matrix.json").write_text(json.dumps(m.to_json(), indent=1) + "\n")
