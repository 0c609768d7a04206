"""harness.kconfig: fragments, the subset check, Kconfig explanations, the config hash.

tests/data/kconfig/ holds real results of tinyconfig + guest-images/kernel/nvdimm.config (+ a
case fragment) + olddefconfig on Linux 6.1, and tree/, a trimmed copy of the Kconfig files
those cases touch; regenerate.sh re-records the results from a kernel tree.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from harness import kconfig
from harness.errors import EXIT_USAGE, UsageError
from harness.kconfig import (
    ConfigParseError,
    UnmetOption,
    config_hash,
    explain_unmet,
    fragment_check_message,
    load_fragment,
    merged_options,
    parse_config,
    unmet,
)

DATA = Path(__file__).resolve().parents[1] / "data" / "kconfig"
TREE = DATA / "tree"


def final(name: str) -> dict[str, str]:
    return parse_config((DATA / f"{name}.final.config").read_text())


def case_options(name: str) -> dict[str, str]:
    """What the harness asks for in a case: nvdimm.config, then the case's fragment."""
    return merged_options([load_fragment("nvdimm"), load_fragment(DATA / f"{name}.config")])


# -- parsing -----------------------------------------------------------------------------------


def test_parse_values_and_comments():
    text = "\n".join([
        "#",
        "# Automatically generated file; DO NOT EDIT.",
        "CONFIG_A=y",
        "CONFIG_B=m",
        "# CONFIG_C is not set",
        "CONFIG_D=n",
        'CONFIG_CMDLINE="console=ttyS0 # not a comment \\"quoted\\""',
        'CONFIG_EMPTY=""',
        "CONFIG_NR_CPUS=8",
        "CONFIG_PANIC_TIMEOUT=-1",
        "CONFIG_PHYSICAL_START=0x1000000",
        "   CONFIG_INDENTED=y   ",
        "",
        "# a comment mentioning CONFIG_X=y",
        "#CONFIG_E is not set",
    ])
    assert parse_config(text) == {
        "A": "y", "B": "m", "C": "n", "D": "n",
        "CMDLINE": '"console=ttyS0 # not a comment \\"quoted\\""', "EMPTY": '""',
        "NR_CPUS": "8", "PANIC_TIMEOUT": "-1", "PHYSICAL_START": "0x1000000", "INDENTED": "y",
    }


def test_parse_crlf_and_later_line_wins():
    options = parse_config("CONFIG_A=y\r\nCONFIG_B=y\r\n# CONFIG_A is not set\r\n")
    assert options == {"B": "y", "A": "n"}
    assert list(options) == ["B", "A"]  # ordered by the winning line


@pytest.mark.parametrize("line", [
    "CONFIG_FOO = y", "FOO=y", "CONFIG_FOO=", "CONFIG_FOO=two words", 'CONFIG_FOO="open',
    "CONFIG_FOO", "y",
])
def test_parse_rejects_what_is_not_an_assignment(line):
    with pytest.raises(ConfigParseError) as e:
        parse_config(f"CONFIG_OK=y\n\n{line}\n")
    assert e.value.lineno == 3
    assert e.value.line == line.strip()


def test_parse_real_config():
    text = (DATA / "gup_test-no-debugfs.final.config").read_text()
    options = parse_config(text)
    assignments = [ln for ln in text.splitlines()
                   if ln.startswith("CONFIG_") or ln.endswith(" is not set")]
    assert len(options) == len(assignments)
    assert options["CC_VERSION_TEXT"].startswith('"gcc')
    assert options["LOG_BUF_SHIFT"] == "17"
    assert options["DEBUG_FS"] == "n"
    # An option whose dependencies are off is not even written as "is not set".
    assert "GUP_TEST" not in options


# -- the subset check ----------------------------------------------------------------------------


def test_unmet_basic_rules():
    fragment = {"Y": "y", "M": "m", "OFF": "n", "GONE": "n", "UP": "m", "DOWN": "y",
                "HEX": "0x1000", "INT": "8", "STR": '"abc"', "BARE": "abc", "MISSING": "y"}
    config = {"Y": "y", "M": "m", "OFF": "n", "UP": "y", "DOWN": "m",
              "HEX": "0x00001000", "INT": "8", "STR": '"abc"', "BARE": '"abc"'}
    assert unmet(fragment, config) == [
        UnmetOption("UP", "m", "y"),
        UnmetOption("DOWN", "y", "m"),
        UnmetOption("MISSING", "y", "n"),
    ]
    assert unmet({}, config) == []
    assert unmet({"INT": "9"}, config) == [UnmetOption("INT", "9", "8")]
    assert str(UnmetOption("GUP_TEST", "y", "n")) == "CONFIG_GUP_TEST=y requested, got n"


