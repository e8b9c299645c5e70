"""The pulse's stop request (SIGTERM/SIGHUP, sent by its child on shutdown).

The handler only records (STYLE 7, as the root does): a flag, and one byte
into a pipe whose read end then stays readable for good. Every blocking wait
of the pulse's main thread — the sensors' pipes, a runner's output and exit,
a link call's reply, the sleep between beats — selects on `fd()` as well, so it ends at once; it
then raises `Shutdown` through `check()`, at that known point, and the
`finally` blocks kill its command's process group. Code between waits (a
file write, a journal append) is never cut in the middle.

Before `install` (a plain import, `looop tick` under test) nothing is
recorded and `fd()` is None: the waits are then plain timed waits.
"""
from __future__ import annotations

import os
import select
import signal
from typing import Any


class Shutdown(BaseException):
    """Raised at a safe point once a stop was asked (not an Exception: no
    `except Exception` in a beat may swallow it)."""


_asked: list[int] = []
_pipe: list[int] = []  # [read end, write end] once installed


def install() -> None:
    """Route SIGTERM/SIGHUP to the recorder (once per process)."""
    if not _pipe:
        _pipe.extend(os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC))
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _on_signal)


def _on_signal(signum: int, _frame: Any) -> None:
    # record only. The first signal counts (the child sends SIGHUP and
    # SIGTERM together); the byte is never read back, so fd() stays readable.
    if not _asked:
        _asked.append(signum)
        if _pipe:
            try:
                os.write(_pipe[1], b"x")
            except OSError:
                pass  # (a full pipe is readable already)


def requested() -> bool:
    return bool(_asked)


def fd() -> int | None:
    """Readable once a stop was asked (None before `install`)."""
    return _pipe[0] if _pipe else None


def check() -> None:
    """A safe point: raise Shutdown if a stop was asked."""
    if _asked:
        raise Shutdown(_asked[0])


def wait(fds: list[int], timeout: float, stoppable: bool = True) -> list[int]:
    """Block up to `timeout` for one of `fds` to be readable (none: a plain
    sleep); returns those ready. Stoppable: also ends on a stop request, by
    raising Shutdown (a cleanup wait passes False and runs its course)."""
    if stoppable:
        check()
    watch = fds + _pipe[:1] if stoppable else fds
    ready = select.select(watch, [], [], max(0.0, timeout))[0]
    if stoppable:
        check()
    return [f for f in ready if f in fds]
