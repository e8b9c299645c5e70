"""A full data dir (ENOSPC, EDQUOT) is a condition to report and ride out,
never a crash: a user who fills the disk must find the tree still up, saying
why it is not writing, and writing again once there is room.

`tolerate` runs a write and, if the disk is full, notes why and carries on;
the pulse takes the notes once per beat (`take`) and reports the condition
once per episode (looop.pulse.loop). `low` is the cheap statvfs check that
keeps a beat from paying for a decision it could not record.
"""
from __future__ import annotations

import errno
import os
from typing import Any, Callable

FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
LOW = 64 << 10   # below this many free bytes the data dir counts as full

_noted: list[str] = []  # this process's full-disk failures since the last take()


def is_full(e: BaseException) -> bool:
    return isinstance(e, OSError) and e.errno in FULL_ERRNOS


def why(e: OSError) -> str:
    name = os.path.basename(e.filename) if isinstance(e.filename, str) else ""
    return f"{name + ': ' if name else ''}{e.strerror or e}"


def note(e: OSError) -> None:
    if len(_noted) < 16:
        _noted.append(why(e))


def take() -> list[str]:
    """The full-disk failures noted since the last call (and forget them)."""
    out = list(_noted)
    _noted.clear()
    return out


def tolerate(fn: Callable[..., Any], *args: Any, **kw: Any) -> bool:
    """Run one write; on a full disk note it and return False (other errors raise)."""
    try:
        fn(*args, **kw)
    except OSError as e:
        if not is_full(e):
            raise
        note(e)
        return False
    return True


def free(d: str) -> int | None:
    """Bytes available to us on the data dir's filesystem (None if unknown)."""
    try:
        st = os.statvfs(d)
    except OSError:
        return None
    return st.f_bavail * st.f_frsize


def low(d: str) -> str | None:
    """Why the data dir counts as full right now, or None."""
    n = free(d)
    return f"{n} bytes free on {d}" if n is not None and n < LOW else None