def test_shipped_fragments_are_met_by_recorded_61_results():
    """The recorded results come from running the real thing (regenerate.sh).

    A change to a shipped fragment needs a new run against a 6.1 tree: this test then fails
    on the options the recorded results do not have.
    """
    nvdimm = load_fragment("nvdimm")
    debug = load_fragment("debug")
    assert unmet(nvdimm.options, final("nvdimm")) == []
    assert unmet(merged_options([nvdimm, debug]), final("nvdimm+debug")) == []
    # nvdimm.config forces what the issue lists (and the guest boots without an initrd).
    for name in ("ACPI_NFIT", "LIBNVDIMM", "BLK_DEV_PMEM", "ND_PFN", "ND_BTT", "DAX", "FS_DAX",
                 "FS_DAX_PMD", "DEV_DAX", "DEV_DAX_PMEM", "ZONE_DEVICE", "MEMORY_HOTPLUG",
                 "MEMORY_HOTREMOVE", "TRANSPARENT_HUGEPAGE", "EXT4_FS", "XFS_FS", "VIRTIO_BLK",
                 "VIRTIO_NET", "VIRTIO_PCI", "SERIAL_8250_CONSOLE", "DEBUG_FS", "FTRACE",
                 "EVENT_TRACING", "GUP_TEST", "IO_URING", "INFINIBAND", "RDMA_RXE",
                 "INFINIBAND_USER_ACCESS", "PVPANIC", "BLK_DEV_DM", "DM_DELAY", "PVH",
                 "IKCONFIG_PROC", "DEVTMPFS_MOUNT"):
        assert nvdimm.options[name] == "y", name
    for name in ("KASAN", "PROVE_LOCKING", "DEBUG_VM"):
        assert debug.options[name] == "y", name
    # debug.config overrides nothing: the fragments merge in either order.
    assert all(nvdimm.options[k] == v for k, v in debug.options.items() if k in nvdimm.options)


def test_dropped_option_is_found_in_real_config():
    options = case_options("gup_test-no-debugfs")
    assert unmet(options, final("gup_test-no-debugfs")) == [UnmetOption("GUP_TEST", "y", "n")]
    # Checked one by one, nvdimm.config's DEBUG_FS=y looks unmet too: the later fragment
    # turned it off on purpose. That is why the merged options are what gets checked.
    alone = unmet(load_fragment("nvdimm").options, final("gup_test-no-debugfs"))
    assert UnmetOption("DEBUG_FS", "y", "n") in alone


def test_thp_off_drops_four_options():
    assert [u.option for u in unmet(case_options("thp-off"), final("thp-off"))] == [
        "DEV_DAX", "DEV_DAX_PMEM", "DEV_DAX_KMEM", "FS_DAX_PMD"]


# -- explaining with the tree's Kconfig ---------------------------------------------------------


def test_explain_gup_test():
    assert explain_unmet(TREE, "GUP_TEST") == "depends on DEBUG_FS"
    assert explain_unmet(TREE, "CONFIG_GUP_TEST") == "depends on DEBUG_FS"
    assert explain_unmet(TREE, "GUP_TEST", final("gup_test-no-debugfs")) == \
        "depends on DEBUG_FS [=n]"


def test_fragment_check_message_gup_test():
    dropped = unmet(case_options("gup_test-no-debugfs"), final("gup_test-no-debugfs"))
    assert fragment_check_message(dropped, TREE) == \
        "CONFIG_GUP_TEST=y requested, got n (depends on DEBUG_FS)"
    assert fragment_check_message(dropped, TREE, final("gup_test-no-debugfs")) == \
        "CONFIG_GUP_TEST=y requested, got n (depends on DEBUG_FS [=n])"
    assert fragment_check_message(dropped, None) == "CONFIG_GUP_TEST=y requested, got n"
    assert fragment_check_message([], TREE) == ""


