"""ndctl's own test suites (its `meson test`: suites dax, ndctl, cxl), one harness test per
upstream test, each inside the harness's frame: its kernel-log slice and findings (a WARN
during an upstream test fails it even when meson says OK), crash and timeout handling, a
fresh guest after a crash. Collected only by `nvdimm-harness ndctl-test` (--ndctl-src); the
source, build and judging are harness/ndctl_upstream.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.ndctl_upstream import GuestNdctl, NdctlSource, judge, select
from harness.ssh import GuestCommandTimeout

# The kernel-side test modules each suite needs (tools/testing/nvdimm and tools/testing/cxl
# of the kernel tree); the dax suite runs on any kernel (e820 and ACPI.NFIT buses).
TEST_MODULES = {"ndctl": "nfit_test", "cxl": "cxl_test"}
HOW_TO_GET = {
    "nfit_test": "build your tree with `ndctl-test --kernel-tree DIR` (it adds --config nfit "
                 "and builds tools/testing/nvdimm); a packaged kernel has none",
    "cxl_test": "build it from tools/testing/cxl of your tree (the harness's nfit config "
                "does not; 6.1's cxl_test predates ndctl v81's cxl tests)",
}


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "upstream_test" not in metafunc.fixturenames:
        return
    source = NdctlSource(Path(metafunc.config.getoption("--ndctl-src")))
    tests = select(source.tests(), metafunc.config.getoption("--ndctl-suite"))
    metafunc.parametrize("upstream_test", [
        pytest.param(t, id=f"{t.suite}/{t.name}", marks=pytest.mark.harness_id(t.test_id))
        for t in tests])


@pytest.fixture(scope="session")
def ndctl_build(request: pytest.FixtureRequest, guest) -> GuestNdctl:
    source = NdctlSource(Path(request.config.getoption("--ndctl-src")))
    build = GuestNdctl(source, guest.config.image.directory.name)
    request.config.pluginmanager.get_plugin("nvh-run-recorder").upstream = {
        "name": "ndctl", "version": source.version(), "source": str(source.path),
        "suite": request.config.getoption("--ndctl-suite"), "build_cache": str(build.entry)}
    # Built (or unpacked) here, once, so the first test's duration is its own; each test
    # checks again because a crash gives it a fresh guest without the build.
    build.ensure(guest)
    return build


class UpstreamTimeout(GuestCommandTimeout):
    """meson killed the test at its deadline: a `timeout`, with the blocked tasks' stacks
    (the frame dumps them) and a fresh guest for the next test."""

    def __init__(self, message: str):
        TimeoutError.__init__(self, message)
        self.command, self.timeout_s, self.partial_stdout = "meson test", 0.0, ""


def test_ndctl(upstream_test, guest, ndctl_build: GuestNdctl, artifacts):
    module = TEST_MODULES.get(upstream_test.suite)
    if module and guest.run(f"modinfo -n {module}", timeout_s=30).status != 0:
        pytest.skip(f"suite {upstream_test.suite} needs the {module} module, which kernel "
                    f"{guest.kernel_release} does not have: {HOW_TO_GET[module]}")
    ndctl_build.ensure(guest)
    result = ndctl_build.run(guest, upstream_test, guest.config.accel.accel == "tcg")
    artifacts.attach("ndctl-test.log", result.log)
    verdict = judge(result)
    # No duration in the observation: `compare` reads a changed observation as changed
    # behaviour (the duration is in ndctl-test.log and the record).
    artifacts.expectation("meson: OK (or SKIP, with the test's own reason)",
                          f"meson: {result.result} (exit {result.returncode})")
    if verdict.outcome == "skipped":
        pytest.skip(verdict.message)
    if verdict.outcome == "timeout":
        raise UpstreamTimeout(verdict.message)
    if verdict.outcome == "failed":
        artifacts.add_finding(verdict.finding)
        pytest.fail(verdict.message, pytrace=False)
