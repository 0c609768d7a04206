"""Read a YAML file for a person: any problem becomes (where, what) for a one-line error."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml


class YamlFileError(Exception):
    def __init__(self, path: Path, where: str | None, problem: str):
        super().__init__(f"{path}: {where}: {problem}" if where else f"{path}: {problem}")
        self.path, self.where, self.problem = path, where, problem


def read_yaml(path: Path) -> Any:
    try:
        text = path.read_text()
    except OSError as e:
        raise YamlFileError(path, None, f"cannot read: {e.strerror}") from None
    except UnicodeDecodeError as e:
        raise YamlFileError(path, None, f"not valid YAML: not UTF-8 text (byte "
                                        f"0x{e.object[e.start]:02x} at offset {e.start})") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark else "(top level)"
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise YamlFileError(path, where, f"not valid YAML: {problem}") from None
