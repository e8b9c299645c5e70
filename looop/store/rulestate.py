"""Owner of `.rules-state.json`: what the built-in `rules` decider remembers
per goal between beats.

    {"<goal id>": {"failures": int,      consecutive non-zero exits
                   "seen": str,          started_at of the last finished run counted
                   "retry_at": float,    epoch: restart after a failure not before this
                   "done": bool,         a one-shot `run:` exited 0
                   "killed": str}}       digest of the goal when a user killed it

Read by the rules decider, by the beat (a retry time is a due time: it
enters the world hash once reached and wakes the pulse), and by `ls` (a
worker waiting out its backoff shows `backoff`).
"""
from __future__ import annotations

import os
from typing import Any

from looop.store import jsonio
from looop.store.atomic import write_atomic

FILE = ".rules-state.json"


def load(d: str) -> dict[str, dict[str, Any]]:
    st = jsonio.load_file(os.path.join(d, FILE), {}) or {}
    if not isinstance(st, dict):
        return {}
    return {k: v for k, v in st.items() if isinstance(v, dict)}


def save(d: str, state: dict[str, dict[str, Any]]) -> None:
    write_atomic(os.path.join(d, FILE), jsonio.dumpb(state), fsync=False)


def retries(d: str) -> dict[str, float]:
    """goal id → the epoch its worker is due to restart after a failure."""
    out = {}
    for gid, st in load(d).items():
        at = st.get("retry_at")
        if isinstance(at, (int, float)) and not isinstance(at, bool):
            out[gid] = float(at)
    return out
