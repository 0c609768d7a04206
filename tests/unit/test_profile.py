"""Profile validation and NVDIMM backend sizing."""

import pytest

from harness.profile import MIN_LABEL_SIZE, NvdimmSpec, ProfileError, load_profile, parse_profile
from harness.sizes import GiB, KiB, MiB, format_size, parse_size


def parse(data, avail=None):
    return parse_profile(data, "p.yaml", "p", avail)


def test_default_profile_loads_with_two_nvdimms():
    profile = load_profile("default", check_host=False)
    assert len(profile.nvdimms) == 2
    assert all(d.region_size == d.size for d in profile.nvdimms)


@pytest.mark.parametrize("usable, align", [(1 * GiB, 2 * MiB), (2 * GiB, 2 * MiB),
                                           (16 * MiB, 2 * MiB), (1040 * MiB, 2 * MiB),
                                           (1 * GiB, 1 * GiB), (2 * GiB, 1 * GiB)])
@pytest.mark.parametrize("label", [128 * KiB, 2 * MiB, 1 * MiB + 4 * KiB])
def test_backend_size_gives_exactly_the_usable_region(usable, label, align):
    d = NvdimmSpec(size=usable, label_size=label, align=align)
    # QEMU: region = ALIGN_DOWN(backend - label, align) (hw/mem/nvdimm.c)
    assert (d.backend_size - label) // align * align == usable
    assert d.backend_size % align == 0


def test_the_measured_trap_2g_backend_is_not_a_2g_region():
    # DESIGN.md: a 2 GiB file with a 128K label gives 2 GiB - 2 MiB; we size 2 GiB + 2 MiB.
    d = NvdimmSpec(size=2 * GiB, label_size=128 * KiB, align=2 * MiB)
    assert d.backend_size == 2 * GiB + 2 * MiB


@pytest.mark.parametrize("data, field, problem", [
    ({"nvdimms": [{"size": "-1G"}]}, "nvdimms[0].size", "must be positive"),
    ({"nvdimms": [{"size": "1G"}], "colour": "red"}, "colour", "unknown key"),
    ({"cpus": 2}, "nvdimms", "is required"),
    ({"nvdimms": []}, "nvdimms", "non-empty list"),
    ({"nvdimms": [{"size": "1G", "label_size": "64K"}]}, "nvdimms[0].label_size", "128K"),
    ({"nvdimms": [{"size": "8M"}]}, "nvdimms[0].size", "multiple of 16M"),
    ({"nvdimms": [{"size": "1G", "align": "3M"}]}, "nvdimms[0].align", "power of two"),
    ({"nvdimms": [{"size": "1G", "bogus": 1}]}, "nvdimms[0].bogus", "unknown key"),
    ({"nvdimms": [{"size": "lots"}]}, "nvdimms[0].size", "not a size"),
    ({"nvdimms": [{"size": "1G"}], "cpus": "two"}, "cpus", "must be an integer"),
    ({"nvdimms": [{"size": "1G"}, {"size": "1G"}], "slots": 1}, "slots", "need 2 slots"),
    ({"nvdimms": [{"size": "1G"}], "maxmem": "2G"}, "maxmem", "below RAM"),
    ({"nvdimms": [{"size": "1G"}], "accel": "hvf"}, "accel", "must be one of"),
    ({"nvdimms": [{"size": "1G"}], "memory": "100M"}, "memory", "at least"),
    ({"nvdimms": [{"size": "1G"}], "cpu": "max -svm"}, "cpu", "not a QEMU -cpu model"),
    ({"nvdimms": [{"size": "1G"}], "tcg_thread": "many"}, "tcg_thread", "must be one of"),
    ({"nvdimms": [{"size": "1G"}], "legacy_pmem": "3G"}, "legacy_pmem", "RAM above 4 GiB"),
    ({"nvdimms": [{"size": "1G"}], "memory": "4G", "legacy_pmem": "3G"}, "legacy_pmem",
     "does not fit"),
    ({"nvdimms": [{"size": "1G"}], "memory": "8G", "legacy_pmem": "1536M"}, "legacy_pmem",
     "whole number of GiB"),
    ({"nvdimms": [{"size": "1G"}], "machine": "pc", "memory": "8G", "legacy_pmem": "1G"},
     "legacy_pmem", "q35"),
    ("just a string", "(top level)", "must be a mapping"),
])
def test_invalid_profiles_name_field_and_problem(data, field, problem):
    with pytest.raises(ProfileError) as e:
        parse(data)
    assert e.value.field_path == field
    assert problem in e.value.problem
    assert str(e.value).startswith(f"p.yaml: {field}: ")
    assert "\n" not in str(e.value)


def test_ram_larger_than_the_host_can_give():
    with pytest.raises(ProfileError, match="more than the host can give"):
        parse({"nvdimms": [{"size": "1G"}], "memory": "64G"}, avail=8 * GiB)


def test_not_yaml_is_one_line(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("nvdimms: [size: 1G\n  - ]]\n")
    with pytest.raises(ProfileError) as e:
        load_profile(str(p), check_host=False)
    assert "not valid YAML" in str(e.value) and "\n" not in str(e.value)


def test_missing_profile_name_lists_known():
    with pytest.raises(Exception, match=r"known: .*default"):
        load_profile("no-such-profile")


def test_label_minimum_constant_matches_qemu():
    assert MIN_LABEL_SIZE == 0x20000


@pytest.mark.parametrize("text, value", [("2G", 2 * GiB), ("128K", 128 * KiB), ("512", 512),
                                         ("1GiB", GiB), (4096, 4096)])
def test_parse_size(text, value):
    assert parse_size(text) == value


def test_format_size_round_trips():
    for n in (GiB, 2 * GiB + 2 * MiB, 128 * KiB, 12345):
        assert parse_size(format_size(n)) == n


@pytest.mark.parametrize("memory, size, start", [
    # q35: 2 GiB below 4 GiB, the rest from 4 GiB; the range is the top of RAM, 1G aligned
    (6 * GiB, 3 * GiB, 5 * GiB),    # the ndctl profile: memmap=3G!5G, 3 GiB of RAM left
    (8 * GiB, 3 * GiB, 7 * GiB),
    (12 * GiB, 3 * GiB, 11 * GiB),  # run_qemu's 12 GiB guest (it puts 3G at 6G)
])
def test_legacy_pmem_is_the_top_of_ram_on_a_1g_boundary(memory, size, start):
    from harness.profile import legacy_pmem_range
    assert legacy_pmem_range(memory, size) == (start, size)


def test_the_ndctl_profile_gives_the_memmap_on_the_command_line():
    p = load_profile("ndctl", check_host=False)
    assert p.kernel_cmdline == "memmap=3G!6G hugepagesz=1G hugepages=1"
    assert p.to_json()["legacy_pmem"] == {"start": "6G", "size": "3G"}
    assert load_profile("default", check_host=False).kernel_cmdline == ""
