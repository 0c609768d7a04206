"""Byte sizes as people write them in profiles ("2G", "128K") and the alignment arithmetic."""

import re

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB

_UNITS = {"": 1, "K": KiB, "M": MiB, "G": GiB, "T": 1024 * GiB}
_SIZE_RE = re.compile(r"^\s*(-?\d+)\s*([KMGT]?)(?:i?B)?\s*$", re.IGNORECASE)


def parse_size(value: int | str) -> int:
    """'2G' -> 2147483648. Integers are bytes. Raises ValueError with the offending text."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a size")
    if isinstance(value, int):
        return value
    if not isinstance(value, str):
        raise ValueError(f"{value!r} is not a size")
    m = _SIZE_RE.match(value)
    if not m:
        raise ValueError(f"{value!r} is not a size (use e.g. 512M, 2G, 128K)")
    return int(m.group(1)) * _UNITS[m.group(2).upper()]


def format_size(n: int) -> str:
    """Shortest exact form: 2147483648 -> '2G', 2149580800 -> '2050M'."""
    for unit in ("T", "G", "M", "K"):
        if n and n % _UNITS[unit] == 0:
            return f"{n // _UNITS[unit]}{unit}"
    return str(n)


def align_up(n: int, alignment: int) -> int:
    return -(-n // alignment) * alignment


def align_down(n: int, alignment: int) -> int:
    return n // alignment * alignment
