"""Diff: one content hash over everything a decision may depend on.

What goes in, and why (SPEC §3):
- PLAYBOOK.md and goals/*.md, whole — desired state.
- each sensor reading: its `signal` key only if it has one (so a sensor can
  carry volatile `detail` without waking the decider), canonical JSON (sorted
  keys) so key order never matters; raw bytes if it is not JSON.
- each worker's stable signal: id, state, exit code, flag note, and the
  activity state of a live one (SPEC §15) — never ages, pids, timestamps,
  quiet time or evidence text, which change without the world changing; a
  finished worker adds the start time of its run, so a rerun that ends the
  same way (a restart that fails again) is still a new world.
- due times that were reached: a goal with `every:` is due `every` after its
  worker finished; a rules restart is due when its backoff ends
  (store/rulestate.py); `done_when:` is rechecked every minute. A due time
  enters the hash only once reached, and the earliest one still ahead is
  the pulse's next wake-up (`dues` returns it), so the loop wakes by itself.
Pure: the caller gathers the inputs.
"""
from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any, Iterable, Mapping

from looop.store import jsonio

DEFAULT_RECHECK = 60.0


def canonical(data: bytes) -> bytes:
    """The hashed form of one sensor reading."""
    try:
        obj = jsonio.loads(data)
    except ValueError:
        return data
    if isinstance(obj, dict) and "signal" in obj:
        obj = obj["signal"]
    return jsonio.dumpb(obj, sort_keys=True)


def worker_signal(row: dict[str, Any]) -> list[Any]:
    state = row.get("state")
    if state == "starting":
        state = "running"  # a transition, not a change of the world
    note = row.get("note") if row.get("flagged") else None
    act = (row.get("activity") or {}).get("state") if row.get("alive") else None
    sig = [row.get("id"), state, row.get("exit_code"), bool(row.get("flagged")), note, act]
    if state not in ("running", None) and not row.get("alive"):
        sig.append(row.get("started_at"))  # which run ended: each one is news
    return sig


def finished_at(row: Mapping[str, Any]) -> float | None:
    """Epoch of a finished worker's last status write (its end)."""
    ts = row.get("_updated_ts")
    if isinstance(ts, (int, float)) and not isinstance(ts, bool):
        return float(ts)
    try:
        return datetime.fromisoformat(str(row.get("_updated")).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def dues(goals: Iterable[Any], workers: Iterable[Mapping[str, Any]], retries: Mapping[str, float],
         now: float) -> tuple[list[list[Any]], float | None]:
    """(the due marks reached by `now`, for the hash; the earliest due time
    still ahead, or None)."""
    rows = {r.get("id"): r for r in workers}
    marks: list[list[Any]] = []
    ahead: list[float] = []

    def due(gid: str, kind: str, at: float) -> None:
        if now >= at:
            marks.append([gid, kind, at])
        else:
            ahead.append(at)
    for g in goals:
        every = g.seconds("every") if "every" in g.meta else None
        row = rows.get(g.id)
        if every is not None and row is not None and not row.get("alive"):
            fin = finished_at(row)
            if fin is not None:
                due(g.id, "every", fin + max(every, 0.0))
        if "done_when" in g.meta:
            bucket = int(now // DEFAULT_RECHECK)
            marks.append([g.id, "recheck", bucket])
            ahead.append((bucket + 1) * DEFAULT_RECHECK)
    for gid, at in retries.items():
        due(gid, "retry", at)
    return marks, min(ahead) if ahead else None


def world_hash(playbook: bytes, goals: Iterable[tuple[str, bytes]],
               readings: Iterable[tuple[str, bytes]], workers: Iterable[dict[str, Any]],
               buckets: Iterable[list[Any]] = (), extra: Iterable[tuple[str, Any]] = ()) -> str:
    """sha256 hex over the inputs; each part length-prefixed so no two
    different worlds can collide by concatenation."""
    h = hashlib.sha256()

    def part(tag: str, data: bytes) -> None:
        h.update(f"{tag}:{len(data)}:".encode())
        h.update(data)

    part("playbook", playbook)
    for name, body in sorted(goals):
        part("goal " + name, body)
    for name, data in sorted(readings):
        part("sensor " + name, canonical(data))
    sigs = sorted((worker_signal(r) for r in workers if r.get("role") != "pulse"),
                  key=lambda s: str(s[0]))
    part("workers", jsonio.dumpb(sigs, sort_keys=True))
    part("time", jsonio.dumpb(sorted(buckets, key=lambda b: str(b[0]))))
    for tag, value in extra:  # e.g. ("schedules", [[name, due, period], …])
        part(tag, jsonio.dumpb(value, sort_keys=True))
    return h.hexdigest()
