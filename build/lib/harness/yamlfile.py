"""Read a YAML file for a person: any problem becomes (where, what) for a one-line error."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses a mapping with one key twice: PyYAML keeps the last silently
    (a profile with `nvdimms:` twice booted with the second list)."""

    def construct_mapping(self, node, deep=False):
        seen: dict[Any, int] = {}
        for key_node, _value in node.value:
            key = self.construct_object(key_node, deep=deep)
            line = key_node.start_mark.line + 1
            try:
                if key in seen:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"key {key!r} given twice (lines {seen[key]} and {line})",
                        key_node.start_mark)
                seen[key] = line
            except TypeError:  # an unhashable key: let PyYAML say what it says
                continue
        return super().construct_mapping(node, deep=deep)


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
        return yaml.load(text, Loader=_UniqueKeyLoader)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark else "(top level)"
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise YamlFileError(path, where, f"not valid YAML: {problem}") from None
