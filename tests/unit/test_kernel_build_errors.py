"""A build failure names the compiler's error even when make -j kept printing after it."""

import sys

import pytest

from harness import progress
from harness.kernel import _BuildFailed, _run

# What make -j2 looks like when one job fails: the error, then the other job's output.
SCRIPT = r"""
import sys
print("  CC      drivers/nvdimm/pmem.o")
print('drivers/nvdimm/pmem.c:470:2: error: #error "nvdimm-harness deliberate build failure"')
for i in range(200):
    print(f"  CC      net/ipv6/file{i}.o")
print("make[2]: *** [Makefile:2065: .] Error 2")
sys.exit(2)
"""


def test_compiler_error_survives_a_long_parallel_tail():
    with progress.step("build") as step, pytest.raises(_BuildFailed) as e:
        _run([sys.executable, "-c", SCRIPT], step, "kernel build")
    assert any("deliberate build failure" in d for d in e.value.diagnostics)
    assert not any("deliberate" in t for t in e.value.tail)  # it did scroll out of the tail
