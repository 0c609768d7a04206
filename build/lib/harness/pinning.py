"""Pinning DAX pages like RDMA does, and the kernel's pin accounting (workload family 2).

nvh-pin (guest-images/workloads/nvh-pin.c) pins a buffer with vmsplice, io_uring fixed
buffers, an rxe memory region or gup_test and prints what the kernel answered; this module
builds its command lines, holds pins in the background (PinHolder) for the removal tests,
reads the FOLL_PIN counters and judges observations against testcases/expectations/pin.yaml.
The judging and parsing functions are pure.
"""

from __future__ import annotations

import re
import shlex
from typing import TYPE_CHECKING, Any

from .checks import Check, completed, result, unobserved
from .expectations import Vocabulary, parse_count_rule, v_exact, v_result, v_rule
from .guest_process import GuestProcess
from .workload import debug_hooks_prefix

if TYPE_CHECKING:
    from .ssh import Runner

METHODS = ("vmsplice", "io_uring", "rdma", "gup_test-basic", "gup_test-fast",
           "gup_test-longterm")

# Keys of testcases/expectations/pin.yaml, judged by pin_checks().
VOCABULARY: Vocabulary = {
    # ok, refused (the interface reports no errno: gup_test), or refused with {errno: E...}
    "pin": lambda v: None if v == "refused" else v_result("pin", "ok")(v),
    "verify": v_exact("verify"),
    # pages counted in nr_foll_pin_acquired while the pin is taken: FOLL_PIN users
    # (pin_user_pages*) count, FOLL_GET users (vmsplice, 6.1's O_DIRECT) do not.
    "foll_pin_acquired": v_rule("foll_pin_acquired"),
    # the same for nr_foll_pin_released over the pin command (pins taken and dropped in
    # the one call: gup_test, or a pin refused after it was taken)
    "foll_pin_released": v_rule("foll_pin_released"),
}


# ---------------------------------------------------------------------- pin accounting

_VMSTAT_RE = re.compile(r"^nr_foll_pin_(acquired|released)\s+(\d+)\s*$", re.MULTILINE)
# The counters are per-cpu batched: without a refresh they are off by dozens.
READ_PIN_COUNTERS = ("echo 1 > /proc/sys/vm/stat_refresh 2>/dev/null; "
                     "grep ^nr_foll_pin_ /proc/vmstat")


def parse_pin_counters(vmstat: str) -> dict[str, int]:
    """{"acquired": N, "released": M} from /proc/vmstat text ({} without the counters)."""
    return {k: int(v) for k, v in _VMSTAT_RE.findall(vmstat)}


def vmstat_pins(guest: Runner) -> dict[str, int]:
    return parse_pin_counters(guest.run(READ_PIN_COUNTERS, timeout_s=30).stdout)


