"""Steering that checks it landed (SPEC §15): type a line into a live worker
as a paste, press Enter only once the paste is on its screen, and — verified
— confirm that the screen or the activity moved afterwards.

Shared by `looop send` and the pulse's `steer_session`; both pass their own
`call(op, **args)` (the control socket, or the pulse's link), so this module
never reaches the tree except through those ops (`input`, `shot`).
Blocks up to about 2 × `timeout`, polling every POLL seconds.

The last send is recorded (sessions.write_sent: the log offset once the
Enter went in, and the text) so `expect` right after it never matches inside
the echo of the text just sent.
"""
from __future__ import annotations

import time
from typing import Any, Callable

from looop.errors import LooopError

Call = Callable[..., dict[str, Any]]
POLL = 0.05          # s between polls, once the first few quick ones found nothing
ECHO_MAX = 2.0        # wait at most this long for the paste to show before pressing Enter


class NotAccepted(LooopError):
    """`send --verify`: neither the screen nor the activity moved."""


def _screen(call: Call, sid: str) -> tuple[str, Any]:
    snap = call("shot", id=sid)["screen"]
    return "\n".join(ln.rstrip() for ln in snap["lines"]), (snap["cursor"]["x"], snap["cursor"]["y"])


def on_screen(text: str, screen: str) -> bool:
    """Is (the end of) `text` visible? Whitespace and wrapping ignored: an
    input box may wrap or cut a long line, so the last 24 characters count."""
    want = "".join(text.split())[-24:]
    return bool(want) and want in "".join(screen.split())


def deliver(call: Call, sid: str, text: str, *, enter: bool = True, verify: bool = False,
            timeout: float = 5.0, activity: Callable[[], str | None] = lambda: None,
            sent: Callable[[str | None, int], None] | None = None,
            paste: Callable[[], None] | None = None) -> dict[str, Any]:
    """Paste `text`, wait (≤ ECHO_MAX) for it on the screen, then Enter.

    Returns {"delivered", "echoed", "activity_after"}. With `verify`, raises
    NotAccepted unless the screen or the activity changed within `timeout`
    of the Enter. `activity()` reads the worker's activity state; `sent(text,
    row)` records the send (and the screen row it was typed on) for `expect`;
    `paste()`, if given, types the text instead of one `input` op (the CLI
    cuts a big text into frames)."""
    # the screen and the activity before the paste only matter to `verify`:
    # without it the paste is the first op (what a `send` costs until its first byte)
    before, act_before = (_screen(call, sid)[0], activity()) if verify else (None, None)
    if paste is None:
        call("input", id=sid, data=text, how="paste")  # bracketed by the child if the program asked
    else:
        paste()
    gone = object()  # the session ended under the paste (a reader that was done)
    last: list[Any] = [gone]  # the latest screen read: the one that showed the paste

    def now() -> Any:
        try:
            last[0] = _screen(call, sid)
        except LooopError:
            last[0] = gone
        return last[0]
    echoed = _wait(lambda: (sc := now()) is gone or on_screen(text, sc[0]), min(ECHO_MAX, timeout))
    typed = last[0]
    if typed is gone:
        echoed = False
        if enter:
            call("input", id=sid, data="\r")  # raises the clear "not running" line
        return {"ok": True, "delivered": True, "echoed": False, "activity_after": None}
    if sent is not None:  # before the Enter: whatever it brings comes after the mark
        sent(text if enter else None, typed[1][1])  # no Enter: what was typed is the content
    if enter:
        call("input", id=sid, data="\r")
    moved = True
    if verify:
        ref = typed[0] if enter else before
        moved = _wait(lambda: (sc := now()) is gone or sc[0] != ref or activity() != act_before,
                      timeout)
    out = {"ok": True, "delivered": True, "echoed": echoed, "activity_after": activity()}
    if verify and not moved:
        raise NotAccepted(f"input not accepted by {sid} (screen unchanged after {timeout:g}s)")
    return out


def _wait(cond: Callable[[], bool], timeout: float) -> bool:
    """Poll `cond` until `timeout`: after 5, 10, 20, 40 ms, then every POLL
    (an echo is on the screen within a few ms; `send` should not sleep 50)."""
    deadline = time.monotonic() + timeout
    pause = POLL / 10
    while True:
        if cond():
            return True
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        time.sleep(min(pause, left))
        pause = min(pause * 2, POLL)