def test_fragment_check_message_thp_off_names_only_the_failing_dependency():
    config = final("thp-off")
    message = fragment_check_message(unmet(case_options("thp-off"), config), TREE, config)
    assert message.splitlines() == [
        "CONFIG_DEV_DAX=y requested, got n (depends on TRANSPARENT_HUGEPAGE [=n])",
        "CONFIG_DEV_DAX_PMEM=y requested, got n "
        "(depends on LIBNVDIMM [=y] && NVDIMM_DAX [=y] && DEV_DAX [=n])",
        "CONFIG_DEV_DAX_KMEM=y requested, got n (depends on DEV_DAX [=n])",
        "CONFIG_FS_DAX_PMD=y requested, got n (depends on TRANSPARENT_HUGEPAGE [=n])",
    ]


def test_explain_follows_if_blocks_across_source():
    # rxe/Kconfig is sourced inside `if INFINIBAND` and another if in drivers/infiniband/Kconfig
    assert explain_unmet(TREE, "RDMA_RXE") == (
        "depends on INET && PCI && INFINIBAND; depends on INFINIBAND_VIRT_DMA; "
        "inside if INFINIBAND; inside if INFINIBAND_USER_ACCESS || !INFINIBAND_USER_ACCESS")
    config = final("rxe-no-ib")
    assert fragment_check_message(unmet(case_options("rxe-no-ib"), config), TREE, config) == (
        "CONFIG_INFINIBAND_USER_ACCESS=y requested, got n (inside if INFINIBAND [=n])\n"
        "CONFIG_RDMA_RXE=y requested, got n (depends on INET [=y] && PCI [=y] && "
        "INFINIBAND [=n]; depends on INFINIBAND_VIRT_DMA [=n]; inside if INFINIBAND [=n])")


def test_explain_skips_help_text_and_reads_menus_and_choices():
    # FS_DAX's help has an indented "# ndctl ... \" line and a space-indented paragraph.
    assert explain_unmet(TREE, "FS_DAX") == (
        "depends on MMU; depends on !(ARM || MIPS || SPARC); "
        "depends on ZONE_DEVICE || FS_DAX_LIMITED")
    assert explain_unmet(TREE, "DEBUG_INFO_NONE") == "choice depends on DEBUG_KERNEL"
    assert explain_unmet(TREE, "DEBUG_INFO_REDUCED") == "inside if DEBUG_INFO"
    assert explain_unmet(TREE, "TRANSPARENT_HUGEPAGE_ALWAYS") == (
        "inside if TRANSPARENT_HUGEPAGE; choice depends on TRANSPARENT_HUGEPAGE")
    sym = kconfig.kconfig_symbol(TREE, "FS_DAX")
    assert sym is not None and sym.locations == ["fs/Kconfig:3"] and sym.has_prompt


def test_explain_reads_kconfig_quirks(tmp_path):
    # Verbatim from 6.1: help text indented like its `help` keyword (drivers/hid/Kconfig, with
    # a line starting "if you have"), `config<TAB>NAME` (net/unix/Kconfig), `select X<TAB>if`.
    (tmp_path / "Kconfig").write_text(
        "config HID_XINMO\n"
        '\ttristate "Xin-Mo non-fully compliant devices"\n'
        "\thelp\n"
        "\tSupport for Xin-Mo devices that are not fully compliant with the HID\n"
        "\tstandard. Currently only supports the Xin-Mo Dual Arcade. Say Y here\n"
        "\tif you have a Xin-Mo Dual Arcade controller.\n"
        "\n"
        "config HID_ZEROPLUS\n"
        '\ttristate "Zeroplus based game controller support"\n'
        "\tdepends on HID\n"
        "\n"
        "config\tAF_UNIX_OOB\n"
        "\tbool\n"
        "\tdepends on UNIX\n"
        "\tdefault y\n"
        "\n"
        "config X86\n"
        "\tdef_bool y\n"
        "\tselect ACPI_LEGACY_TABLES_LOOKUP\tif ACPI\n"
        "\n"
        "config ACPI_LEGACY_TABLES_LOOKUP\n"
        "\tbool\n")
    assert explain_unmet(tmp_path, "HID_ZEROPLUS") == "depends on HID"
    assert explain_unmet(tmp_path, "HID_XINMO") == ""
    assert explain_unmet(tmp_path, "AF_UNIX_OOB") == \
        "depends on UNIX; no prompt: set only by default or select"
    assert explain_unmet(tmp_path, "ACPI_LEGACY_TABLES_LOOKUP") == \
        "no prompt: set only by default or select (selected by X86 if ACPI)"


