#!/usr/bin/env python3
"""The guest suite as avocado runnables: one avocado test per pytest test id.

    runnables.py [-k EXPR] [--out FILE] [--kind tap|exec-test] [HARNESS OPTIONS] [PATH ...]

Collects the suite with `pytest --collect-only -q` (PATH defaults to testcases/, -k selects
as everywhere else) and prints a runnables recipe, a JSON list of
`{"kind": "tap", "uri": PYTHON, "args": [pytest_tap.py, ID, OPTIONS...], "identifier": ID}`,
to stdout or to FILE. Either form runs under avocado 113:

    avocado run --max-parallel-tasks 1 suite.json                        # the file
    avocado run --resolver-run-executables \\
        --resolver-exec-arguments "-k pin" testcases/avocado/runnables.py  # or run this

Harness options (harness/guest_options.py: --profile, --kernel, --accel, --recipe,
--modules, --kernel-tree, --patches, --config; anything after `--` verbatim) are passed to
pytest for every test, relative paths made absolute. `--results` is not: each test's
results go into its avocado output directory.

`--kind exec-test` gives exec-test runnables instead (PASS/FAIL by exit status, SKIP via
the `runner.exectest.exitcodes.skip` setting in each runnable's config); they cannot say
ERROR, which is why tap is the default.

Standard library only (and harness/guest_options.py, which is too); pytest runs as a child
with the project's venv interpreter.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
# This checkout's harness, ahead of any installed one.
sys.path.insert(0, str(ROOT))
from harness.guest_options import BY_FLAG, GUEST_FLAGS, add_guest_options  # noqa: E402

WRAPPER = HERE / "pytest_tap.py"
EXIT_SKIP = 77  # pytest_tap.py's exit status for a skipped test
# conftest.py's options (the same as `nvdimm-harness run`'s), given to every test.
HARNESS_OPTIONS = tuple(f.flag for f in GUEST_FLAGS)


class UsageError(Exception):
    pass


def interpreter() -> str:
    """The project's venv Python (which has pytest and the harness), else this one."""
    venv = ROOT / ".venv" / "bin" / "python"
    return str(venv) if venv.exists() else sys.executable


def collect(paths: list[str], keyword: str | None, python: str) -> list[str]:
    cmd = [python, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
           "--rootdir", str(ROOT), "-o", "testpaths=testcases", *paths]
    if keyword:
        cmd += ["-k", keyword]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True,
                          stdin=subprocess.DEVNULL)
    if proc.returncode == 5:
        raise UsageError(f"-k: no test matches {keyword!r}" if keyword else "no tests collected")
    if proc.returncode != 0:
        tail = (proc.stdout + proc.stderr).strip().splitlines()[-5:]
        raise UsageError(f"pytest --collect-only failed ({proc.returncode}): " + " | ".join(tail))
    ids = [line.strip() for line in proc.stdout.splitlines()
           if "::" in line and not line.startswith(" ")]
    if not ids:
        raise UsageError("pytest collected no test ids")
    return ids


def absolute(path: str, cwd: Path) -> str:
    """A relative path that exists from `cwd` made absolute: pytest runs in ROOT."""
    p = Path(path).expanduser()
    if not p.is_absolute() and (cwd / p).exists():
        return str((cwd / p).resolve())
    return str(p) if p.is_absolute() else path


def harness_options(args: argparse.Namespace, cwd: Path) -> list[str]:
    out: list[str] = []
    for flag in HARNESS_OPTIONS:
        option = BY_FLAG[flag]
        value = getattr(args, option.dest)
        values = value if isinstance(value, list) else [value] if value else []
        for v in values:
            out += [flag, absolute(v, cwd) if option.path else v]
    return out + args.forwarded


def runnables(ids: list[str], options: list[str], kind: str, python: str) -> list[dict]:
    recipes = []
    for nodeid in ids:
        r: dict = {"kind": kind, "uri": python, "args": [str(WRAPPER), nodeid, *options],
                   "identifier": nodeid}
        if kind == "exec-test":
            r["config"] = {"runner.exectest.exitcodes.skip": [EXIT_SKIP]}
        recipes.append(r)
    return recipes


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="runnables.py", description=__doc__.split("\n\n")[0])
    p.add_argument("-k", dest="keyword", metavar="EXPR", help="select tests (pytest -k)")
    p.add_argument("--out", metavar="FILE", help="write the recipe here (default: stdout)")
    p.add_argument("--kind", choices=("tap", "exec-test"), default="tap",
                   help="runnable kind (default tap: it can say ERROR)")
    g = p.add_argument_group("harness options, passed to pytest for every test")
    add_guest_options(g.add_argument, HARNESS_OPTIONS)
    p.add_argument("paths", nargs="*", metavar="PATH",
                   help="test files or directories (default: testcases/)")
    if "--" in argv:
        i = argv.index("--")
        argv, forwarded = argv[:i], argv[i + 1:]
    else:
        forwarded = []
    args = p.parse_args(argv)
    if any(o == "--results" or o.startswith("--results=") for o in forwarded):
        raise UsageError("--results: not with avocado (each test's results go into its "
                         "avocado output directory)")
    args.forwarded = forwarded
    args.paths = args.paths or ["testcases"]
    return args


def main(argv: list[str]) -> int:
    try:
        args = parse_args(argv)
        cwd = Path.cwd()
        paths = []
        for path in args.paths:  # a file, a directory, or a test id (FILE::NAME)
            file, sep, name = path.partition("::")
            for base in (cwd, ROOT):
                if (base / file).exists():
                    paths.append(str((base / file).resolve()) + sep + name)
                    break
            else:
                raise UsageError(f"{file}: no such file or directory")
        python = interpreter()
        ids = collect(paths, args.keyword, python)
        recipe = runnables(ids, harness_options(args, cwd), args.kind, python)
    except UsageError as e:
        print(f"runnables.py: {e}", file=sys.stderr)
        return 2
    text = json.dumps(recipe, indent=1) + "\n"
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(out.name + f".tmp{os.getpid()}")
        tmp.write_text(text)
        tmp.replace(out)
        print(f"{len(recipe)} tests -> {out}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
