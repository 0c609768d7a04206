"""DAX mappings as the buffer of O_DIRECT I/O: the use case of the DAX-GUP series.

The kernel must fault in and get_user_pages() the DAX pages of a never-touched mapping
(mm/gup.c: devmap PTE/PMD handling, get_dev_pagemap(); since v4.5), and move every byte.
"""

import json

import pytest

from harness.qemu import SCRATCH_DISK_IN_GUEST as SCRATCH_DISK
from harness.sizes import MiB
from harness.workload import check_odirect, describe_observation, odirect_command, parse_output

FULL_AND_EXACT = {"transfer": "full", "compare": "exact"}
SOURCE = "mm/gup.c, fs/dax.c (DAX-GUP, v4.5+); ndctl test/dax-pmd.c cases 0 and 4"


@pytest.mark.parametrize("case", ["write-untouched", "read-untouched"])
def test_odirect_fsdax_ext4_untouched_mapping(guest, fsdax_ext4, artifacts, case):
    command = odirect_command(f"file:{fsdax_ext4.path('buffer')}", SCRATCH_DISK, case, 4 * MiB)
    observed = parse_output(guest.succeed(command), command)
    artifacts.attach("workload.json", json.dumps(observed, indent=2) + "\n")
    artifacts.expectation(f"all 4 MiB moved, byte-exact ({SOURCE})",
                          describe_observation(observed))
    mismatches = check_odirect(observed, FULL_AND_EXACT)
    assert not mismatches, "\n".join(map(str, mismatches))
