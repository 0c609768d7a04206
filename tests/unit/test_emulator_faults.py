"""harness.emulator_faults: the kernel log's evidence of a stale-code loop in the emulator."""

from kmsg_data import body

from harness.emulator_faults import stale_int3_loop

LOG = "\n".join(body("real-tcg-stale-int3-own-6.1.192.log"))


def test_the_real_capture_names_the_cpu_the_site_and_the_byte():
    found = stale_int3_loop(LOG)
    assert "CPU 0 trapped 2 times on an int3 at __schedule+0x228/0x7d0" in found
    assert "RIP - 1 and RIP hold 0xe9 0x39, no 0xcc" in found


def test_one_trap_is_a_race_a_real_cpu_can_have_not_a_loop():
    # kprobes: "the breakpoint instruction was removed right after we hit it", once
    assert stale_int3_loop(LOG, min_traps=3) == ""
    first = LOG[:LOG.index("soft lockup - CPU#1 stuck for 52s")]
    assert stale_int3_loop(first) == ""


def test_an_int3_that_is_still_in_memory_is_a_real_breakpoint():
    assert stale_int3_loop(LOG.replace("02 e9 <39>", "02 cc <39>")) == ""


def test_a_trap_frame_whose_ip_was_already_rewound_onto_the_int3_counts_too():
    """The NMI may catch the vCPU after kprobe_int3_handler() moved the IP back onto the
    int3: RIP then points at the (non-0xcc) byte itself. Seen on Debian 6.1.0-57."""
    rewound = LOG.replace("__schedule+0x228/0x7d0", "__schedule+0x227/0x7d0") \
                 .replace("02 e9 <39> 01", "02 <e9> 39 01")
    assert "trapped 2 times on an int3 at __schedule+0x227/0x7d0" in stale_int3_loop(rewound)
