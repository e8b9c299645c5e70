"""The pulse's guards (SPEC §16), as pure functions of state and time; the
beat applies them and `store/guardstate.py` keeps their memory.

- decide budget: at most LOOOP_MAX_DECIDES_PER_HOUR runner calls in any
  hour, failed ones included, so no loop of any kind burns money all night;
- flapping: a sensor whose signal changed on FLAP_BEATS consecutive beats is
  named in the prompt (FLAPPING SENSORS) and warned about once;
- noop TTL: an unchanged world is decided again once the last move, a noop,
  is LOOOP_NOOP_TTL old (a decider that said "nothing to do" is asked again);
- the prompt budget is in pulse/prompt.py (it cuts the largest sections).
"""
from __future__ import annotations

import hashlib
from typing import Any, Iterable

HOUR = 3600.0
FLAP_BEATS = 5
SHELL_TAIL = 2048


def decide_budget(times: list[float], now: float, limit: int) -> tuple[list[float], float | None]:
    """(attempts still inside the hour, when the next is allowed — None = now)."""
    kept = sorted(t for t in times if now - t < HOUR and t <= now + 1)
    if limit <= 0 or len(kept) < limit:
        return kept, None
    return kept, kept[len(kept) - limit] + HOUR


def flapping(prev: dict[str, Any], readings: Iterable[tuple[str, bytes]]
             ) -> tuple[dict[str, Any], list[str], list[str]]:
    """(new sensor memory, flapping names, names flapping for the first time).

    `readings` are (name, canonical bytes) — what the world hash sees."""
    out: dict[str, Any] = {}
    flap, new = [], []
    for name, data in readings:
        sig = hashlib.sha256(data).hexdigest()[:16]
        old = prev.get(name) if isinstance(prev.get(name), dict) else None
        streak = int(old.get("streak") or 0) + 1 if old and old.get("sig") != sig else 0
        warned = bool(old and old.get("warned")) and streak >= FLAP_BEATS
        if streak >= FLAP_BEATS:
            flap.append(name)
            if not warned:
                new.append(name)
                warned = True
        out[name] = {"sig": sig, "streak": streak, "warned": warned}
    return out, flap, new


def noop_expired(last: dict[str, Any] | None, now: float, ttl: float) -> bool:
    if not last or last.get("action") != "noop" or ttl <= 0:
        return False
    at = last.get("at")
    return isinstance(at, (int, float)) and now - at >= ttl


def shell_tail(data: bytes, limit: int = SHELL_TAIL) -> str:
    """The last `limit` bytes of a run_shell's output, cut at a line start."""
    if len(data) <= limit:
        return data.decode("utf-8", "replace")
    cut = data[-limit:]
    nl = cut.find(b"\n")
    if 0 <= nl < len(cut) - 1:
        cut = cut[nl + 1:]
    return f"[… {len(data) - len(cut)} earlier bytes cut …]\n" + cut.decode("utf-8", "replace")