def test_explain_symbol_without_prompt_names_its_selectors():
    assert explain_unmet(TREE, "ND_PFN") == (
        "inside if LIBNVDIMM; no prompt: set only by default or select "
        "(selected by BLK_DEV_PMEM if NVDIMM_PFN)")
    # Asked off, came out on: the select that forced it is the reason.
    config = {"LIBNVDIMM": "y", "BLK_DEV_PMEM": "y", "NVDIMM_PFN": "y", "ND_PFN": "y"}
    assert explain_unmet(TREE, "ND_PFN", config, wanted="n") == \
        "selected by BLK_DEV_PMEM [=y] if NVDIMM_PFN [=y]"


def test_explain_prefers_the_arch_being_built():
    assert explain_unmet(TREE, "HIGHMEM") == (
        "depends on X86_32 && (HIGHMEM64G || HIGHMEM4G); "
        "no prompt: set only by default or select")
    assert explain_unmet(TREE, "HIGHMEM", arch="arm") == "depends on MMU"


def test_explain_unknown_option_or_tree_is_empty(tmp_path):
    assert explain_unmet(TREE, "NO_SUCH_OPTION") == ""
    assert explain_unmet(tmp_path / "nowhere", "GUP_TEST") == ""
    dropped = [UnmetOption("NO_SUCH_OPTION", "y", "n")]
    assert fragment_check_message(dropped, TREE) == "CONFIG_NO_SUCH_OPTION=y requested, got n"


def test_explain_y_requested_but_dependencies_are_modules():
    config = {"INET": "y", "PCI": "y", "INFINIBAND": "m", "INFINIBAND_VIRT_DMA": "y",
              "INFINIBAND_USER_ACCESS": "m", "RDMA_RXE": "m"}
    # `if X || !X` is Kconfig's idiom for "no higher than X": m when X is m.
    assert explain_unmet(TREE, "RDMA_RXE", config, wanted="y") == (
        "depends on INET [=y] && PCI [=y] && INFINIBAND [=m]; inside if INFINIBAND [=m]; "
        "inside if INFINIBAND_USER_ACCESS [=m] || !INFINIBAND_USER_ACCESS [=m]")


@pytest.mark.parametrize(("expr", "config", "value"), [
    ("A && B", {"A": "y", "B": "m"}, 1),
    ("A || B", {"A": "n", "B": "m"}, 1),
    ("!A", {"A": "m"}, 1),
    ("!(A || B)", {}, 2),
    ("m || IPV6 != m", {"IPV6": "m"}, 1),
    ("A = B", {"A": "y", "B": "y"}, 2),
    ("NR >= 4", {"NR": "8"}, 2),
    ("NR < 0x10", {"NR": "16"}, 0),
    ('S = "x"', {"S": '"x"'}, 2),
    ('"$(ARCH)" = "x86"', {}, None),
    ("A && $(cc-option,-fsanitize=shift)", {"A": "n"}, 0),
    ("A || $(cc-option,-fsanitize=shift)", {"A": "y"}, 2),
    ("A && (", {"A": "y"}, None),
    ("(A", {"A": "y"}, None),
    ("A B", {"A": "y"}, None),
    ("A && || B", {"A": "y"}, None),
])
def test_expression_evaluation(expr, config, value):
    assert kconfig._evaluate(expr, config) == value


# -- fragments on disk ---------------------------------------------------------------------------


def test_load_fragment_by_name_and_path():
    nvdimm = load_fragment("nvdimm")
    assert nvdimm.path == kconfig.FRAGMENT_DIR / "nvdimm.config"
    assert nvdimm.name == "nvdimm"
    assert nvdimm.options["ACPI_NFIT"] == "y"
    assert nvdimm.options["SLOB"] == "n"
    by_path = load_fragment(str(kconfig.FRAGMENT_DIR / "nvdimm.config"))
    assert by_path.options == nvdimm.options
    assert {"nvdimm", "debug"} <= set(kconfig.fragment_names())


