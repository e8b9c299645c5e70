"""Diff: one content hash over everything a decision may depend on.

What goes in, and why (SPEC §3):
- PLAYBOOK.md and goals/*.md, whole — desired state.
- each sensor reading: its `signal` key only if it has one (so a sensor can
  carry volatile `detail` without waking the decider), canonical JSON (sorted
  keys) so key order never matters; raw bytes if it is not JSON.
- each worker's stable signal: id, state, exit code, flag note — never ages,
  pids or timestamps, which change without the world changing.
- for goals declaring `every:` (or `done_when:`), the current time bucket
  of that period (on the local clock, so `every: 1d` turns at midnight): such
  a goal asks to be looked at again after that long; `done_when:` alone is
  rechecked every minute.
Pure: the caller gathers the inputs.
"""
from __future__ import annotations

import hashlib
from typing import Any, Iterable

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
    return [row.get("id"), state, row.get("exit_code"), bool(row.get("flagged")), note]


def time_buckets(goals: Iterable[Any], now: float) -> list[list[Any]]:
    out = []
    for g in goals:
        if "every" in g.meta or "done_when" in g.meta:
            period = g.seconds("every") or DEFAULT_RECHECK
            out.append([g.id, int(now // max(period, 1.0))])
    return out


def world_hash(playbook: bytes, goals: Iterable[tuple[str, bytes]],
               readings: Iterable[tuple[str, bytes]], workers: Iterable[dict[str, Any]],
               buckets: Iterable[list[Any]] = ()) -> str:
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
    return h.hexdigest()
