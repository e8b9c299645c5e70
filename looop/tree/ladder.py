"""The stop ladder as data and two pure steps (STYLE 4, OTP's shutdown).

    ask       CONT+HUP+TERM to the command's group; wait the grace
    kill      SIGKILL the group and every descendant; wait FINAL for the reap
    give up   no proof came (a process in D state): report it, move on

The worker child walks it (tree/child.py: `ask` on each stop request,
`escalate` when the rung's deadline passes); the root bounds a whole
shutdown by `bound(grace)`, and `looop systemd` sets TimeoutStopSec above
it. Times are time.monotonic() seconds.
"""
from __future__ import annotations

from typing import NamedTuple

FINAL = 2.0         # after SIGKILL, wait this long for the reap
ORPHAN_GRACE = 1.0  # root gone: HUP/TERM, then SIGKILL after this (SPEC: all gone in 2 s)

ASKED, KILLED = "asked", "killed"


class Rung(NamedTuple):
    name: str        # ASKED (the graceful signal went) or KILLED (SIGKILL went)
    deadline: float  # when to take the next step


def ask(rung: Rung | None, now: float, grace: float) -> Rung:
    """A stop request (the caller sends the graceful signal). Another
    request never moves the ladder back or its deadline later: asked twice,
    the earlier deadline holds; past SIGKILL, it stays there."""
    if rung is None:
        return Rung(ASKED, now + grace)
    if rung.name == ASKED:
        return Rung(ASKED, min(rung.deadline, now + grace))
    return rung


def escalate(rung: Rung, now: float) -> tuple[Rung | None, str | None]:
    """The rung's deadline passed: (next rung, what to send now). From ASKED:
    SIGKILL ("kill") and wait FINAL. From KILLED: (None, None), give up."""
    if rung.name == ASKED:
        return Rung(KILLED, now + FINAL), "kill"
    return None, None


def bound(grace: float) -> float:
    """The longest a ladder with `grace` takes, from the request to giving up."""
    return grace + FINAL
