"""The recovery ladder (SPEC §16): what the pulse does about a live worker
that is `stuck` or `limited`, as one pure function of (worker row, ladder
memory, runner knobs, now). `pulse/recover.py` applies its answer; the
memory is `store/ladderstate.py`.

    stuck    nudge (type the runner's `nudge` text + Enter, once)
             → raise (the inbox item says the nudge did not help)
             → restart (with the runner's `resume` template; counts toward
               LOOOP_MAX_RESTARTS_PER_HOUR, which the root enforces)
             → fail (killed, lifecycle state `failed`)
             Each rung waits `wait` seconds (LOOOP_WORKER_STUCK: as long as
             it took to call the worker stuck) after the one before.
    limited  park (no nudges, no restarts) until the named reset time T +
             `margin` (LOOOP_LIMIT_MARGIN, 2 min), or `limited_retry` (30 min)
             when the screen names none → resume: type the `nudge` text.
             Still limited after the resume by the very banner that parked
             it: its time was waited out, so `limited_retry`, not that time
             read again (a clock time would now mean tomorrow).
             Resuming by typing, not restarting: the agent is alive at its
             prompt with its whole conversation, and "continue" is what a
             person types once the limit has reset; a restart would cost a
             process, the context and a slot of the restart cap.

At most one rung per worker per call (the pulse calls once per beat). An
episode ends when the worker dies (its memory is dropped: the restart
policy owns dead workers), when a limit is no longer shown, or when a
stuck worker has been healthy for 2 × `wait` — longer than a frozen worker
can look healthy, since quiet for `wait` is stuck again.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from looop.inbox import stamp as epoch  # RFC 3339 (as in `activity.until`) → epoch seconds
from looop.store.ladderstate import entry, hhmmss

STUCK_RUNGS = {None: "nudge", "nudge": "raise", "raise": "restart", "restart": "fail"}


@dataclass(frozen=True)
class Knobs:
    nudge: str = "continue"
    wait: float = 900.0           # seconds between stuck rungs (LOOOP_WORKER_STUCK)
    limited_retry: float = 1800.0
    margin: float = 120.0         # after a named reset time (LOOOP_LIMIT_MARGIN)


@dataclass(frozen=True)
class Step:
    action: str                   # nudge | raise | restart | fail | park | resume
    text: str                     # the journal line


Mem = dict[str, Any]


def decide(row: dict[str, Any], mem: Mem | None, k: Knobs, now: float) -> tuple[Step | None, Mem | None]:
    """(the rung to take now or None, the memory after taking it). Pure."""
    if not row.get("alive"):
        return None, None
    act = row.get("activity") if isinstance(row.get("activity"), dict) else {}
    state = act.get("state")
    if state == "limited":
        return _limited(row["id"], act, mem, k, now)
    if state == "stuck":
        return _stuck(row["id"], mem, k, now)
    return None, _healthy(mem, k, now)


def _healthy(mem: Mem | None, k: Knobs, now: float) -> Mem | None:
    if mem is None or mem["kind"] == "limited":
        return None  # a limit no longer shown is over (resumed, or by a human)
    ok = mem.get("ok_since") or now
    return None if now - ok >= 2 * k.wait else dict(mem, ok_since=ok)


def _stuck(sid: str, mem: Mem | None, k: Knobs, now: float) -> tuple[Step | None, Mem | None]:
    if mem is None or mem["kind"] != "stuck":
        mem = None
    elif now - mem["at"] < k.wait:
        return None, dict(mem, ok_since=None)  # the last rung is still being given its time
    rung = STUCK_RUNGS.get(mem["step"] if mem else None)
    if rung is None:
        return None, mem
    new = entry("stuck", rung, now)
    text = {"nudge": f"ladder: {sid} is stuck — typed the nudge {k.nudge!r}",
            "raise": f"ladder: {sid} still stuck after the nudge — raised in the inbox; "
                     f"restarting it (resume) at {hhmmss(now + k.wait)} unless it recovers",
            "restart": f"ladder: {sid} still stuck — restarting it with its resume command",
            "fail": f"ladder: {sid} stuck again after a restart — stopped, state failed"}[rung]
    return Step(rung, text), new


def _limited(sid: str, act: dict[str, Any], mem: Mem | None, k: Knobs,
             now: float) -> tuple[Step | None, Mem | None]:
    if mem is not None and mem["kind"] == "limited":
        if mem["step"] == "park":
            if now < (mem.get("resume_at") or 0):
                return None, mem  # parked: no nudges, no restarts
            return (Step("resume", f"ladder: {sid}'s usage limit has reset — typed {k.nudge!r} to resume it"),
                    dict(mem, step="resume", at=now))
        if mem["step"] == "resume" and now - mem["at"] < k.wait:
            return None, mem  # give the resume time to show before parking again
    until = act.get("until") if isinstance(act.get("until"), str) else None
    ev = act.get("evidence")
    text = ev.get("text") if isinstance(ev, dict) and isinstance(ev.get("text"), str) else None
    t = epoch(until)
    why = f"until {until}" if t is not None else "no reset time named"
    if mem is not None and mem["kind"] == "limited" and text is not None and text == mem.get("text"):
        # the banner that parked it, still on screen after the resume: the
        # time it names was waited out (a clock time now reads as tomorrow)
        t, why = None, "the same banner as before the resume"
    resume_at = t + k.margin if t is not None else now + k.limited_retry
    return (Step("park", f"ladder: {sid} hit a usage limit ({why}) — parked, resuming it at "
                         f"{hhmmss(resume_at)}"),
            entry("limited", "park", now, until=until, resume_at=resume_at, text=text))
