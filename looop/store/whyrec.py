"""Owner of `runs/<run-id>/why.json`: why the beat of that run moved as it
did, for `looop why` (written once, at the end of a decided beat).

    {"v": 1, "run", "at": RFC 3339,
     "changes": [{"kind", "name", "old", "new"}],   inputs changed since the last decided beat
     "decision": {…} | null,                        the move as parsed (null: none parsed)
     "gate": {"decide_budget", "spend", "tripwire", "validation"},
     "executed": {"action", "summary"} | null,
     "outcome": {"kind", "msg"}}
"""
from __future__ import annotations

import os
from typing import Any

from looop.store import jsonio
from looop.store.atomic import write_atomic

NAME = "why.json"


def path(d: str, rid: str) -> str:
    return os.path.join(d, "runs", rid, NAME)


def write(d: str, rid: str, rec: dict[str, Any]) -> None:
    os.makedirs(os.path.dirname(path(d, rid)), exist_ok=True)
    write_atomic(path(d, rid), jsonio.dumpb({"v": 1, "run": rid, **rec}) + b"\n", fsync=False)


def read(d: str, rid: str) -> dict[str, Any] | None:
    rec = jsonio.load_file(path(d, rid), None)
    return rec if isinstance(rec, dict) else None


def latest(d: str) -> str | None:
    """The newest run id that has a why record."""
    try:
        names = sorted((n for n in os.listdir(os.path.join(d, "runs")) if not n.startswith(".")),
                       reverse=True)
    except FileNotFoundError:
        return None
    return next((n for n in names if os.path.exists(path(d, n))), None)
