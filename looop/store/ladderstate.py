"""Owner of `.ladder.json`: the recovery ladder's memory (SPEC §16).

    {"v": 1,
     "workers": {<session id>: {
        "kind": "stuck" | "limited",      the episode
        "step": "nudge" | "raise" | "restart" | "park" | "resume",  the last rung taken
        "at": epoch s,                    when it was taken (or last refused)
        "ok_since": epoch s | null,       healthy since (a stuck episode ends after a while)
        "until": RFC 3339 | null,         a limit's named reset time
        "resume_at": epoch s | null,      when a parked worker is resumed
        "refused": str | null,            why the last restart was refused (the restart cap)
        "text": str | null}}}             the banner that parked it (limited)

Only the pulse writes it; `ls`, `status` and the inbox read it (`parked`,
`note`). A file that does not parse is read as the most conservative
memory — every stuck worker as already nudged just now, so nothing is typed
twice and nothing is restarted before a full wait — and the next save
rewrites it whole: never a crash.
"""
from __future__ import annotations

import os
import time
from typing import Any

from looop.store import jsonio
from looop.store.atomic import write_atomic

FILE = ".ladder.json"
MAX = 1 << 20


def path(d: str) -> str:
    return os.path.join(d, FILE)


def entry(kind: str, step: str, at: float, **more: Any) -> dict[str, Any]:
    """One worker's memory: the episode, the rung just taken and when."""
    return {"kind": kind, "step": step, "at": at, "ok_since": None, "until": None,
            "resume_at": None, "refused": None, **more}


def conservative(now: float) -> dict[str, Any]:
    """The memory assumed for a worker when the file was unreadable."""
    return entry("stuck", "nudge", now)


def hhmmss(t: float) -> str:
    """A resume time as people read it (local clock), wherever it is shown."""
    return time.strftime("%H:%M:%S", time.localtime(t))


def _valid(m: Any) -> bool:
    return (isinstance(m, dict) and m.get("kind") in ("stuck", "limited") and isinstance(m.get("step"), str)
            and isinstance(m.get("at"), (int, float)) and not isinstance(m.get("at"), bool)
            and all(m.get(k) is None or isinstance(m.get(k), (int, float)) for k in ("ok_since", "resume_at")))


def load(d: str) -> tuple[dict[str, dict[str, Any]], bool]:
    """(memory by session id, was_corrupt). A missing file is empty memory;
    a corrupt one (or one bad entry) sets was_corrupt, keeping what parses."""
    try:
        with open(path(d), "rb") as f:
            raw = jsonio.loads(f.read(MAX))
    except FileNotFoundError:
        return {}, False
    except (OSError, ValueError):
        return {}, True
    if not isinstance(raw, dict) or raw.get("v") != 1 or not isinstance(raw.get("workers"), dict):
        return {}, True
    good = {str(k): v for k, v in raw["workers"].items() if _valid(v)}
    return good, len(good) != len(raw["workers"])


def save(d: str, workers: dict[str, dict[str, Any]]) -> None:
    write_atomic(path(d), jsonio.dumpb({"v": 1, "workers": workers}) + b"\n", fsync=False)


def read(d: str) -> dict[str, dict[str, Any]]:
    """The memory for readers outside the pulse (ls, status, inbox): {} when
    absent or unreadable. Never raises."""
    return load(d)[0]


def parked(m: dict[str, Any] | None) -> dict[str, Any] | None:
    """{"until", "resume_at"} when the memory says the worker is parked on a limit."""
    if not m or m.get("kind") != "limited" or m.get("step") != "park":
        return None
    return {"until": m.get("until"), "resume_at": m.get("resume_at")}
