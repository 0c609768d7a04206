"""Kernel config fragments: parse them, check they survived ``olddefconfig``, say why not.

Modelled on kunit_tool's ``kunit_config.py``: a fragment is a set of options, and the question
asked after ``make olddefconfig`` is "is my fragment a subset of the resulting .config?".
Kconfig silently drops an option whose dependencies are not met, so a fragment that asks for
``CONFIG_GUP_TEST=y`` without ``CONFIG_DEBUG_FS`` gives a kernel without GUP_TEST and a test
run that fails an hour later for a reason nobody sees. The harness checks right after
configuring and, for each dropped option, reads the tree's Kconfig files to name what it
depends on::

    CONFIG_GUP_TEST=y requested, got n (depends on DEBUG_FS [=n])

Option names are kept without the ``CONFIG_`` prefix (``{"GUP_TEST": "y"}``), values as
written in the file (``y``, ``m``, ``n``, ``"quoted string"``, ``123``, ``0x1000``);
``# CONFIG_X is not set`` reads as ``n``.

The Kconfig reader is a best-effort model of the language (``config``/``menuconfig``
entries, ``depends on``, ``select``, prompts, enclosing ``if``/``menu``/``choice`` blocks,
``source`` nesting), enough to explain a dropped option; it never decides anything
itself: ``scripts/kconfig`` stays the authority on what the .config is.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .errors import UsageError

__all__ = [
    "FRAGMENT_DIR",
    "ConfigParseError",
    "Fragment",
    "KconfigSymbol",
    "UnmetOption",
    "config_hash",
    "explain_unmet",
    "fragment_check_message",
    "fragment_names",
    "kconfig_symbol",
    "load_fragment",
    "merged_options",
    "parse_config",
    "unmet",
]

# guest-images/kernel/<name>.config: the fragments shipped with the harness.
FRAGMENT_DIR = Path(__file__).resolve().parents[1] / "guest-images" / "kernel"

_ASSIGN = re.compile(r"CONFIG_(?P<name>[A-Za-z0-9_]+)=(?P<value>.*)")
_NOT_SET = re.compile(r"# CONFIG_(?P<name>[A-Za-z0-9_]+) is not set")
# A value: a double-quoted string (backslash escapes) or one word (y, m, n, 123, 0x1f, ...).
_VALUE = re.compile(r'"(?:[^"\\]|\\.)*"|[^\s"#]+')
# A bare fragment name (``--config debug``), as opposed to a path.
_FRAGMENT_NAME = re.compile(r"[A-Za-z0-9_-]+")


class ConfigParseError(ValueError):
    """A line of a .config or fragment that is neither an option, a comment nor blank."""

    def __init__(self, lineno: int, line: str):
        super().__init__(f"line {lineno}: not a Kconfig assignment: {line!r}")
        self.lineno = lineno
        self.line = line


def _config_lines(text: str) -> Iterator[tuple[int, str, str | None, str | None]]:
    """(lineno, line, name, value) per non-blank line; name None for comments and junk."""
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line:
            continue
        if m := _NOT_SET.fullmatch(line):
            yield lineno, line, m["name"], "n"
        elif (m := _ASSIGN.fullmatch(line)) and _VALUE.fullmatch(m["value"]):
            yield lineno, line, m["name"], m["value"]
        else:
            yield lineno, line, None, None


def parse_config(text: str) -> dict[str, str]:
    """Options of a .config or a fragment, in file order; a later line for a name wins.

    ``CONFIG_X=y|m|n|"str"|123|0x1f`` and ``# CONFIG_X is not set`` (read as ``n``) count;
    other ``#`` lines are comments. Anything else raises :class:`ConfigParseError` (Kconfig
    itself would warn and ignore it, which is how typos in fragments go unnoticed).
    """
    options: dict[str, str] = {}
    for lineno, line, name, value in _config_lines(text):
        if name is not None and value is not None:
            options.pop(name, None)  # re-insert: the order is that of the winning line
            options[name] = value
        elif not line.startswith("#"):
            raise ConfigParseError(lineno, line)
    return options


def format_option(name: str, value: str) -> str:
    """The .config line for an option: ``CONFIG_X=y`` or ``# CONFIG_X is not set``."""
    return f"# CONFIG_{name} is not set" if value == "n" else f"CONFIG_{name}={value}"


