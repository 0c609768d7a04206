"""A typed wrapper over the guest's `ndctl`/`daxctl ... -j` (JSON output), run over SSH."""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass
from typing import Any

from .ssh import CommandResult, SucceedingRunner


@dataclass(frozen=True)
class Region:
    dev: str
    size: int
    align: int
    available_size: int

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Region:
        return cls(d["dev"], int(d["size"]), int(d.get("align", 0)),
                   int(d.get("available_size", 0)))


@dataclass(frozen=True)
class Namespace:
    dev: str
    mode: str
    size: int
    map: str | None = None
    blockdev: str | None = None
    chardev: str | None = None  # devdax: daxX.Y
    align: int | None = None
    uuid: str | None = None

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Namespace:
        chardev = None
        daxregion = d.get("daxregion")
        if daxregion and daxregion.get("devices"):
            chardev = daxregion["devices"][0].get("chardev")
        return cls(
            dev=d["dev"], mode=d["mode"], size=int(d["size"]), map=d.get("map"),
            blockdev=d.get("blockdev"), chardev=chardev,
            align=int(d["align"]) if "align" in d else None, uuid=d.get("uuid"),
        )

    @property
    def device_path(self) -> str:
        """/dev/pmemN for fsdax/raw/sector, /dev/daxX.Y for devdax."""
        if self.chardev:
            return f"/dev/{self.chardev}"
        if self.blockdev:
            return f"/dev/{self.blockdev}"
        raise ValueError(f"{self.dev} ({self.mode}) has no device node")


class NdctlError(RuntimeError):
    def __init__(self, result: CommandResult):
        super().__init__(f"ndctl failed:\n{result.describe()}")
        self.result = result


def _parse_list(text: str) -> list[dict[str, Any]]:
    """`ndctl list` prints one object for one result and a list for several (or nothing)."""
    text = text.strip()
    if not text:
        return []
    data = json.loads(text)
    return data if isinstance(data, list) else [data]


class Ndctl:
    def __init__(self, guest: SucceedingRunner):
        self.guest = guest

    def regions(self) -> list[Region]:
        return [Region.from_json(r) for r in _parse_list(self.guest.succeed("ndctl list -R"))]

    def namespaces(self) -> list[Namespace]:
        out = self.guest.succeed("ndctl list -N -X")
        return [Namespace.from_json(n) for n in _parse_list(out)]

    def namespace(self, dev: str) -> Namespace:
        for ns in self.namespaces():
            if ns.dev == dev:
                return ns
        raise LookupError(f"no namespace {dev} in `ndctl list`")

    def reconfigure(self, dev: str, mode: str, map: str | None = None,
                    align: str | None = None, timeout_s: float = 300) -> Namespace:
        """`ndctl create-namespace -f -e DEV -m MODE`: (re)create in place, any prior mode.

        On a fresh labelled DIMM this also writes the label index (ndctl's --autolabel).
        """
        args = ["ndctl", "create-namespace", "-f", "-e", dev, "-m", mode]
        if map:
            args += ["--map", map]
        if align:
            args += ["--align", align]
        result = self.guest.run(shlex.join(args), timeout_s)
        if result.status != 0:
            raise NdctlError(result)
        data = json.loads(result.stdout)
        # create-namespace prints the namespace without its dax device details; list them.
        return self.namespace(data["dev"]) if mode == "devdax" else Namespace.from_json(data)

    def try_run(self, *args: str, timeout_s: float = 120) -> CommandResult:
        """Run an ndctl subcommand that a test expects might be refused."""
        return self.guest.run(shlex.join(["ndctl", *args]), timeout_s)