@pytest.mark.parametrize("spec", ["nosuch", "nosuch.config", "/nonexistent/x.config"])
def test_missing_fragment_is_one_line_usage_error(spec):
    with pytest.raises(UsageError) as e:
        load_fragment(spec)
    message = str(e.value)
    assert e.value.exit_code == EXIT_USAGE
    assert "\n" not in message
    assert "no such file" in message
    assert ("nosuch.config" in message) or ("x.config" in message)
    if spec == "nosuch":
        assert str(kconfig.FRAGMENT_DIR / "nosuch.config") in message
        assert "debug" in message and "nvdimm" in message  # what exists instead


def test_bad_fragment_names_file_and_line(tmp_path):
    bad = tmp_path / "typo.config"
    bad.write_text("# mine\nCONFIG_KASAN=y\nCONFIG_LOCKDEP = y\n")
    with pytest.raises(UsageError, match=r"typo\.config:3: not a Kconfig assignment") as e:
        load_fragment(bad)
    assert "\n" not in str(e.value)
    empty = tmp_path / "empty.config"
    empty.write_text("# nothing here\n")
    with pytest.raises(UsageError, match="no CONFIG_ options"):
        load_fragment(empty)


def test_merged_options_later_fragment_wins():
    a = kconfig.Fragment(Path("a.config"), {"X": "y", "Y": "y"})
    b = kconfig.Fragment(Path("b.config"), {"X": "n", "Z": "m"})
    assert merged_options([a, b]) == {"Y": "y", "X": "n", "Z": "m"}


# -- config_hash ---------------------------------------------------------------------------------


def test_config_hash_ignores_order_comments_and_duplicates():
    one = config_hash(["CONFIG_A=y\nCONFIG_B=m\n", "# extra\nCONFIG_C=8\n"])
    two = config_hash(["# reordered\nCONFIG_C=8\n\nCONFIG_B=m\nCONFIG_A=y\nCONFIG_A=y\n"])
    assert one == two
    assert config_hash("CONFIG_A=y") == config_hash(["CONFIG_A=y"])
    assert len(one) == 64 and int(one, 16) >= 0


def test_config_hash_sees_values_and_overrides():
    base = config_hash(["CONFIG_A=y"])
    assert config_hash(["CONFIG_A=m"]) != base
    assert config_hash(["CONFIG_A=y", "# CONFIG_A is not set"]) == \
        config_hash(["# CONFIG_A is not set"])
    assert config_hash(["CONFIG_A=y", "CONFIG_B=y"]) != base
    # A base named by a word (not a .config) still counts.
    assert config_hash(["tinyconfig", "CONFIG_A=y"]) != base
    assert config_hash(["defconfig", "CONFIG_A=y"]) != config_hash(["tinyconfig", "CONFIG_A=y"])


def test_config_hash_leaves_out_toolchain_probes():
    text = (DATA / "gup_test-no-debugfs.final.config").read_text()
    other_compiler = text.replace("12.2.0-14+deb12u1) 12.2.0", "13.2.0-1) 13.2.0").replace(
        "CONFIG_GCC_VERSION=120200", "CONFIG_GCC_VERSION=130200")
    assert other_compiler != text
    assert config_hash(other_compiler) == config_hash(text)


def test_config_hash_is_stable():
    # Pinned: the build cache is keyed by this; a change here invalidates every cached kernel.
    assert config_hash(["CONFIG_A=y\n# CONFIG_B is not set\n"]) == \
        "80ed0de1a36103e94e4261d49604834ac1c6c5a8c0875e48bd4fad1499b9245e"


def test_instrumented_and_plain_builds_are_told_apart_modular_is_not():
    nvdimm, debug, modular = (load_fragment(n) for n in ("nvdimm", "debug", "modular"))
    assert kconfig.build_flavour([nvdimm]) == "plain"
    assert kconfig.build_flavour([nvdimm, modular]) == "plain"  # =y -> =m: incremental
    assert kconfig.build_flavour([nvdimm, debug]) == "instrumented"


def test_the_nfit_configuration_gets_its_own_build_directory():
    # nfit.config turns on options half the kernel's objects depend on: sharing the plain
    # build directory made every switch (plain <-> nfit) a near-full rebuild.
    nvdimm, nfit = load_fragment("nvdimm"), load_fragment("nfit")
    flavour = kconfig.build_flavour([nvdimm, nfit])
    assert flavour.startswith("plain+") and "HIBERNATION" in flavour
    assert flavour != kconfig.build_flavour([nvdimm])