# -- fragments ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Fragment:
    """A config fragment file and the options it forces."""

    path: Path
    options: dict[str, str] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.path.name.removesuffix(".config")


# Options that change how every object is compiled (compiler instrumentation): builds with
# and without them share no objects.
INSTRUMENTING = ("KASAN", "UBSAN", "KCSAN", "KMSAN", "KCOV", "GCOV_KERNEL")


# Options that headers nearly every object includes depend on (linux/mm.h, linux/suspend.h,
# linux/key.h, asm/mce.h): measured on 6.1, switching the nfit fragment's set in one build
# directory recompiled nearly the whole kernel (~17 min on 2 cores) each way.
WIDE_REBUILD = ("KEYS", "X86_MCE", "MEMORY_FAILURE", "HUGETLBFS", "HIBERNATION")


def build_flavour(fragments: Iterable[Fragment]) -> str:
    """Which build directory a configuration gets: 'instrumented' when a fragment turns on
    compiler instrumentation, else 'plain'; '+OPTS' when it turns on any WIDE_REBUILD option,
    so switching between such configurations never recompiles the other's objects."""
    on = {k for f in fragments for k, v in f.options.items() if v in ("y", "m")}
    flavour = "instrumented" if on & set(INSTRUMENTING) else "plain"
    wide = sorted(on & set(WIDE_REBUILD))
    return f"{flavour}+{','.join(wide)}" if wide else flavour


def fragment_names(directory: Path = FRAGMENT_DIR) -> list[str]:
    """Names of the shipped fragments (``nvdimm``, ``debug``, ...)."""
    return sorted(p.name.removesuffix(".config") for p in directory.glob("*.config"))


