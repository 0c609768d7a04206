"""Guest image recipes: the headers of compiled sources are staged and keyed with them."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness import image
from harness.errors import UsageError


def _recipes(tmp_path: Path, monkeypatch, sources: dict[str, str]) -> Path:
    """A recipes directory with `sources` (relative path -> text) and a recipe compiling
    every .c file among them."""
    root = tmp_path / "guest-images"
    for rel, text in sources.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    compile_items = "".join(
        f"  - {{src: {rel}, dst: /usr/local/bin/{Path(rel).stem}}}\n"
        for rel in sources if rel.endswith(".c"))
    (root / "r.yaml").write_text(f"name: r\ncompile:\n{compile_items}")
    monkeypatch.setattr(image, "RECIPES_DIR", root)
    return root


def test_default_recipe_stages_and_keys_the_shared_workload_header():
    recipe = image.load_recipe(None)
    header = image.RECIPES_DIR / "workloads" / "nvh-common.h"
    assert recipe.headers() == [header]  # once, although both workloads include it
    assert header in recipe.input_files()


def test_header_change_changes_the_cache_key(tmp_path, monkeypatch):
    root = _recipes(tmp_path, monkeypatch, {
        "w/a.c": '#include <stdio.h>\n#include "common.h"\nint main(void) { return 0; }\n',
        "w/common.h": "#define X 1\n",
    })
    before = image.load_recipe("r").cache_key()
    (root / "w/common.h").write_text("#define X 2\n")
    assert image.load_recipe("r").cache_key() != before


def test_headers_are_staged_next_to_the_sources(tmp_path, monkeypatch):
    _recipes(tmp_path, monkeypatch, {
        "w/a.c": '#include "common.h"\n',
        "w/b.c": '  #  include "common.h"\n',
        "w/common.h": '#include "inner.h"\n',
        "w/inner.h": "",
    })
    recipe = image.load_recipe("r")
    keys = tmp_path / "keys"
    keys.mkdir()
    for name in ("id_ed25519", "ssh_host_ed25519_key"):
        for suffix in ("", ".pub"):
            (keys / f"{name}{suffix}").write_text("k")
    stage = tmp_path / "stage"
    image._stage_files(recipe, stage, keys)
    src_dir = stage / image.SOURCES_IN_IMAGE.lstrip("/")
    assert sorted(p.name for p in src_dir.iterdir()) == [
        "a.c", "b.c", "common.h", "customize.sh", "inner.h"]
    assert "gcc -O2 -g -Wall -Wextra -Werror -D_GNU_SOURCE -o /usr/local/bin/a a.c" in \
        (src_dir / "customize.sh").read_text()


@pytest.mark.parametrize("include", ['"../other/x.h"', '"missing.h"'])
def test_a_header_the_flat_build_cannot_resolve_is_a_usage_error(tmp_path, monkeypatch,
                                                                  include):
    _recipes(tmp_path, monkeypatch, {"w/a.c": f"#include {include}\n", "other/x.h": ""})
    with pytest.raises(UsageError, match=r"next to a\.c"):
        image.load_recipe("r")


def test_two_headers_of_one_name_are_a_usage_error(tmp_path, monkeypatch):
    _recipes(tmp_path, monkeypatch, {
        "w/a.c": '#include "common.h"\n', "w/common.h": "",
        "v/b.c": '#include "common.h"\n', "v/common.h": "",
    })
    with pytest.raises(UsageError, match="would both be staged"):
        image.load_recipe("r")
