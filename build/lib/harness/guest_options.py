"""The guest options (--profile, --kernel, ...): one table, and the GuestOptions they fill.

Every place that takes them derives from GUEST_FLAGS: `nvdimm-harness run/boot/shell/
qemu-cmd` (argparse, harness/cli.py), the pytest options of conftest.py, the CLI's
forwarding to its pytest child (GuestOptions.to_flags) and testcases/avocado/runnables.py.
Standard library only: runnables.py imports this module with whatever Python avocado runs
it under.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class GuestFlag:
    flag: str                  # "--kernel-tree"
    field: str                 # the GuestOptions attribute it sets: "kernel_tree"
    help: str
    metavar: str | None = None
    repeatable: bool = False   # given once per value; a list (a tuple in GuestOptions)
    path: bool = True          # a file or directory, or a name that may be one (not a word)

    @property
    def dest(self) -> str:
        """The attribute argparse and pytest keep it in: "kernel_tree", "config"."""
        return self.flag[2:].replace("-", "_")

    def add_to(self, add: Callable[..., Any]) -> None:
        """Declare the option with `add`: argparse's add_argument or pytest's addoption."""
        kwargs: dict[str, Any] = {"help": self.help}
        if self.metavar:
            kwargs["metavar"] = self.metavar
        if self.repeatable:
            kwargs.update(action="append", default=[])
        add(self.flag, **kwargs)


GUEST_FLAGS = (
    GuestFlag("--profile", "profile", "machine profile: a name in testcases/profiles or a "
              "YAML file (default: default)"),
    GuestFlag("--kernel", "kernel", "boot this kernel instead of the image's stock Debian "
              "kernel", metavar="BZIMAGE"),
    GuestFlag("--accel", "accel", "auto (KVM if it really works, else TCG), kvm or tcg "
              "(default: the profile's, normally auto)", path=False),
    GuestFlag("--recipe", "recipe", "guest image recipe: a name in guest-images/ or a YAML "
              "file"),
    GuestFlag("--modules", "modules", "modules for --kernel (an INSTALL_MOD_PATH directory)",
              metavar="DIR"),
    GuestFlag("--kernel-package", "kernel_package", "boot a Debian kernel package: a suite "
              "(trixie: its current linux-image-amd64), SUITE/PACKAGE or a .deb file",
              metavar="NAME|DEB"),
    GuestFlag("--kernel-tree", "kernel_tree", "build this kernel tree (with --patches/"
              "--config) and boot it", metavar="DIR"),
    GuestFlag("--patches", "patches", "mbox file, directory of .patch files, or A..B "
              "(repeatable)", metavar="PATH", repeatable=True),
    GuestFlag("--config", "configs", "extra config fragment: a file or a name in "
              "guest-images/kernel (e.g. debug); repeatable", metavar="FRAGMENT",
              repeatable=True),
)
BY_FLAG = {f.flag: f for f in GUEST_FLAGS}
# `nvdimm-harness kernel build` takes these two as well.
SERIES_FLAGS = ("--patches", "--config")


def add_guest_options(add: Callable[..., Any], flags: Iterable[str] | None = None) -> None:
    """Every guest option (or those of `flags`) declared with argparse's add_argument or
    pytest's addoption."""
    for f in GUEST_FLAGS if flags is None else [BY_FLAG[flag] for flag in flags]:
        f.add_to(add)


@dataclass(frozen=True)
class GuestOptions:
    profile: str | None = None
    kernel: str | None = None
    accel: str | None = None  # None: the profile's choice
    recipe: str | None = None
    modules: str | None = None
    kernel_package: str | None = None
    kernel_tree: str | None = None
    patches: tuple[str, ...] = ()
    configs: tuple[str, ...] = ()

    @classmethod
    def from_flags(cls, get: Callable[[str], Any]) -> GuestOptions:
        """From option values looked up by flag ("--kernel-tree"), e.g. pytest's getoption."""
        return cls(**{f.field: tuple(get(f.flag) or ()) if f.repeatable else get(f.flag)
                      for f in GUEST_FLAGS})

    @classmethod
    def from_args(cls, args: Any) -> GuestOptions:
        """From an argparse namespace that add_guest_options() filled."""
        return cls.from_flags(lambda flag: getattr(args, BY_FLAG[flag].dest))

    def to_flags(self, exclude: Iterable[str] = ()) -> list[str]:
        """The options as command-line arguments, unset (and empty) ones left out."""
        out: list[str] = []
        for f in GUEST_FLAGS:
            if f.flag in exclude:
                continue
            value = getattr(self, f.field)
            for v in value if f.repeatable else [value] if value else []:
                out += [f.flag, v]
        return out
