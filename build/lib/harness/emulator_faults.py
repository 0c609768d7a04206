"""Evidence in a kernel log that the emulator went wrong, not the kernel. Pure.

Seen under QEMU 7.2 TCG (multi-threaded, 2 vCPUs) on Debian's and the harness's own 6.1:
one vCPU patches kernel text (text_poke_bp(): a static key or tracepoint flipped, e.g. by
KVM_CREATE_VCPU or by enabling an fs_dax tracepoint) and waits in smp_call_function for the
other; the other keeps trapping on the int3 the patch wrote a moment ago although memory
already holds the final instruction: kprobe_int3_handler() sees no int3 there ("removed
right after we hit it"), rewinds the IP and returns, and the vCPU executes its stale
translation of the old bytes again, for ever, with interrupts off. The kernel log shows it
only in the NMI backtraces of that vCPU (softlockup_all_cpu_backtrace): int3 trap frames
whose RIP - 1 and RIP both hold something else than 0xcc. Reproduced at will on Debian's
6.1.0-57 by flipping the sched_switch tracepoint (a jump label in __schedule) from one vCPU
while the other context-switches: the first few hundred flips hang the guest. A real CPU
cannot keep executing bytes that are no longer in memory, so a soft lockup with this
evidence is the emulator's fault.
"""

from __future__ import annotations

import re

# The findings (harness.kmsg kinds) a wedged vCPU causes: only then is the log searched.
SYMPTOMS = ("soft_lockup", "hard_lockup", "rcu_stall", "hung_task")

_LINE = re.compile(r"^(?:\[\s*\d+\.\d+\]\s*)?(?:\[\s*[CT]\d+\]\s*)?(.*)$")
_RIP = re.compile(r"^RIP: 0010:(\S+)")
# Code: ... b1 b2 <b3> ...: b3 is the byte at RIP, b2 the one before it.
_CODE = re.compile(r"^Code: (?:[0-9a-f]{2} )*([0-9a-f]{2}) <([0-9a-f]{2})>")


def stale_int3_loop(log: str, min_traps: int = 2) -> str:
    """'' or what the log shows: a CPU trapping again and again (>= min_traps NMI
    backtraces) on an int3 at an address whose memory holds another byte."""
    lines = [_LINE.match(raw).group(1).strip() for raw in log.splitlines()]
    sites: dict[str, tuple[int, str, str, str]] = {}  # function -> (traps, rip, byte, cpu)
    cpu = "?"
    for i, line in enumerate(lines):
        if line.startswith("NMI backtrace for cpu"):
            cpu = line.split()[-1]
        if not line.startswith("asm_exc_int3"):
            continue
        # The interrupted context's registers follow the trap frame.
        rip = next((m.group(1) for m in map(_RIP.match, lines[i + 1:i + 3]) if m), None)
        code = next((m for m in map(_CODE.match, lines[i + 1:i + 4]) if m), None)
        # The int3 is at RIP - 1 until kprobe_int3_handler() rewinds the IP onto it: a
        # real one shows 0xcc at one of the two.
        if rip is None or code is None or "cc" in (code.group(1), code.group(2)):
            continue
        function = rip.split("+")[0]
        pair = f"0x{code.group(1)} 0x{code.group(2)}"
        traps, first, byte, _ = sites.get(function, (0, rip, pair, ""))
        sites[function] = (traps + 1, first, byte, cpu)
    stale = [(n, rip, byte, c) for n, rip, byte, c in sites.values() if n >= min_traps]
    if not stale:
        return ""
    n, rip, byte, c = max(stale)
    return (f"emulator fault, not a kernel bug: CPU {c} trapped {n} times on an int3 at "
            f"{rip} that memory no longer holds (RIP - 1 and RIP hold {byte}, no 0xcc; "
            "kernel text patched by the other CPU, which waits for it in "
            "smp_call_function): QEMU TCG kept executing its stale translation of the old "
            "bytes")
