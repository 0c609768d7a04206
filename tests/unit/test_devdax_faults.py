"""Counting device-dax faults by page-table level from dev_dax_huge_fault()'s debug line
(issue 14 item 7: devdax-2M is shown to map PMDs, not assumed)."""

from harness.devdax_faults import FaultCapture, count_faults, fault_checks

MAP = 0x7F0000000000
# The format of drivers/dax/device.c dev_dax_huge_fault() in 6.1 (dev_dbg, with the
# device's driver and name in front), a seeding mapping at the same address before the
# case's own, then the case's faults.
LOG = "\n".join([
    f"[  10.1] device_dax dax0.0: nvh-odirect: write ({MAP:#x} - {MAP + (2 << 20):#x}) "
    "size = 1",
    f"[  10.2] nvh-odirect: case mapping {MAP:#x} len 2097152",
    f"[  10.3] device_dax dax0.0: nvh-odirect: write ({MAP:#x} - {MAP + (2 << 20):#x}) "
    "size = 1",
    "[  10.4] device_dax dax0.0: other: read (0x7f1000000000 - 0x7f1000200000) size = 0",
])


def test_only_the_case_mappings_faults_after_its_announcement_count():
    assert count_faults(LOG, MAP) == {"pte": 0, "pmd": 1, "pud": 0, "lines": 2}
    assert count_faults(LOG) == {"pte": 1, "pmd": 2, "pud": 0, "lines": 3}


def test_a_pte_fault_on_devdax_2m_fails_the_check():
    expect = {"devdax_pmd_faults": 1, "devdax_pte_faults": 0}
    obs = {"map_addr": f"{MAP:#x}"}
    assert all(c.ok for c in fault_checks(FaultCapture(log=LOG, enabled=True), obs, expect))
    fell_back = LOG + f"\n[  10.5] device_dax dax0.0: nvh-odirect: read ({MAP:#x} - " \
        f"{MAP + (2 << 20):#x}) size = 0"
    [pmd, pte] = fault_checks(FaultCapture(log=fell_back, enabled=True), obs, expect)
    assert pmd.ok and not pte.ok and pte.observed.startswith("1 ")


def test_no_debug_lines_is_not_a_pass():
    """A kernel whose line changed format (v6.6's order) or without dynamic debug must
    not pass silently."""
    [c] = fault_checks(FaultCapture(log="", enabled=True), {"map_addr": f"{MAP:#x}"},
                       {"devdax_pte_faults": 0})
    assert not c.ok and "no dev_dax_huge_fault debug lines" in c.observed


def test_faults_after_the_case_mapping_is_gone_do_not_count():
    """read-readonly (seen on 6.1.0-57): the read-only case mapping is unmapped, then the
    range is read back through a new mapping the kernel placed at the same address."""
    log = LOG + f"\n[  10.6] nvh-odirect: case mapping {MAP:#x} unmapped\n" \
        f"[  10.7] device_dax dax0.0: nvh-odirect: read ({MAP:#x} - {MAP + (2 << 20):#x}) " \
        "size = 1"
    assert count_faults(log, MAP)["pmd"] == 1


def test_real_61_fork_cell_parent_and_child_each_fault_one_pmd():
    """Captured from Debian 6.1.0-57 (devdax-2M-mem-fork-2M): the seeding mapping's fault
    at the same address comes before the announcement and does not count."""
    from pathlib import Path
    data = Path(__file__).resolve().parents[1] / "data" / "devdax"
    log = (data / "real-6.1-devdax-2M-fork-faults.log").read_text()
    assert count_faults(log, 0x7FAB17000000) == {"pte": 0, "pmd": 2, "pud": 0, "lines": 2}
    # read-readonly, before nvh-odirect said when the case mapping is gone: the read-back
    # mapping at the same address made it 2 (the 6.1 run that showed the problem)
    log = (data / "real-6.1-devdax-2M-read-readonly-faults.log").read_text()
    assert count_faults(log, 0x7F2A59A00000)["pmd"] == 2


# The v6.6+ format (6.12's drivers/dax/device.c): fault address aligned to the fault's size
# and its order, shaped as Debian's 6.12.117 printed it for read-untouched-2M-unaligned (a
# 4 MiB mapping: the seeding mapping's faults first, then the case's, one PMD per half).
LOG_6_12 = "\n".join([
    f"[  16.6] device_dax dax0.0: nvh-odirect: op=write addr={MAP:#x} order=9",
    f"[  16.7] nvh-odirect: case mapping {MAP:#x} len 4194304",
    f"[  16.9] device_dax dax0.0: nvh-odirect: op=write addr={MAP:#x} order=9",
    f"[  16.9] device_dax dax0.0: nvh-odirect: op=write addr={MAP + (2 << 20):#x} order=9",
    f"[  17.0] device_dax dax0.0: nvh-odirect: op=read addr={MAP + (4 << 20):#x} order=0",
    f"[  17.1] nvh-odirect: case mapping {MAP:#x} unmapped",
    f"[  17.2] device_dax dax0.0: nvh-odirect: op=write addr={MAP:#x} order=0",
])


def test_the_order_format_counts_faults_inside_the_case_mapping():
    assert count_faults(LOG_6_12, MAP) == {"pte": 0, "pmd": 2, "pud": 0, "lines": 3}
    assert count_faults(LOG_6_12) == {"pte": 2, "pmd": 3, "pud": 0, "lines": 5}