def load_fragment(path_or_name: str | Path, directory: Path = FRAGMENT_DIR) -> Fragment:
    """A fragment by path, or by name: ``debug`` is ``guest-images/kernel/debug.config``.

    A bare word (letters, digits, ``-``, ``_``; no ``/`` and no ``.``) is a name, anything
    else a path. A missing file, a line that is not an option, or a file with no options at
    all is a :class:`UsageError` with one line naming the file.
    """
    spec = str(path_or_name)
    is_name = not isinstance(path_or_name, Path) and _FRAGMENT_NAME.fullmatch(spec) is not None
    path = directory / f"{spec}.config" if is_name else Path(spec).expanduser()
    if not path.is_file():
        known = ", ".join(fragment_names(directory)) or "none"
        hint = f" (shipped fragments: {known})" if is_name else ""
        raise UsageError(f"kernel config fragment {path}: no such file{hint}")
    try:
        options = parse_config(path.read_text(encoding="utf-8"))
    except ConfigParseError as e:
        raise UsageError(f"kernel config fragment {path}:{e.lineno}: "
                         f"not a Kconfig assignment: {e.line!r}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise UsageError(f"kernel config fragment {path}: cannot read: {e}") from None
    if not options:
        raise UsageError(f"kernel config fragment {path}: no CONFIG_ options in it")
    return Fragment(path=path, options=options)


def merged_options(fragments: Iterable[Fragment]) -> dict[str, str]:
    """What merge_config.sh makes of several fragments: a later fragment's value wins.

    Check this, not each fragment on its own, when one fragment overrides another.
    """
    merged: dict[str, str] = {}
    for fragment in fragments:
        for name, value in fragment.options.items():
            merged.pop(name, None)
            merged[name] = value
    return merged


# -- the subset check --------------------------------------------------------------------------


@dataclass(frozen=True)
class UnmetOption:
    """An option the fragment forces that the final .config does not have as asked."""

    option: str  # without CONFIG_
    wanted: str
    got: str  # "n" when the .config does not mention it

    def __str__(self) -> str:
        return f"CONFIG_{self.option}={self.wanted} requested, got {self.got}"


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return re.sub(r"\\(.)", r"\1", value[1:-1])
    return value


def _as_number(value: str) -> int | None:
    try:
        return int(value, 0)
    except ValueError:
        try:  # a hex symbol written without 0x (Kconfig accepts it)
            return int(value, 16) if re.fullmatch(r"[0-9a-fA-F]+", value) else None
        except ValueError:
            return None


def _same_value(wanted: str, got: str) -> bool:
    if wanted == got:
        return True
    a, b = _unquote(wanted), _unquote(got)
    if a == b:
        return True
    na, nb = _as_number(a), _as_number(b)
    return na is not None and na == nb


def unmet(fragment_options: Mapping[str, str],
          final_config: Mapping[str, str]) -> list[UnmetOption]:
    """The fragment's options that the final .config does not have as asked, in fragment order.

    ``n`` is met by ``n`` or by absence (Kconfig does not write invisible symbols that are
    off). ``m`` is not met by ``y``, nor ``y`` by ``m``: the fragment says what it wants.
    Numbers compare by value (``0x10`` is ``16``), strings with or without quotes.
    """
    missing = []
    for name, wanted in fragment_options.items():
        got = final_config.get(name, "n")
        if not _same_value(wanted, got):
            missing.append(UnmetOption(name, wanted, got))
    return missing


# -- the build-cache hash ----------------------------------------------------------------------

# Kconfig fills these in from the toolchain it probes; the compiler is a cache key of its own,
# and a .config written by another compiler version must not look like another configuration.
_TOOLCHAIN_PROBED = re.compile(
    r"CC_VERSION_TEXT|(?:CC|GCC|CLANG|AS|LD|LLD|RUSTC|BINDGEN|PAHOLE)_VERSION"
    r"|(?:CC|AS|LD)_(?:IS|HAS|CAN)_\w+")


def config_hash(text_parts: str | Iterable[str]) -> str:
    """A stable sha256 (hex) of the configuration that the parts describe.

    The parts (a base .config, then fragments) are merged like merge_config.sh does, a later
    value winning, and the result is hashed as sorted ``CONFIG_X=v`` lines: comments, order
    and duplicates do not matter, values do. Toolchain-probed symbols (``CC_VERSION_TEXT``,
    ``GCC_VERSION``, ``CC_HAS_*``, ...) are left out. A part's lines that are not options at
    all (e.g. a base given as the word ``tinyconfig``) are hashed verbatim, in order.
    """
    parts = [text_parts] if isinstance(text_parts, str) else list(text_parts)
    options: dict[str, str] = {}
    other: list[str] = []
    for part in parts:
        for _lineno, line, name, value in _config_lines(part):
            if name is not None and value is not None:
                if not _TOOLCHAIN_PROBED.fullmatch(name):
                    options[name] = value
            elif not line.startswith("#"):
                other.append(line)
    digest = hashlib.sha256()
    for line in [*other, "--", *sorted(format_option(k, v) for k, v in options.items())]:
        digest.update(line.encode() + b"\n")
    return digest.hexdigest()


# -- reading Kconfig ---------------------------------------------------------------------------


@dataclass
class KconfigSymbol:
    """What the tree's Kconfig files say about one symbol (all its definitions merged)."""

    name: str
    locations: list[str] = field(default_factory=list)  # "mm/Kconfig:1052"
    has_prompt: bool = False
    depends: list[str] = field(default_factory=list)  # "depends on" expressions, own lines
    prompt_if: list[str] = field(default_factory=list)  # bool "..." if EXPR
    enclosing: list[tuple[str, str]] = field(default_factory=list)  # ("if", EXPR), ("menu", EXPR)
    selected_by: list[tuple[str, str]] = field(default_factory=list)  # (SYMBOL, EXPR or "")


@dataclass
class _Block:
    kind: str  # "if", "menu", "choice"
    conditions: list[str] = field(default_factory=list)


@dataclass
class _KconfigFile:
    symbols: dict[str, KconfigSymbol] = field(default_factory=dict)
    # symbol -> [(selector, condition)] from the select lines in this file
    selects: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    # (sourced path, enclosing conditions at the source line)
    sources: list[tuple[str, list[tuple[str, str]]]] = field(default_factory=list)


_TYPES = ("bool", "tristate", "string", "int", "hex", "def_bool", "def_tristate", "prompt")
_PROMPT = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'')


