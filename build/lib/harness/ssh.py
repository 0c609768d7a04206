"""SSH into the guest (paramiko): commands with real deadlines, NixOS-style succeed/fail.

paramiko's own timeouts are read timeouts, not command deadlines, and recv_exit_status()
blocks forever; so every command runs under the guest's `timeout` (which also kills the
remote process) and the channel is drained in a select loop against a monotonic deadline.
"""

from __future__ import annotations

import base64
import contextlib
import logging
import select
import shlex
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import paramiko

from .errors import BootError

# paramiko logs a traceback for every refused banner while sshd is still starting.
logging.getLogger("paramiko").setLevel(logging.CRITICAL)

DEFAULT_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class CommandResult:
    command: str
    status: int
    stdout: str
    stderr: str
    duration_s: float

    def describe(self, limit: int = 2000) -> str:
        def clip(s: str) -> str:
            s = s.strip()
            return s if len(s) <= limit else "..." + s[-limit:]

        parts = [f"$ {self.command}", f"exit status {self.status} after {self.duration_s:.1f}s"]
        if self.stdout.strip():
            parts.append(f"stdout:\n{clip(self.stdout)}")
        if self.stderr.strip():
            parts.append(f"stderr:\n{clip(self.stderr)}")
        return "\n".join(parts)


class Runner(Protocol):
    """Runs a command in the guest (a Guest, a GuestShell, a unit test's scripted guest)."""

    def run(self, command: str, timeout_s: float = ...) -> CommandResult: ...


class SucceedingRunner(Runner, Protocol):
    """A Runner that also has succeed(): the command's stdout, or CommandFailed."""

    def succeed(self, command: str, timeout_s: float = ...) -> str: ...


class CommandFailed(AssertionError):
    """A guest command did not end as the test required; the message shows all of it."""

    def __init__(self, expectation: str, result: CommandResult):
        super().__init__(f"{expectation}\n{result.describe()}")
        self.result = result


class GuestCommandTimeout(TimeoutError):
    def __init__(self, command: str, timeout_s: float, partial_stdout: str = ""):
        super().__init__(f"guest command did not finish within {timeout_s:.0f}s: $ {command}")
        self.command = command
        self.timeout_s = timeout_s
        self.partial_stdout = partial_stdout


class GuestShell:
    def __init__(self, client: paramiko.SSHClient, host: str, port: int):
        self.client = client
        self.host = host
        self.port = port
        # Every deadline is multiplied by this: a debug kernel (KASAN under TCG) is slower.
        self.time_scale = 1.0

    @classmethod
    def connect(
        cls,
        port: int,
        key_file: Path,
        host_public_key: str,
        deadline: float,
        still_booting: Callable[[], str | None] = lambda: None,
        host: str = "127.0.0.1",
    ) -> GuestShell:
        """Retry until sshd answers or `deadline` (monotonic) passes.

        `still_booting` returns a reason to give up early (QEMU exited, kernel panicked).
        The host key is pinned: a different key is an error, never a prompt.
        """
        key = paramiko.Ed25519Key.from_private_key_file(str(key_file))
        key_type, key_b64 = host_public_key.split()[:2]
        pinned = paramiko.PKey.from_type_string(key_type, base64.b64decode(key_b64))
        last_error = "no attempt made"
        while True:
            reason = still_booting()
            if reason:
                raise BootError(reason)
            if time.monotonic() >= deadline:
                raise BootError(f"guest did not answer SSH in time (last error: {last_error})")
            client = paramiko.SSHClient()
            client.get_host_keys().add(f"[{host}]:{port}", key_type, pinned)
            client.set_missing_host_key_policy(paramiko.RejectPolicy())
            try:
                client.connect(host, port=port, username="root", pkey=key, timeout=5,
                               banner_timeout=10, auth_timeout=10, look_for_keys=False,
                               allow_agent=False)
            except (paramiko.BadHostKeyException, paramiko.AuthenticationException) as e:
                client.close()
                raise BootError(f"SSH login refused: {e}") from None
            except (paramiko.SSHException, OSError, EOFError) as e:
                client.close()
                last_error = f"{type(e).__name__}: {e}"
                time.sleep(0.5)
                continue
            transport = client.get_transport()
            assert transport is not None
            transport.set_keepalive(15)
            return cls(client, host, port)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.client.close()

    def run(self, command: str, timeout_s: float = DEFAULT_TIMEOUT_S) -> CommandResult:
        """Run `command` with sh in the guest; never blocks past timeout_s + a grace period
        (timeout_s scaled by time_scale)."""
        timeout_s *= self.time_scale
        transport = self.client.get_transport()
        if transport is None or not transport.is_active():
            raise ConnectionError("SSH connection to the guest is closed")
        # The guest-side timeout kills the command (and its group) so nothing keeps running.
        wrapped = (f"timeout -k 5 {max(1, int(timeout_s))} sh -c {shlex.quote(command)}")
        start = time.monotonic()
        deadline = start + timeout_s + 15
        try:
            chan = transport.open_session(timeout=10)
        except paramiko.SSHException as e:
            if "Timeout" in str(e):
                # The connection is up but the guest does not answer: it hangs.
                raise GuestCommandTimeout(command, timeout_s) from e
            raise ConnectionError(f"cannot open an SSH channel to the guest: {e}") from e
        out: list[bytes] = []
        err: list[bytes] = []
        try:
            chan.exec_command(wrapped)
            while True:
                if chan.recv_ready():
                    out.append(chan.recv(65536))
                    continue
                if chan.recv_stderr_ready():
                    err.append(chan.recv_stderr(65536))
                    continue
                if chan.exit_status_ready() and chan.eof_received:
                    break
                if chan.closed or not transport.is_active():
                    # Closed without EOF: the connection itself went away (QEMU killed,
                    # sshd killed in the guest). Waiting for the deadline would tell nothing.
                    raise ConnectionError(f"SSH connection to the guest was lost after "
                                          f"{time.monotonic() - start:.1f}s: $ {command}")
                if time.monotonic() > deadline:
                    raise GuestCommandTimeout(command, timeout_s,
                                              b"".join(out).decode(errors="replace"))
                select.select([chan], [], [], 0.5)
            # Drain what arrived between the last recv and the exit status.
            while chan.recv_ready():
                out.append(chan.recv(65536))
            while chan.recv_stderr_ready():
                err.append(chan.recv_stderr(65536))
            status = chan.recv_exit_status()
        except TimeoutError as e:
            raise GuestCommandTimeout(command, timeout_s) from e
        finally:
            chan.close()
        result = CommandResult(command, status, b"".join(out).decode(errors="replace"),
                               b"".join(err).decode(errors="replace"),
                               time.monotonic() - start)
        if status == 124:
            raise GuestCommandTimeout(command, timeout_s, result.stdout)
        return result

    def succeed(self, command: str, timeout_s: float = DEFAULT_TIMEOUT_S) -> str:
        result = self.run(command, timeout_s)
        if result.status != 0:
            raise CommandFailed("guest command failed:", result)
        return result.stdout

    def fail(self, command: str, timeout_s: float = DEFAULT_TIMEOUT_S) -> CommandResult:
        result = self.run(command, timeout_s)
        if result.status == 0:
            raise CommandFailed("guest command succeeded but was expected to fail:", result)
        return result

    def upload(self, local: Path, remote: str, mode: int = 0o644) -> None:
        with self.client.open_sftp() as sftp:
            sftp.put(str(local), remote)
            sftp.chmod(remote, mode)

    def download(self, remote: str, local: Path) -> None:
        with self.client.open_sftp() as sftp:
            sftp.get(remote, str(local))
