"""Owner of `.guards.json`: what the pulse's guards remember between beats.

    {"v": 1,
     "decides": [epoch s, …],            decide attempts in the last hour (failed ones too)
     "sensors": {name: {"sig", "streak", "warned"}},   flapping detection
     "last": {"action", "at", "run"} | null,           the last executed move (noop TTL)
     "shell": {"run", "cmd", "code", "tail"} | null,   run_shell output for the next prompt
     "spend_warned": "YYYY-MM-DD" | null,              warn_daily_usd raised that day
     "budget": {"day", "spent", "limit", "since"} | null,  the soft threshold, when reached
     "inputs": {…} | null}                             what the last decided beat saw (`looop why`)

Only the pulse (or `looop tick`, under the lock) writes it. A file that does
not parse, or a field of the wrong shape, is read as the most conservative
value — the decide budget as spent, no flapping history, no remembered move —
and the next save rewrites it whole: never a crash.
"""
from __future__ import annotations

import os
from typing import Any

from looop.store import jsonio
from looop.store.atomic import write_atomic

FILE = ".guards.json"


def path(d: str) -> str:
    return os.path.join(d, FILE)


def load(d: str, now: float, max_decides: int) -> tuple[dict[str, Any], bool]:
    """(state, was_corrupt). A missing file is a fresh, valid state."""
    fresh: dict[str, Any] = {"v": 1, "decides": [], "sensors": {}, "last": None, "shell": None,
                             "spend_warned": None, "budget": None, "inputs": None}
    try:
        with open(path(d), "rb") as f:
            raw = jsonio.loads(f.read(4 << 20))
    except FileNotFoundError:
        return fresh, False
    except (OSError, ValueError):
        raw = None
    if not isinstance(raw, dict) or raw.get("v") != 1:
        return dict(fresh, decides=[now] * max_decides), True
    st, bad = dict(fresh), False
    dec = raw.get("decides")
    if isinstance(dec, list) and all(isinstance(t, (int, float)) and not isinstance(t, bool) for t in dec):
        st["decides"] = [float(t) for t in dec]
    else:
        st["decides"], bad = [now] * max_decides, True
    sens = raw.get("sensors")
    if isinstance(sens, dict) and all(isinstance(v, dict) for v in sens.values()):
        st["sensors"] = sens
    else:
        bad = bad or sens is not None
    for key in ("last", "shell", "budget", "inputs"):
        v = raw.get(key)
        if v is None or isinstance(v, dict):
            st[key] = v
        else:
            bad = True
    sw = raw.get("spend_warned")
    st["spend_warned"] = sw if isinstance(sw, str) else None
    return st, bad


def save(d: str, st: dict[str, Any]) -> None:
    write_atomic(path(d), jsonio.dumpb(st) + b"\n", fsync=False)


def budget(d: str) -> dict[str, Any] | None:
    """The soft spend threshold, when reached today: {"day", "spent", "limit",
    "since"} — for readers outside the pulse (the inbox). Never raises."""
    try:
        with open(path(d), "rb") as f:
            raw = jsonio.loads(f.read(4 << 20))
    except (OSError, ValueError):
        return None
    b = raw.get("budget") if isinstance(raw, dict) else None
    return b if isinstance(b, dict) else None