def _strip_comment(line: str) -> str:
    quote = ""
    for i, ch in enumerate(line):
        if quote:
            if ch == quote and line[i - 1] != "\\":
                quote = ""
        elif ch in "\"'":
            quote = ch
        elif ch == "#":
            return line[:i]
    return line


def _logical_lines(text: str) -> Iterator[tuple[int, str, int]]:
    """(lineno, line, indent) with backslash continuations joined; help text skipped.

    Help text is what scripts/kconfig/lexer.l says: its first non-blank line sets the
    indentation (which may equal the ``help`` keyword's), and the text ends at the first
    non-blank line indented less than that, or not at all.
    """
    lines = text.splitlines()
    i = 0
    in_help = False
    text_indent: int | None = None  # the help text's indentation, once its first line is seen
    while i < len(lines):
        lineno, line = i + 1, lines[i]
        i += 1
        expanded = line.expandtabs(8)
        indent = len(expanded) - len(expanded.lstrip())
        if in_help:
            if not expanded.strip():
                continue
            if text_indent is None and indent > 0:
                text_indent = indent
            if text_indent is not None and indent >= text_indent:
                continue
            in_help, text_indent = False, None
        while line.endswith("\\") and i < len(lines):
            line = line[:-1] + " " + lines[i].strip()
            i += 1
        stripped = " ".join(_strip_comment(line).split())
        if not stripped:
            continue
        if stripped in ("help", "---help---"):
            in_help, text_indent = True, None
            continue
        yield lineno, stripped, indent


def _parse_kconfig(text: str, relpath: str) -> _KconfigFile:
    out = _KconfigFile()
    stack: list[_Block] = []
    entry: KconfigSymbol | None = None  # the config being read
    block: _Block | None = None  # a menu/choice whose header is being read
    for lineno, line, _indent in _logical_lines(text):
        word, _, rest = line.partition(" ")
        if word in ("config", "menuconfig"):
            name = rest.split()[0] if rest else ""
            entry = out.symbols.setdefault(name, KconfigSymbol(name))
            entry.locations.append(f"{relpath}:{lineno}")
            entry.enclosing.extend(c for c in _conditions(stack) if c not in entry.enclosing)
            block = None
        elif word in ("menu", "choice"):
            stack.append(_Block(word))
            entry, block = None, stack[-1]
        elif word == "if":
            stack.append(_Block("if", [rest]))
            entry = block = None
        elif word in ("endif", "endmenu", "endchoice"):
            kind = word.removeprefix("end")
            while stack and stack.pop().kind != kind:
                pass
            entry = block = None
        elif word in ("source", "rsource", "osource", "orsource"):
            m = _PROMPT.match(rest)
            target = m.group(0)[1:-1] if m else rest
            if word in ("rsource", "orsource"):
                target = os.path.normpath(os.path.join(os.path.dirname(relpath), target))
            out.sources.append((target, _conditions(stack)))
            entry = block = None
        elif word in ("comment", "mainmenu"):
            entry = block = None
        elif line.startswith("depends on"):
            expr = line.removeprefix("depends on").strip()
            if entry is not None and expr not in entry.depends:
                entry.depends.append(expr)
            elif block is not None:
                block.conditions.append(expr)
        elif line.startswith("visible if") and block is not None:
            block.conditions.append(line.removeprefix("visible if").strip())
        elif word == "select" and entry is not None:  # (imply never forces anything)
            target, _, cond = rest.partition(" if ")  # whitespace is normalised
            out.selects.setdefault(target.strip(), []).append((entry.name, cond.strip()))
        elif word in _TYPES and entry is not None:
            m = _PROMPT.match(rest)
            if m and word not in ("def_bool", "def_tristate"):
                entry.has_prompt = True
                cond = rest[m.end():].strip()
                if cond.startswith("if "):
                    entry.prompt_if.append(cond.removeprefix("if ").strip())
    return out


def _conditions(stack: list[_Block]) -> list[tuple[str, str]]:
    return [(b.kind, c) for b in stack for c in b.conditions]


