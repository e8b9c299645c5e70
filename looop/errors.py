"""Typed errors, mapped to exit codes only at the CLI edge."""


class LooopError(Exception):
    """A user-facing failure: one clear line, exit 1."""

    exit_code = 1


class UsageError(LooopError):
    """Bad arguments, bad ids, unknown verbs."""


class NotRunning(LooopError):
    """The operation needs a live tree (or a live session) and there is none."""


class AlreadyRunning(LooopError):
    """Another root holds the lock of this data dir."""


class Timeout(LooopError):
    """`wait`, `expect`, `wait-idle` ran out of time (exit 124)."""

    exit_code = 124


class BadInput(LooopError):
    """A file or message that does not parse or validate."""
