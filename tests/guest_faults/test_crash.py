"""A guest test that panics the kernel on purpose, run by tests/e2e/test_hang.py.

sysrq-c is the kernel's own crash trigger (drivers/tty/sysrq.c sysrq_handle_crash(): a NULL
write, then panic because the oops happens with panic_on_oops set by sysrq). The test must end
as `crashed` with the panic's title, and the next test runs on a fresh guest.
"""


def test_1_kernel_panics(guest):
    guest.run("echo 1 > /proc/sys/kernel/sysrq; echo c > /proc/sysrq-trigger", timeout_s=30)


def test_2_next_test_runs_on_a_fresh_guest(guest):
    assert guest.boots == 2, f"expected one restart after the panic, boots={guest.boots}"
    assert guest.succeed("echo ok").strip() == "ok"
