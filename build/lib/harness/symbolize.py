"""Call-trace frames (`func+0x1a/0x90 [module]`) → source file:line, from a kernel with DWARF.

The kernel prints a frame as symbol+offset/size. With the vmlinux (and the modules' .ko files)
of the build that produced the log, and DWARF line tables in them (nvdimm.config asks for them), the
offset becomes a source line, the way scripts/faddr2line and scripts/decode_stacktrace.sh do
it: find the symbol's start, add the offset, ask binutils' addr2line.

Details that matter:
- Static functions share names across files: among same-named symbols, the one whose size is
  the frame's /size wins.
- A frame other than RIP is a return address, the instruction after the call: its line can be
  the next statement. Like debuggers, look up address - 1 to name the call site.
- Module symbols are relative to their section in the .ko (a relocatable object), so they are
  looked up with addr2line -j SECTION.
- Inlined functions: addr2line -i lists the inline chain; the innermost comes first.
"""

from __future__ import annotations

import functools
import re
import shutil
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

FRAME_RE = re.compile(
    r"(?P<rip>RIP: [0-9a-f]{4}:)?(?P<unreliable>\? )?"
    r"(?P<func>[A-Za-z_.$][\w.$]*)\+0x(?P<off>[0-9a-f]+)/0x(?P<size>[0-9a-f]+)"
    r"(?: \[(?P<module>[\w-]+)(?:\]| [^\]]*\]))?"
)
_SYMTAB_RE = re.compile(
    r"^(?P<value>[0-9a-f]+)\s+\S*\s+F\s+(?P<section>\S+)\s+(?P<size>[0-9a-f]+)\s+(?P<name>\S+)$"
)


@dataclass(frozen=True)
class Frame:
    func: str
    offset: int
    size: int
    module: str | None = None
    is_rip: bool = False

    @property
    def key(self) -> str:
        mod = f" [{self.module}]" if self.module else ""
        return f"{self.func}+{self.offset:#x}/{self.size:#x}{mod}"


@dataclass(frozen=True)
class Location:
    """Where a frame is in the source; `inlined` are the callers it was inlined into."""

    function: str
    file: str
    line: int
    inlined: tuple[tuple[str, str, int], ...] = ()

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"


def parse_frames(text: str) -> list[Frame]:
    """Every frame in a report, in order (one per match; a line may hold several)."""
    frames = []
    for m in FRAME_RE.finditer(text):
        frames.append(Frame(func=m["func"], offset=int(m["off"], 16), size=int(m["size"], 16),
                            module=(m["module"] or "").replace("-", "_") or None,
                            is_rip=bool(m["rip"])))
    return frames


@dataclass
class _Symbol:
    value: int
    size: int
    section: str


@dataclass
class _Object:
    path: Path
    relocatable: bool  # a .ko: symbol values are section offsets
    symbols: dict[str, list[_Symbol]] = field(default_factory=dict)


class Symbolizer:
    """Resolves frames against one kernel build (vmlinux + its modules directory)."""

    def __init__(self, vmlinux: Path, modules_dir: Path | None = None,
                 source_root: str | None = None):
        self.vmlinux = vmlinux
        self.modules_dir = modules_dir
        # The build's absolute source path, stripped so files read `fs/dax.c`.
        self.source_root = source_root.rstrip("/") + "/" if source_root else None
        self._objects: dict[str | None, _Object | None] = {}
        self._cache: dict[str, Location | None] = {}

    @staticmethod
    def usable(vmlinux: Path | None) -> bool:
        """A vmlinux with line tables and binutils to read them."""
        return bool(vmlinux and vmlinux.is_file() and shutil.which("addr2line")
                    and shutil.which("objdump") and has_debug_line(vmlinux))

    def locate(self, frames: Iterable[Frame]) -> dict[str, Location]:
        """frame.key -> Location for every frame that resolves; one addr2line per object."""
        wanted: dict[tuple[str | None, str], list[tuple[Frame, int]]] = {}
        out: dict[str, Location] = {}
        for frame in frames:
            if frame.key in self._cache:
                if self._cache[frame.key]:
                    out[frame.key] = self._cache[frame.key]
                continue
            self._cache[frame.key] = None
            obj = self._object(frame.module)
            sym = _pick(obj.symbols.get(frame.func, []), frame.size) if obj else None
            if sym is None:
                continue
            address = sym.value + frame.offset - (0 if frame.is_rip or frame.offset == 0 else 1)
            section = sym.section if obj.relocatable else ""
            wanted.setdefault((frame.module, section), []).append((frame, address))
        for (module, section), items in wanted.items():
            obj = self._object(module)
            assert obj is not None
            for (frame, _), loc in zip(items, self._addr2line(obj, section,
                                                              [a for _, a in items]),
                                       strict=True):
                if loc:
                    self._cache[frame.key] = out[frame.key] = loc
        return out

    def annotate(self, text: str) -> str:
        """The report with ` (file:line)` after every frame that resolves."""
        locations = self.locate(parse_frames(text))

        def add(m: re.Match[str]) -> str:
            frame = parse_frames(m.group(0))[0]
            loc = locations.get(frame.key)
            return f"{m.group(0)} ({loc})" if loc else m.group(0)

        return FRAME_RE.sub(add, text)

    # -- objects and binutils --------------------------------------------------------------
    def _object(self, module: str | None) -> _Object | None:
        if module not in self._objects:
            path = self.vmlinux if module is None else self._find_module(module)
            obj = None
            if path is not None:
                obj = _Object(path=path, relocatable=module is not None,
                              symbols=_function_symbols(path))
            self._objects[module] = obj
        return self._objects[module]

    def _find_module(self, module: str) -> Path | None:
        if not self.modules_dir or not self.modules_dir.is_dir():
            return None
        for ko in self.modules_dir.rglob("*.ko"):
            if ko.stem.replace("-", "_") == module:
                return ko
        return None

    def _addr2line(self, obj: _Object, section: str, addresses: list[int]) -> list[Location | None]:
        cmd = ["addr2line", "-e", str(obj.path), "-f", "-i", "-a"]
        if section:
            cmd += ["-j", section]
        cmd += [f"{a:#x}" for a in addresses]
        try:
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=120).stdout
        except (OSError, subprocess.TimeoutExpired):
            return [None] * len(addresses)
        return _parse_addr2line(out, len(addresses), self.source_root)


