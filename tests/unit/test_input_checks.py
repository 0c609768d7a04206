"""Bad input found before anything starts: a key given twice, a recipe key nobody reads, a
profile whose backing files the host cannot hold."""

import resource
from dataclasses import replace

import pytest

from harness.errors import InfraError, UsageError
from harness.image import RECIPES_DIR, load_recipe
from harness.prepare import check_backing_room
from harness.profile import load_profile, parse_size
from harness.yamlfile import YamlFileError, read_yaml


def test_a_key_given_twice_is_refused_with_both_lines(tmp_path):
    f = tmp_path / "p.yaml"
    f.write_text("name: x\nnvdimms:\n  - {size: 1G}\nmemory: 2G\nnvdimms:\n  - {size: 2G}\n")
    with pytest.raises(YamlFileError, match=r"line 5: .*'nvdimms' given twice \(lines 2 and 5\)"):
        read_yaml(f)
    with pytest.raises(UsageError, match="given twice"):
        load_profile(str(f))


def test_nested_duplicates_too_but_equal_keys_in_sibling_mappings_are_fine(tmp_path):
    f = tmp_path / "p.yaml"
    f.write_text("a: {x: 1, y: 2}\nb: {x: 1, y: 2}\n")
    assert read_yaml(f) == {"a": {"x": 1, "y": 2}, "b": {"x": 1, "y": 2}}
    f.write_text("a: {x: 1, x: 2}\n")
    with pytest.raises(YamlFileError, match="'x' given twice"):
        read_yaml(f)


def test_a_misspelt_recipe_key_is_named(tmp_path):
    text = (RECIPES_DIR / "debian-bookworm.yaml").read_text()
    f = tmp_path / "r.yaml"
    f.write_text(text.replace("\npackages:", "\npakages:"))
    with pytest.raises(UsageError, match=r"r\.yaml: pakages: unknown key"):
        load_recipe(str(f))


def test_backing_files_the_host_cannot_hold(tmp_path):
    profile = load_profile("default")
    check_backing_room(profile, tmp_path)  # the shipped profile fits
    huge = replace(profile, nvdimms=tuple(replace(d, size=parse_size("100T"))
                                          for d in profile.nvdimms))
    with pytest.raises(InfraError, match=r"nvdimms\[0\]: cannot create a 104857\d+ MiB "
                                         "backing file .*File too large|do not fit"):
        check_backing_room(huge, tmp_path)


def test_a_file_size_limit_below_the_nvdimm(tmp_path, monkeypatch):
    monkeypatch.setattr(resource, "getrlimit", lambda what: (1 << 20, resource.RLIM_INFINITY))
    with pytest.raises(InfraError, match=r"nvdimms\[0\]: .* exceeds .*ulimit -f: 1024 KiB"):
        check_backing_room(load_profile("default"), tmp_path)
