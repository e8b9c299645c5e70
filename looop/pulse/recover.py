"""The pulse applying the recovery ladder (SPEC §16; the rules are the pure
`pulse/ladder.py`, the memory `store/ladderstate.py`).

Once per beat, before the world-unchanged skip (a stuck worker does not
change the world, and must still be helped): for each live worker, at most
one rung, through the root's ops over the pulse's link — `input` for a
nudge or a resume, `restart` (resume, counted against the hourly cap) and
`kill` (as failed). Each rung is journaled, evented and said in the pulse's
stream. A refused restart (the cap) keeps the worker on its rung and tries
again after the next wait; the refusal is said by the root, and by the
inbox item. Only a live pulse climbs the ladder: `looop tick` has no link.
Workers started with an explicit command, and those of a runner with
`"ladder": false` (the rules runner: scripts, not agents), are left alone.
"""
from __future__ import annotations

from typing import Any, Callable

from looop.errors import LooopError
from looop.pulse import ladder
from looop.store import config, events, journal, ladderstate, sessions


def knobs(cfg: dict[str, Any], runner: str | None) -> ladder.Knobs:
    from looop import settings
    return ladder.Knobs(nudge=config.runner_nudge(cfg, runner), wait=config.worker_stuck(),
                        limited_retry=config.runner_limited_retry(cfg, runner),
                        margin=float(settings.get("LOOOP_LIMIT_MARGIN", cfg)))


def climb(d: str, cfg: dict[str, Any], link: Any, out: Any, rows: list[dict[str, Any]],
          now: float) -> float | None:
    """One rung at most per live worker. Returns the earliest resume time
    of a parked worker (epoch), so the pulse wakes for it. Never raises."""
    mem, bad = ladderstate.load(d)
    if bad:
        out.line("warn", "ladder.corrupt", f"{ladderstate.FILE} was unreadable: every stuck worker "
                 "read as already nudged just now (nothing typed twice), and rewritten")
        events.emit(d, "ladder_corrupt")
    after: dict[str, dict[str, Any]] = {}
    for r in rows:
        if r.get("role") != "worker":
            continue
        sid = r["id"]
        m = mem.get(sid)
        if m is None and bad and r.get("alive"):
            m = ladderstate.conservative(now)
        if m is None and (r.get("activity") or {}).get("state") not in ("stuck", "limited"):
            continue  # nothing to do, nothing remembered: no meta read
        meta = sessions.read_meta(d, sid)
        if meta.get("ladder") is False:
            continue  # an explicit --command, or a runner with "ladder": false
        k = knobs(cfg, meta.get("runner"))
        step, new = ladder.decide(r, m, k, now)
        if step is not None:
            new = _apply(d, link, out, sid, step, k, m, new, now)
        if new is not None:
            after[sid] = new
    if bad or after != mem:
        try:
            ladderstate.save(d, after)
        except OSError as e:  # a full disk: the ladder forgets, the beat goes on
            out.line("warn", "ladder.unsaved", f"cannot save {ladderstate.FILE}: {e.strerror or e}")
    due = [m["resume_at"] for m in after.values() if m.get("resume_at") and m["step"] == "park"]
    return min(due) if due else None


def _apply(d: str, link: Any, out: Any, sid: str, step: ladder.Step, k: ladder.Knobs,
           old: dict[str, Any] | None, new: dict[str, Any] | None, now: float) -> dict[str, Any] | None:
    """Take the rung; journal and event it. A rung the tree refused is said,
    and the memory stays on the rung before it (tried again after a wait)."""
    try:
        RUNGS[step.action](link, sid, k)
    except LooopError as e:
        msg = f"ladder: {step.action} of {sid} refused: {e}"
        out.line("error", "ladder.refused", msg, id=sid, step=step.action)
        events.emit(d, "ladder_refused", id=sid, step=step.action, reason=str(e))
        _journal(d, msg)
        return dict(old or new or {}, at=now, refused=str(e))
    level = "error" if step.action == "fail" else "warn"
    out.line(level, f"ladder.{step.action}", step.text, id=sid)
    events.emit(d, "ladder_step", id=sid, step=step.action, text=step.text, at=round(now, 3))
    _journal(d, step.text)
    return new


def _journal(d: str, text: str) -> None:
    try:
        journal.append(d, text)
    except OSError:
        pass  # a full disk: the stream line and the event said it


def _type(link: Any, sid: str, k: ladder.Knobs) -> None:
    """The nudge text, then Enter once it shows (≤ 1 s): like steer_session."""
    from looop import steering
    steering.deliver(link.call, sid, k.nudge, enter=True, verify=False, timeout=1.0)


def _nothing(link: Any, sid: str, k: ladder.Knobs) -> None:
    """`raise`: the inbox item reads the ladder memory; nothing to send."""


def _restart(link: Any, sid: str, k: ladder.Knobs) -> None:
    link.call("restart", timeout=60, id=sid, resume=True, auto=True)


def _fail(link: Any, sid: str, k: ladder.Knobs) -> None:
    link.call("kill", timeout=60, id=sid, fail="stuck after a nudge and a restart (recovery ladder)")


RUNGS: dict[str, Callable[[Any, str, ladder.Knobs], None]] = {
    "nudge": _type, "raise": _nothing, "restart": _restart, "fail": _fail,
    "park": _nothing, "resume": _type,
}
