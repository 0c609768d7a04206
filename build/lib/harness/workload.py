"""What the workload families share: their JSON output and the debug hooks.

The workloads (guest-images/workloads/) only observe and print JSON; whether an observation
is right is decided by each family's module (harness.odirect, harness.pinning,
harness.removal), against an expectation from a table in testcases/ that names its kernel
source. The judging functions are pure, so a corrupted byte, a wrong errno or a missing
event are shown to be caught by unit tests without a guest.
"""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .ssh import CommandResult, Runner


class WorkloadOutputError(AssertionError):
    pass


def parse_output(stdout: str, command: str) -> dict[str, Any]:
    try:
        data = json.loads(stdout)
    except json.JSONDecodeError as e:
        raise WorkloadOutputError(f"{command}: output is not JSON ({e}):\n{stdout[:2000]}") \
            from None
    if not isinstance(data, dict):
        raise WorkloadOutputError(f"{command}: expected a JSON object, got {stdout[:200]}")
    return data


def workload_result(result: CommandResult, command: str,
                    json_lines: bool = False) -> dict[str, Any]:
    """A workload's JSON observation from its command result. Exit 0 and 1 both carry the
    JSON (1: a step could not run); anything else raises WorkloadOutputError with the
    whole result. json_lines: the program prints one object per line (events, then the
    report): the report is the last line."""
    if result.status not in (0, 1):
        raise WorkloadOutputError(f"{command}: exit status {result.status} "
                                  f"(0 or 1 expected)\n{result.describe()}")
    text = result.stdout.strip()
    return parse_output(text.splitlines()[-1] if json_lines and text else text, command)


def run_workload(guest: Runner, command: str, timeout_s: float,
                 json_lines: bool = False) -> dict[str, Any]:
    return workload_result(guest.run(command, timeout_s), command, json_lines)


# The workloads' self-test hooks (guest-images/workloads/README.md): set on the host, they
# are passed to every workload command in the guest, so that a run can prove end to end that
# a corrupted byte fails its test (tests/e2e/test_run.py).
DEBUG_HOOKS = ("NVH_ODIRECT_CORRUPT", "NVH_PIN_CORRUPT")


def debug_hooks_prefix() -> list[str]:
    """['env', 'NVH_ODIRECT_CORRUPT=1'] when the host sets a hook, else []."""
    hooks = [f"{name}={os.environ[name]}" for name in DEBUG_HOOKS if os.environ.get(name)]
    return ["env", *hooks] if hooks else []