@dataclass
class _KconfigIndex:
    symbols: dict[str, KconfigSymbol]


def _kconfig_files(tree: Path) -> Iterator[Path]:
    for dirpath, dirnames, filenames in os.walk(tree):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        for name in filenames:
            if name.startswith("Kconfig"):
                yield Path(dirpath, name)


@functools.lru_cache(maxsize=4)
def _index(tree: Path, arch: str) -> _KconfigIndex:
    """Every Kconfig* file of the tree, parsed once per (tree, arch) and process."""
    files: dict[str, _KconfigFile] = {}
    for path in _kconfig_files(tree):
        rel = path.relative_to(tree).as_posix()
        try:
            files[rel] = _parse_kconfig(path.read_text(encoding="utf-8", errors="replace"), rel)
        except OSError:
            continue

    # Conditions a file inherits from where it is sourced (``if INFINIBAND`` around
    # ``source "drivers/infiniband/sw/rxe/Kconfig"``). Files reachable from the top-level
    # Kconfig for this arch are the real ones; the rest (other arches, scripts/kconfig/tests)
    # are used only for symbols defined nowhere else.
    variables = {"SRCARCH": arch, "ARCH": arch, "HEADER_ARCH": arch}
    inherited: dict[str, list[tuple[str, str]]] = {}
    todo: list[tuple[str, list[tuple[str, str]]]] = [("Kconfig", [])] if "Kconfig" in files else []
    while todo:
        rel, conds = todo.pop()
        if rel in inherited or rel not in files:
            continue
        inherited[rel] = conds
        for target, local in files[rel].sources:
            target = re.sub(r"\$\((\w+)\)", lambda m: variables.get(m[1], m[0]), target)
            todo.append((os.path.normpath(target), conds + local))

    symbols: dict[str, KconfigSymbol] = {}
    ordered = sorted(files, key=lambda rel: (rel not in inherited, rel))
    for rel in ordered:
        kfile = files[rel]
        reachable = rel in inherited
        for name, sym in kfile.symbols.items():
            have = symbols.get(name)
            if have is not None and not reachable and have.locations:
                continue  # defined in a real file already
            target = symbols.setdefault(name, KconfigSymbol(name))
            target.locations += sym.locations
            target.has_prompt |= sym.has_prompt
            for lst_name in ("depends", "prompt_if"):
                lst = getattr(target, lst_name)
                lst.extend(x for x in getattr(sym, lst_name) if x not in lst)
            for cond in [*inherited.get(rel, []), *sym.enclosing]:
                if cond not in target.enclosing:
                    target.enclosing.append(cond)
        if reachable:
            for name, selectors in kfile.selects.items():
                target = symbols.setdefault(name, KconfigSymbol(name))
                target.selected_by.extend(s for s in selectors if s not in target.selected_by)
    return _KconfigIndex(symbols)


def kconfig_symbol(tree: Path, option: str, arch: str = "x86") -> KconfigSymbol | None:
    """What the tree's Kconfig files say about ``option`` (with or without CONFIG_)."""
    sym = _index(Path(tree).resolve(), arch).symbols.get(option.removeprefix("CONFIG_"))
    return sym if sym is not None and sym.locations else None


# -- Kconfig expressions, evaluated against a .config --------------------------------------------

_TOKEN = re.compile(r'\s*(\|\||&&|!=|<=|>=|[=<>!()]|"(?:[^"\\]|\\.)*"|\$\([^)]*\)|[A-Za-z0-9_.-]+)')
_LEVEL = {"n": 0, "m": 1, "y": 2}


def _tokens(expr: str) -> list[str] | None:
    tokens, pos = [], 0
    while pos < len(expr.rstrip()):
        m = _TOKEN.match(expr, pos)
        if not m:
            return None
        tokens.append(m.group(1))
        pos = m.end()
    return tokens


