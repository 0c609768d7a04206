"""Errors that end a command, each mapped to the exit code DESIGN.md promises."""

EXIT_OK = 0
EXIT_TEST_FAILED = 1
EXIT_USAGE = 2
EXIT_INFRA = 3
EXIT_SIGINT = 130
EXIT_SIGTERM = 143


class HarnessError(Exception):
    """Base: a message meant for a person, printed as one line."""

    exit_code = EXIT_INFRA


class UsageError(HarnessError):
    """Bad input: profile, path, option, patch. Exit 2."""

    exit_code = EXIT_USAGE


class InfraError(HarnessError):
    """The machinery failed: QEMU would not start, image build failed, guest never came up."""

    exit_code = EXIT_INFRA


class BootError(InfraError):
    """The guest did not reach SSH; carries the console tail for the report."""

    def __init__(self, message: str, console_tail: str = ""):
        super().__init__(message)
        self.console_tail = console_tail


class PreconditionNotMet(Exception):
    """A guest test could not set up the situation it tests (the I/O was not in flight when
    the device went away): nothing was tested, so the test is `error`, never `passed`."""
