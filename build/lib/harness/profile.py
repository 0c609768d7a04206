"""Machine profiles: YAML describing the guest (CPUs, RAM, NVDIMMs, scratch disk), validated.

Every problem is reported as one line naming the file, the field and what is wrong, so that
`nvdimm-harness run --profile broken.yaml` can exit 2 without a traceback.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import UsageError
from .sizes import GiB, KiB, MiB, align_down, align_up, format_size, parse_size
from .yamlfile import YamlFileError, read_yaml

PROFILES_DIR = Path(__file__).resolve().parent.parent / "testcases" / "profiles"
DEFAULT_PROFILE = "default"

# QEMU refuses smaller label areas: MIN_NAMESPACE_LABEL_SIZE in include/hw/mem/nvdimm.h.
MIN_LABEL_SIZE = 128 * KiB
# ndctl refuses fsdax/devdax namespaces whose size or base is not 16 MiB aligned
# (ndctl/namespace.c, check for "misaligned to 16M"); the region must be a multiple of it.
NAMESPACE_GRANULE = 16 * MiB
# QEMU's pc/q35 memory hotplug area allows at most this many DIMM slots (ACPI_MAX_RAM_SLOTS).
MAX_SLOTS = 256
MIN_RAM = 512 * MiB

ACCELS = ("auto", "kvm", "tcg")
MACHINES = ("q35", "pc")


class ProfileError(UsageError):
    def __init__(self, source: str, field_path: str, problem: str):
        super().__init__(f"{source}: {field_path}: {problem}")
        self.source = source
        self.field_path = field_path
        self.problem = problem


@dataclass(frozen=True)
class NvdimmSpec:
    """One emulated NVDIMM. `size` is the usable region size the guest sees."""

    size: int
    label_size: int = MIN_LABEL_SIZE
    align: int = 2 * MiB
    node: int = 0

    @property
    def backend_size(self) -> int:
        """Size of the memory-backend-file so that the region is exactly `size`.

        QEMU carves the label area from the end of the backend and exposes
        ALIGN_DOWN(backend - label_size, align) as pmem (hw/mem/nvdimm.c, nvdimm_prepare_
        memory_region). A 2 GiB backend with a 128 KiB label gives 2 GiB - 2 MiB, which ndctl
        then refuses for fsdax; so add the label and round up to the alignment.
        """
        return align_up(self.size + self.label_size, self.align)

    @property
    def region_size(self) -> int:
        return align_down(self.backend_size - self.label_size, self.align)


@dataclass(frozen=True)
class ScratchDisk:
    """A plain virtio disk: the non-DAX peer of O_DIRECT I/O."""

    size: int = 1 * GiB


@dataclass(frozen=True)
class MachineProfile:
    name: str
    source: str
    nvdimms: tuple[NvdimmSpec, ...]
    cpus: int = 2
    memory: int = 2 * GiB
    machine: str = "q35"
    accel: str = "auto"
    scratch_disk: ScratchDisk = field(default_factory=ScratchDisk)
    slots: int | None = None
    maxmem: int | None = None
    boot_timeout_s: int = 300
    cmdline_extra: str = ""
    # QEMU's -cpu: "max" (TCG emulates AMD SVM there, so the KVM family runs nested);
    # e.g. "max,-svm,-vmx" hides virtualization from the guest.
    cpu: str = "max"
    # TCG's threading: multi (a host thread per vCPU) or single (one thread runs them all).
    tcg_thread: str = "multi"
    # RAM given to the kernel as legacy (e820) pmem with memmap=, the "e820" bus of ndctl's
    # dax tests; 0: none.
    legacy_pmem: int = 0

    @property
    def legacy_pmem_range(self) -> tuple[int, int] | None:
        """(start, size) of the legacy pmem range: the top of guest RAM, 1 GiB aligned."""
        if not self.legacy_pmem:
            return None
        return legacy_pmem_range(self.memory, self.legacy_pmem)

    @property
    def kernel_cmdline(self) -> str:
        """What the profile adds to the kernel command line."""
        memmap = ""
        if self.legacy_pmem_range:
            start, size = self.legacy_pmem_range
            memmap = f"memmap={size // GiB}G!{start // GiB}G"
        return " ".join(x for x in (memmap, self.cmdline_extra) if x)

    @property
    def slot_count(self) -> int:
        return self.slots if self.slots is not None else len(self.nvdimms)

    @property
    def maxmem_size(self) -> int:
        return self.maxmem if self.maxmem is not None else self.required_maxmem

    @property
    def required_maxmem(self) -> int:
        return self.memory + sum(d.backend_size for d in self.nvdimms)

    @property
    def numa_nodes(self) -> list[int]:
        return sorted({0, *(d.node for d in self.nvdimms)})

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "source": self.source,
            "machine": self.machine,
            "cpu": self.cpu,
            "tcg_thread": self.tcg_thread,
            "cpus": self.cpus,
            "memory": format_size(self.memory),
            "maxmem": format_size(self.maxmem_size),
            "slots": self.slot_count,
            "nvdimms": [
                {
                    "size": format_size(d.size),
                    "label_size": format_size(d.label_size),
                    "align": format_size(d.align),
                    "node": d.node,
                    "backend_size": d.backend_size,
                    "region_size": d.region_size,
                }
                for d in self.nvdimms
            ],
            "scratch_disk": {"size": format_size(self.scratch_disk.size)},
            **({"legacy_pmem": {"start": format_size(self.legacy_pmem_range[0]),
                                "size": format_size(self.legacy_pmem_range[1])}}
               if self.legacy_pmem_range else {}),
        }


# q35 puts the first 2 GiB of a guest with 2.75 GiB or more below 4 GiB and the rest from 4 GiB
# up (QEMU hw/i386/pc_q35.c, the lowmem split); smaller guests have all their RAM below 4 GiB.
Q35_LOWMEM = 2 * GiB
Q35_SPLIT_ABOVE = 0xB0000000
# What the guest keeps as ordinary RAM beside a legacy pmem range.
LEGACY_PMEM_MIN_RAM = 2 * GiB


def legacy_pmem_range(memory: int, size: int) -> tuple[int, int]:
    """Where memmap=SIZE!START puts `size` bytes of legacy pmem in a q35 guest with `memory`
    bytes of RAM: the highest 1 GiB-aligned range inside RAM above 4 GiB (ndctl's device-dax
    test maps the namespace with 1 GiB pages, so the range starts on a 1 GiB boundary;
    run_qemu's nfit-test setup does the same with memmap=3G!6G). ValueError if it does not
    fit or leaves less than LEGACY_PMEM_MIN_RAM of RAM."""
    if size <= 0 or size % GiB:
        raise ValueError(f"must be a whole number of GiB, got {format_size(size)}")
    if memory < Q35_SPLIT_ABOVE:
        raise ValueError(f"needs RAM above 4 GiB: memory {format_size(memory)} is all below "
                         "it (give memory >= 2.75G + legacy_pmem)")
    top = 4 * GiB + (memory - Q35_LOWMEM)
    start = align_down(top - size, GiB)
    if start < 4 * GiB or memory - size < LEGACY_PMEM_MIN_RAM:
        raise ValueError(f"{format_size(size)} does not fit in {format_size(memory)} of RAM "
                         f"with {format_size(LEGACY_PMEM_MIN_RAM)} left for the kernel")
    return start, size


_TOP_KEYS = {
    "name", "description", "machine", "cpus", "memory", "accel", "nvdimms", "scratch_disk",
    "slots", "maxmem", "boot_timeout", "cmdline_extra", "cpu", "tcg_thread", "legacy_pmem",
}
_NVDIMM_KEYS = {"size", "label_size", "align", "node"}
_SCRATCH_KEYS = {"size"}


class _Reader:
    """Typed access to one YAML mapping that reports errors with their field path."""

    def __init__(self, source: str, data: Any, path: str, allowed: set[str]):
        self.source = source
        self.path = path
        if not isinstance(data, dict):
            got = "an empty file" if data is None and not path else type(data).__name__
            self.fail(path or "(top level)", f"must be a mapping, got {got}")
        unknown = sorted(set(map(str, data)) - allowed)
        if unknown:
            allowed_list = ", ".join(sorted(allowed))
            self.fail(self.field(unknown[0]), f"unknown key (allowed: {allowed_list})")
        self.data = data

    def field(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def fail(self, field_path: str, problem: str) -> None:
        raise ProfileError(self.source, field_path, problem)

    def size(self, key: str, default: int | None = None) -> int:
        if key not in self.data:
            if default is None:
                self.fail(self.field(key), "is required")
            return default
        try:
            value = parse_size(self.data[key])
        except ValueError as e:
            self.fail(self.field(key), str(e))
        if value <= 0:
            self.fail(self.field(key), f"must be positive, got {self.data[key]!r}")
        return value

    def integer(self, key: str, default: int | None, minimum: int, maximum: int) -> int | None:
        if key not in self.data:
            return default
        value = self.data[key]
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail(self.field(key), f"must be an integer, got {value!r}")
        if not minimum <= value <= maximum:
            self.fail(self.field(key), f"must be between {minimum} and {maximum}, got {value}")
        return value

    def choice(self, key: str, default: str, choices: tuple[str, ...]) -> str:
        value = self.data.get(key, default)
        if value not in choices:
            self.fail(self.field(key), f"must be one of {', '.join(choices)}, got {value!r}")
        return value

    def string(self, key: str, default: str) -> str:
        value = self.data.get(key, default)
        if not isinstance(value, str):
            self.fail(self.field(key), f"must be a string, got {value!r}")
        return value


def _parse_nvdimm(source: str, data: Any, index: int) -> NvdimmSpec:
    r = _Reader(source, data, f"nvdimms[{index}]", _NVDIMM_KEYS)
    size = r.size("size")
    label_size = r.size("label_size", MIN_LABEL_SIZE)
    align = r.size("align", 2 * MiB)
    node = r.integer("node", 0, 0, 63)
    if label_size < MIN_LABEL_SIZE:
        r.fail(r.field("label_size"), f"QEMU needs at least 128K, got {format_size(label_size)}")
    if align < 4 * KiB or align & (align - 1):
        r.fail(r.field("align"), f"must be a power of two >= 4K, got {format_size(align)}")
    if size < NAMESPACE_GRANULE or size % NAMESPACE_GRANULE:
        r.fail(
            r.field("size"),
            f"must be a multiple of 16M (ndctl's namespace alignment), got {format_size(size)}",
        )
    if size % align:
        r.fail(r.field("size"), f"must be a multiple of align {format_size(align)}")
    return NvdimmSpec(size=size, label_size=label_size, align=align, node=node)


def parse_profile(data: Any, source: str, name: str, host_mem_available: int | None = None):
    """Validate parsed YAML. `host_mem_available` (bytes) enables the host RAM check."""
    r = _Reader(source, data, "", _TOP_KEYS)
    if "nvdimms" not in data:
        r.fail("nvdimms", "is required (a list of NVDIMMs, e.g. [{size: 1G}])")
    raw_dimms = data["nvdimms"]
    if not isinstance(raw_dimms, list) or not raw_dimms:
        r.fail("nvdimms", "must be a non-empty list")
    nvdimms = tuple(_parse_nvdimm(source, d, i) for i, d in enumerate(raw_dimms))

    scratch = ScratchDisk()
    if "scratch_disk" in data:
        sr = _Reader(source, data["scratch_disk"], "scratch_disk", _SCRATCH_KEYS)
        scratch = ScratchDisk(size=sr.size("size", scratch.size))

    memory = r.size("memory", 2 * GiB)
    if memory < MIN_RAM:
        r.fail("memory", f"must be at least {format_size(MIN_RAM)}, got {format_size(memory)}")
    if host_mem_available is not None and memory > host_mem_available:
        r.fail(
            "memory",
            f"{format_size(memory)} is more than the host can give "
            f"({host_mem_available // MiB} MiB available)",
        )
    slots = r.integer("slots", None, 1, MAX_SLOTS)
    maxmem = r.size("maxmem", 0) if "maxmem" in data else None
    boot_timeout = r.integer("boot_timeout", 300, 10, 3600)
    profile = MachineProfile(
        name=r.string("name", name),
        source=source,
        nvdimms=nvdimms,
        cpus=r.integer("cpus", 2, 1, 64),
        memory=memory,
        machine=r.choice("machine", "q35", MACHINES),
        accel=r.choice("accel", "auto", ACCELS),
        scratch_disk=scratch,
        slots=slots,
        maxmem=maxmem,
        boot_timeout_s=boot_timeout,
        cmdline_extra=r.string("cmdline_extra", ""),
        cpu=r.string("cpu", "max"),
        tcg_thread=r.choice("tcg_thread", "multi", ("multi", "single")),
        legacy_pmem=r.size("legacy_pmem", 0) if "legacy_pmem" in data else 0,
    )
    if profile.legacy_pmem:
        if profile.machine != "q35":
            r.fail("legacy_pmem", f"is placed for q35's memory map, not {profile.machine!r}")
        try:
            legacy_pmem_range(profile.memory, profile.legacy_pmem)
        except ValueError as e:
            r.fail("legacy_pmem", str(e))
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.,=+-]*", profile.cpu):
        r.fail("cpu", f"{profile.cpu!r} is not a QEMU -cpu model with options (e.g. "
                      "\"max,-svm\")")
    if len(nvdimms) > profile.slot_count:
        r.fail("slots", f"{len(nvdimms)} NVDIMMs need {len(nvdimms)} slots, profile has {slots}")
    if len(nvdimms) > MAX_SLOTS:
        r.fail("nvdimms", f"at most {MAX_SLOTS} NVDIMMs fit QEMU's memory slots")
    if maxmem is not None and maxmem < profile.required_maxmem:
        r.fail(
            "maxmem",
            f"{format_size(maxmem)} is below RAM + NVDIMM backends "
            f"({format_size(profile.required_maxmem)})",
        )
    return profile


def host_mem_available() -> int | None:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * KiB
    except OSError:
        pass
    return None


def resolve_profile_path(name_or_path: str | None) -> Path:
    """A name looks in testcases/profiles/, anything with a slash or .yaml suffix is a path."""
    spec = name_or_path or DEFAULT_PROFILE
    if "/" in spec or spec.endswith((".yaml", ".yml")):
        path = Path(spec)
    else:
        path = PROFILES_DIR / f"{spec}.yaml"
        if not path.exists():
            known = ", ".join(sorted(p.stem for p in PROFILES_DIR.glob("*.yaml")))
            raise UsageError(f"--profile: no profile named {spec!r} (known: {known})")
    if not path.is_file():
        what = "a directory, not a profile file" if path.is_dir() else "no such file"
        raise UsageError(f"--profile: {path}: {what}")
    return path


def load_profile(name_or_path: str | None = None, check_host: bool = True) -> MachineProfile:
    path = resolve_profile_path(name_or_path)
    source = str(path)
    try:
        data = read_yaml(path)
    except YamlFileError as e:
        if e.where is None:
            raise UsageError(str(e)) from None
        raise ProfileError(source, e.where, e.problem) from None
    avail = host_mem_available() if check_host else None
    return parse_profile(data, source, path.stem, avail)
