"""A guest that stops answering SSH while it keeps running, driven by tests/e2e/test_faults.py
(not part of `make run`). Each must end as `timeout` no later than its deadline, and the next
test gets a fresh guest. (A frozen VM and a task stuck in the kernel: test_hang.py.)
"""

import pytest


def test_1_sshd_killed(guest):
    # Kills the listener and this very session; nvh-init restarts sshd, but the command's
    # answer can never arrive.
    guest.run("pkill -KILL -x sshd; sleep 30", timeout_s=20)
    pytest.fail("a command whose sshd was killed returned")


def test_2_network_down(guest):
    # The connection stays open on the host side; nothing comes back through it.
    guest.run("ip link set eth0 down; sleep 30", timeout_s=10)
    pytest.fail("a command on a guest without network returned")


def test_3_next_test_runs_on_a_fresh_guest(guest):
    assert guest.boots == 3, f"expected a restart after each, boots={guest.boots}"
    assert guest.succeed("echo ok").strip() == "ok"