def _evaluate(expr: str, config: Mapping[str, str]) -> int | None:
    """The tristate value (0 n, 1 m, 2 y) of a Kconfig expression; None if unknowable."""
    tokens = _tokens(expr)
    if not tokens:
        return None
    pos = 0

    def value(tok: str) -> str | None:
        if "$(" in tok:  # a Kconfig macro ("$(ARCH)"): known only to scripts/kconfig
            return None
        if tok.startswith('"'):
            return _unquote(tok)
        if tok in _LEVEL:
            return tok
        if re.fullmatch(r"[A-Z0-9_]+", tok) and not tok.isdigit():
            return _unquote(config.get(tok, "n"))
        return tok  # a constant: number, lowercase word

    def level(v: str | None) -> int | None:
        return None if v is None else _LEVEL.get(v, 0)

    def atom() -> tuple[int | None, str | None]:
        nonlocal pos
        tok = tokens[pos]  # IndexError at a premature end: not an expression
        pos += 1
        if tok == "(":
            result = disjunction()
            if tokens[pos] != ")":
                raise ValueError(expr)
            pos += 1
            return result, None
        if tok in ("&&", "||", ")", "=", "!=", "<", ">", "<=", ">="):
            raise ValueError(expr)
        if tok == "!":
            v, _ = atom()
            return (None if v is None else 2 - v), None
        raw = value(tok)
        if pos < len(tokens) and tokens[pos] in ("=", "!=", "<", ">", "<=", ">="):
            op = tokens[pos]
            other = value(tokens[pos + 1]) if pos + 1 < len(tokens) else None
            pos += 2
            if raw is None or other is None:
                return None, None
            a, b = _as_number(raw), _as_number(other)
            left, right = (a, b) if a is not None and b is not None else (raw, other)
            ok = {"=": left == right, "!=": left != right, "<": left < right,
                  ">": left > right, "<=": left <= right, ">=": left >= right}[op]
            return (2 if ok else 0), None
        return level(raw), raw

    def conjunction() -> int | None:
        nonlocal pos
        result, _ = atom()
        while pos < len(tokens) and tokens[pos] == "&&":
            pos += 1
            other, _ = atom()
            result = _combine(result, other, min)
        return result

    def disjunction() -> int | None:
        nonlocal pos
        result = conjunction()
        while pos < len(tokens) and tokens[pos] == "||":
            pos += 1
            result = _combine(result, conjunction(), max)
        return result

    try:
        result = disjunction()
    except (IndexError, TypeError, ValueError):
        return None
    return result if pos == len(tokens) else None


def _combine(a: int | None, b: int | None, op) -> int | None:
    if a is None or b is None:
        # n && unknown is n; y || unknown is y; otherwise unknown
        known = a if b is None else b
        if known is not None and ((op is min and known == 0) or (op is max and known == 2)):
            return known
        return None
    return op(a, b)


def _annotate(expr: str, config: Mapping[str, str]) -> str:
    """menuconfig style: ``INET [=y] && INFINIBAND [=n]``."""
    def repl(m: re.Match[str]) -> str:
        name = m.group(0)
        if name in _LEVEL or name.isdigit():
            return name
        return f"{name} [={_unquote(config.get(name, 'n'))}]"

    parts = re.split(r'("(?:[^"\\]|\\.)*"|\$\([^)]*\))', expr)
    return "".join(p if i % 2 else re.sub(r"\b[A-Z][A-Z0-9_]*\b", repl, p)
                   for i, p in enumerate(parts))


