"""Owner of `schedules/<name>.json`: times the loop asked to be woken at.

    {"v": 1, "at": <epoch s>, "note": str}                    one-shot
    {"v": 1, "every_s": <s ≥ 60>, "anchor": <epoch s>, "note": str}   recurring

A one-shot is due from `at` on and stays due until dropped (`schedule rm`,
the `drop_schedule` action): the decider must acknowledge it. A recurring
one is due once per period: its `period` (how many whole periods since the
anchor) enters the world hash, so each new period wakes the decider once.
A file that does not parse is listed as unreadable (never due, never a
crash) until it is removed or rewritten.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any

from looop.store import jsonio, paths
from looop.store.atomic import write_atomic

MIN_EVERY = 60.0
DIR = "schedules"


@dataclass(frozen=True)
class Schedule:
    name: str
    at: float | None = None
    every_s: float | None = None
    anchor: float | None = None
    note: str = ""
    error: str | None = None      # unreadable file: why

    def period(self, now: float) -> int:
        """Whole periods passed since the anchor (recurring), else 0."""
        if self.every_s is None or self.anchor is None:
            return 0
        return max(0, int((now - self.anchor) // self.every_s))

    def due(self, now: float) -> bool:
        if self.error:
            return False
        if self.at is not None:
            return now >= self.at
        return self.period(now) >= 1

    def next_at(self, now: float) -> float | None:
        """When it next becomes due (None: already due for good, or unreadable)."""
        if self.error:
            return None
        if self.at is not None:
            return None if now >= self.at else self.at
        assert self.every_s is not None and self.anchor is not None
        return self.anchor + (self.period(now) + 1) * self.every_s

    def signal(self, now: float) -> list[Any]:
        """What the world hash sees: due-ness, and the period of a recurring one."""
        return [self.name, self.due(now), self.period(now)]

    def to_json(self, now: float | None = None) -> dict[str, Any]:
        now = time.time() if now is None else now
        out: dict[str, Any] = {"name": self.name, "note": self.note, "due": self.due(now),
                               "next_at": self.next_at(now)}
        if self.error:
            out["error"] = self.error
        elif self.at is not None:
            out["at"] = self.at
        else:
            out.update(every_s=self.every_s, anchor=self.anchor)
        return out


def _dir(d: str) -> str:
    return os.path.join(d, DIR)


def write(d: str, name: str, *, at: float | None = None, every_s: float | None = None,
          note: str = "", now: float | None = None) -> Schedule:
    """Create or replace a schedule; ValueError names bad input."""
    name = paths.check_id(name, "schedule name", allow_pulse=True)
    if (at is None) == (every_s is None):
        raise ValueError("give exactly one of --in or --every")
    if every_s is not None and every_s < MIN_EVERY:
        raise ValueError(f"--every must be at least {MIN_EVERY:g}s (got {every_s:g}s)")
    now = time.time() if now is None else now
    rec: dict[str, Any] = {"v": 1, "note": str(note)}
    if at is not None:
        rec["at"] = float(at)
    else:
        rec.update(every_s=float(every_s), anchor=now)  # type: ignore[arg-type]
    os.makedirs(_dir(d), exist_ok=True)
    write_atomic(os.path.join(_dir(d), name + ".json"), jsonio.dumpb(rec) + b"\n")
    return parse(name, rec)


def remove(d: str, name: str) -> bool:
    name = paths.check_id(name, "schedule name", allow_pulse=True)
    try:
        os.unlink(os.path.join(_dir(d), name + ".json"))
        return True
    except FileNotFoundError:
        return False


def parse(name: str, rec: Any) -> Schedule:
    """A record → Schedule; a bad one → Schedule with `error` (never raises)."""
    def num(k: str) -> float | None:
        v = rec.get(k)
        return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None
    if not isinstance(rec, dict) or rec.get("v") != 1:
        return Schedule(name, error="not a v1 schedule record")
    note = rec.get("note") if isinstance(rec.get("note"), str) else ""
    at, every, anchor = num("at"), num("every_s"), num("anchor")
    if at is not None and every is None:
        return Schedule(name, at=at, note=note)
    if at is None and every is not None and anchor is not None and every >= MIN_EVERY:
        return Schedule(name, every_s=every, anchor=anchor, note=note)
    return Schedule(name, error="needs `at`, or `every_s` (≥ 60) with `anchor`")


def read_all(d: str) -> list[Schedule]:
    """Every schedule, by name."""
    try:
        names = sorted(n for n in os.listdir(_dir(d)) if n.endswith(".json") and not n.startswith("."))
    except FileNotFoundError:
        return []
    out = []
    for n in names:
        try:
            with open(os.path.join(_dir(d), n), "rb") as f:
                rec = jsonio.loads(f.read(1 << 16))
        except (OSError, ValueError) as e:
            out.append(Schedule(n[:-5], error=f"unreadable: {type(e).__name__}"))
            continue
        out.append(parse(n[:-5], rec))
    return out


def next_due(d: str, now: float) -> float | None:
    """The soonest time a schedule becomes due (for the pulse's sleep)."""
    times = [t for s in read_all(d) if (t := s.next_at(now)) is not None]
    return min(times) if times else None