def pin_delta(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    if not before or not after:
        return {}
    return {k: after[k] - before[k] for k in ("acquired", "released")}


def pin_leak_message(before: dict[str, int], after: dict[str, int]) -> str:
    """'' when every FOLL_PIN taken was released again, else the numbers."""
    d = pin_delta(before, after)
    if not d or d["acquired"] == d["released"]:
        return ""
    return (f"FOLL_PIN leak: {d['acquired']} pages pinned but {d['released']} released during "
            f"the test (/proc/vmstat nr_foll_pin_acquired {before['acquired']} -> "
            f"{after['acquired']}, nr_foll_pin_released {before['released']} -> "
            f"{after['released']}, read after vm.stat_refresh)")


# ------------------------------------------------------------------------ the workload

def pin_command(buffer: str, method: str, size: int, *, hold: bool = False,
                **extra: str | int) -> str:
    """nvh-pin command line; `method` as in METHODS ("gup_test-fast" -> --gup-test fast)."""
    base, _, sub = method.partition("-")
    args = [*debug_hooks_prefix(), "nvh-pin", "--buffer", buffer, "--method", base,
            "--size", str(size)]
    if sub:
        args += ["--gup-test", sub]
    if hold:
        args.append("--hold")
    for key, value in extra.items():
        args += [f"--{key.replace('_', '-')}", str(value)]
    return shlex.join(args)


def _pin_text(pin: dict[str, Any] | None) -> str:
    if not pin:
        return "no pin attempted"
    if pin.get("ok"):
        return "pinned"
    return f"refused {pin.get('errno') or '(no errno reported, ret ' + str(pin.get('ret')) + ')'}"


def describe_pin(observed: dict[str, Any], delta: dict[str, int] | None = None) -> str:
    parts = [_pin_text(observed.get("pin"))]
    verify = observed.get("verify")
    if verify is not None:
        parts.append("data read back exact" if verify.get("ok")
                     else f"data read back differs ({verify.get('mismatches')} bytes)")
    if delta:
        parts.append(f"nr_foll_pin_acquired +{delta['acquired']}, released "
                     f"+{delta['released']}")
    if observed.get("error"):
        parts.append(f"error: {observed['error']}")
    return ", ".join(parts)


def pin_checks(observed: dict[str, Any], expect: dict[str, Any],
               delta: dict[str, int] | None = None) -> list[Check]:
    """Every comparison of an nvh-pin observation (and the FOLL_PIN counter delta around
    it) with `expect`, held or not. The counters are judged for refused pins as well: a
    pin that is refused after pin_user_pages() succeeded (io_uring's VMA check on < 6.5)
    moves both counters by the same amount, one refused up front moves neither."""
    out: list[Check] = [completed(observed)]
    pin = observed.get("pin") or {}
    want = expect.get("pin")
    if want == "ok" or isinstance(want, dict):
        out.append(result("pin", want, "the kernel pins the pages", bool(pin.get("ok")),
                          pin.get("errno"), _pin_text(pin), key="pin"))
    elif want == "refused":
        out.append(Check("pin", "refused", _pin_text(pin), not pin.get("ok"), key="pin"))
    if expect.get("verify") == "exact" and want == "ok":
        verify = observed.get("verify") or {}
        out.append(Check("data through the pin", "byte-exact",
                         "byte-exact" if verify.get("ok") else
                         f"{verify.get('mismatches', '?')} bytes differ" if verify
                         else "not verified (nothing was pinned)" if not pin.get("ok")
                         else "not verified", bool(verify.get("ok")), key="verify"))
    for key, counter in (("foll_pin_acquired", "acquired"), ("foll_pin_released", "released")):
        if key not in expect:
            continue
        rule = parse_count_rule(expect[key])
        if not delta:
            out.append(Check(f"nr_{key}", rule.text, "no counters in /proc/vmstat", False,
                             key=key))
            continue
        out.append(Check(f"nr_{key}", rule.text, f"+{delta[counter]} during the pin",
                         rule.holds(delta[counter]), key=key))
    return out + unobserved(expect, out, "pin.yaml")


class PinHolder:
    """nvh-pin --hold in the background: pin, then touch / release on request.

    Signals (nvh-pin's protocol): SIGUSR1 touch every page of the mapping and report,
    SIGUSR2 release the pins and exit.
    """

    def __init__(self, guest: Runner, command: str):
        self.proc = GuestProcess(guest, command, tag="nvh-pin")
        self.pinned: dict[str, Any] | None = None

    def start(self, limit_s: float = 120) -> dict[str, Any]:
        """The "pinned" event, or the final report when the pin was refused."""
        self.proc.start()
        event = self.proc.wait_for_line(
            lambda o: o.get("event") == "pinned" or o.get("program") == "nvh-pin", limit_s)
        if event is None:
            raise AssertionError(f"nvh-pin did not report a pin within {limit_s:.0f}s: "
                                 f"{self.proc.stderr()[-2000:]}")
        self.pinned = event if event.get("event") == "pinned" else None
        return event

    def touch(self, limit_s: float = 60) -> dict[str, Any] | None:
        """Touch every page; None if the holder did not answer in time (stuck in the kernel)."""
        return self.proc.request("USR1", "touched", limit_s)

    def release(self, limit_s: float = 60) -> dict[str, Any]:
        """Release and exit. {"exited": bool, "state", "stacks", "final": {...}|None}."""
        self.proc.signal("USR2")
        exited = self.proc.wait(limit_s)
        outcome: dict[str, Any] = {"exited": exited, "elapsed_s": round(self.proc.elapsed_s(), 1)}
        if not exited:
            outcome["state"] = self.proc.state()
            outcome["stacks"] = self.proc.stacks()
        finals = [o for o in self.proc.json_lines() if o.get("program") == "nvh-pin"]
        outcome["final"] = finals[-1] if finals else None
        released = [o for o in self.proc.json_lines() if o.get("event") == "released"]
        outcome["released"] = released[-1] if released else None
        return outcome

    def cleanup(self) -> None:
        self.proc.cleanup()


class PinAccounting:
    """FOLL_PIN balance over a test: every pin the kernel took was released again."""

    def __init__(self, guest: Runner):
        self.guest = guest
        self.before: dict[str, int] = {}

    def begin(self) -> None:
        self.before = vmstat_pins(self.guest)

    def leak(self) -> str:
        after = vmstat_pins(self.guest)
        return pin_leak_message(self.before, after)