def explain_unmet(tree: Path, option: str, config: Mapping[str, str] | None = None,
                  wanted: str = "y", arch: str = "x86") -> str:
    """Why ``option`` may not be set: its Kconfig requirements, joined with ``; ``.

    Without ``config``: every requirement (own ``depends on`` lines, enclosing ``if`` /
    ``menu`` conditions, prompt conditions, and "selected by" for a symbol with no prompt),
    e.g. ``depends on DEBUG_FS``. With the final ``config``: only the requirements that are
    not met at the ``wanted`` level, annotated like menuconfig (``depends on DEBUG_FS [=n]``),
    or, when the option came out higher than wanted (``n`` asked, ``y`` got), the active
    ``select``s that forced it. Best effort: "" when the option is not defined in the tree.
    """
    sym = kconfig_symbol(tree, option, arch)
    if sym is None:
        return ""
    requirements = [f"depends on {d}" for d in sym.depends]
    requirements += [("inside if " if kind == "if" else f"{kind} depends on ") + expr
                     for kind, expr in sym.enclosing]
    requirements += [f"prompt if {expr}" for expr in sym.prompt_if]
    selectors = [name + (f" if {cond}" if cond else "") for name, cond in sym.selected_by]
    if config is None:
        if not sym.has_prompt:
            requirements.append("no prompt: set only by default or select"
                                + (f" (selected by {', '.join(selectors)})" if selectors else ""))
        return "; ".join(requirements)

    name = sym.name
    got = config.get(name, "n")
    if _LEVEL.get(got, -1) > _LEVEL.get(wanted, 3):
        active = [f"selected by {_annotate(sel + (f' if {cond}' if cond else ''), config)}"
                  for sel, cond in sym.selected_by
                  if _LEVEL.get(config.get(sel, "n"), 0) > 0
                  and (not cond or (_evaluate(cond, config) or 0) > 0)]
        if not active and not sym.has_prompt:
            active.append("no prompt: set only by default or select")
        return "; ".join(active)

    need = _LEVEL.get(wanted, 1) or 1  # a string or number needs the symbol visible at all
    failing = []
    exprs = [*(("depends on", d) for d in sym.depends),
             *((("inside if" if k == "if" else f"{k} depends on"), e) for k, e in sym.enclosing)]
    if sym.has_prompt and sym.prompt_if and not any(
            (_evaluate(e, config) or 0) > 0 for e in sym.prompt_if):
        exprs += [("prompt if", e) for e in sym.prompt_if]
    for label, expr in exprs:
        result = _evaluate(expr, config)
        if result is not None and result < need:
            failing.append(f"{label} {_annotate(expr, config)}")
    if failing:
        return "; ".join(failing)
    if not sym.has_prompt:
        return "no prompt: set only by default or select" + (
            f" (selected by {', '.join(selectors)})" if selectors else "")
    return "; ".join(requirements)


def fragment_check_message(unmet_list: Sequence[UnmetOption], tree: Path | None,
                           config: Mapping[str, str] | None = None, arch: str = "x86") -> str:
    """One line per unmet option, with the Kconfig reason when the tree tells it::

        CONFIG_GUP_TEST=y requested, got n (depends on DEBUG_FS [=n])

    Give the final ``config`` to keep only the requirements that fail, annotated.
    """
    lines = []
    for u in unmet_list:
        why = explain_unmet(tree, u.option, config, u.wanted, arch) if tree is not None else ""
        lines.append(f"{u} ({why})" if why else str(u))
    return "\n".join(lines)


# Checkers that make bugs visible which a plain kernel lets pass (known_failures.yaml
# `checkers`).
DEBUG_CHECKERS = ("KASAN", "KFENCE", "KCSAN", "UBSAN", "PROVE_LOCKING", "DEBUG_VM", "DEBUG_LIST")


@dataclass(frozen=True)
class DebugCost:
    """What a kernel's debug checkers cost a guest, read from its .config."""

    slowdown: float  # guest commands and boot take this many times longer
    cmdline: str  # kernel parameters the checkers need
    why: str  # for the progress line
    checkers: tuple[str, ...] = ()  # which of DEBUG_CHECKERS the kernel has

    @property
    def any(self) -> bool:
        return self.slowdown > 1 or bool(self.cmdline)


def debug_cost(config_text: str) -> DebugCost:
    """KASAN: generic inline KASAN runs "~x3" slower (lib/Kconfig.kasan); kasan_multi_shot so
    every bad access is reported, not only the first of the boot (dev-tools/kasan.rst).
    PROVE_LOCKING alone: every lock acquisition walks the lock graph, ~1.5x here."""
    options = parse_config(config_text)
    checkers = tuple(c for c in DEBUG_CHECKERS if options.get(c) == "y")
    if "KASAN" in checkers:
        return DebugCost(3.0, "kasan_multi_shot", "KASAN kernel: deadlines x3, kasan_multi_shot",
                         checkers)
    if "PROVE_LOCKING" in checkers:
        return DebugCost(1.5, "", "lockdep kernel: deadlines x1.5", checkers)
    return DebugCost(1.0, "", "", checkers)