def _pick(candidates: list[_Symbol], size: int) -> _Symbol | None:
    if len(candidates) == 1:
        return candidates[0]
    exact = [s for s in candidates if s.size == size]
    # Still ambiguous: no answer is better than a line in the wrong file.
    return exact[0] if len(exact) == 1 else None


def _function_symbols(path: Path) -> dict[str, list[_Symbol]]:
    """Function symbols (objdump -t, type F) by name: value, size and section."""
    try:
        out = subprocess.run(["objdump", "-t", "-w", str(path)], capture_output=True,
                             text=True, timeout=300).stdout
    except (OSError, subprocess.TimeoutExpired):
        return {}
    table: dict[str, list[_Symbol]] = {}
    for line in out.splitlines():
        m = _SYMTAB_RE.match(line)
        if m:
            table.setdefault(m["name"], []).append(
                _Symbol(int(m["value"], 16), int(m["size"], 16), m["section"]))
    return table


def _parse_addr2line(out: str, count: int, source_root: str | None) -> list[Location | None]:
    """addr2line -f -i -a output: per address a `0x...` line, then (function, file:line)
    pairs, innermost inline first."""
    blocks: list[list[str]] = []
    for line in out.splitlines():
        if re.fullmatch(r"0x[0-9a-f]+", line.strip()):
            blocks.append([])
        elif blocks:
            blocks[-1].append(line.strip())
    results: list[Location | None] = []
    for block in blocks[:count]:
        pairs = []
        for func, where in zip(block[0::2], block[1::2], strict=False):
            file, _, line = where.rpartition(":")
            line = line.split()[0] if line else ""
            if not file or file == "??" or not line.isdigit() or line == "0":
                continue
            if source_root and file.startswith(source_root):
                file = file[len(source_root):]
            pairs.append((func, _tidy_path(file), int(line)))
        results.append(Location(pairs[0][0], pairs[0][1], pairs[0][2], tuple(pairs[1:]))
                       if pairs else None)
    return results + [None] * (count - len(results))


def _tidy_path(path: str) -> str:
    # Out-of-tree (O=) builds record paths like /cache/kernel-src/<id>/./fs/../fs/dax.c.
    parts: list[str] = []
    for part in path.split("/"):
        if part == "..":
            if parts:
                parts.pop()
        elif part not in ("", "."):
            parts.append(part)
    return ("/" if path.startswith("/") else "") + "/".join(parts)


def has_debug_line(elf: Path) -> bool:
    """True when the ELF has DWARF line tables (a .debug_line section)."""
    try:
        out = subprocess.run(["objdump", "-h", "-w", str(elf)], capture_output=True,
                             text=True, timeout=60).stdout
    except (OSError, subprocess.TimeoutExpired):
        return False
    return any(" .debug_line " in f" {line} " for line in out.splitlines())


@functools.lru_cache(maxsize=4)
def for_kernel(vmlinux: Path | None, modules_dir: Path | None = None,
               source_root: str | None = None) -> Symbolizer | None:
    """The symbolizer of a kernel whose vmlinux has line tables, else None (one per build:
    reading a vmlinux's symbol table takes a second or two)."""
    if not Symbolizer.usable(vmlinux):
        return None
    assert vmlinux is not None
    return Symbolizer(vmlinux, modules_dir, source_root)


def finding_location(symbolizer: Symbolizer, title: str, report: str) -> Location | None:
    """Where a finding happened: the frame of the function its title names ("WARNING in
    dax_iomap_rw"), else the RIP frame, else the first frame that resolves."""
    frames = parse_frames(report)
    if not frames:
        return None
    located = symbolizer.locate(frames)
    named = title.rsplit(" in ", 1)[1].split()[0] if " in " in title else ""
    # "dax_iomap_rw.cold+0x38" is dax_iomap_rw's frame; the first one is the report's own
    # (a KASAN report's allocation and free stacks come after it).
    for choose in (lambda f: f.func.split(".")[0] == named, lambda f: f.is_rip,
                   lambda f: True):
        for frame in frames:
            if choose(frame) and frame.key in located:
                return _in_function(located[frame.key], named)
    return None


def _in_function(loc: Location, function: str) -> Location:
    """The line in `function` when the frame's address is in code inlined into it (an
    atomic_read() in dax_disassociate_entry() is reported at fs/dax.c, not atomic.h)."""
    if not function or loc.function == function:
        return loc
    for name, file, line in loc.inlined:
        if name == function:
            return Location(name, file, line)
    return loc
