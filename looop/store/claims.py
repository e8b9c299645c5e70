"""Owner of `claims/*.json`: worker leases `{"session": "<id>", ...}`.

A claim names the session holding it; when that session is not alive the
lease is stale and housekeeping reaps it. A claim file that does not parse is
never deleted (nothing lost): it is reported, and shown as unreadable.
"""
from __future__ import annotations

import os
from typing import Any, Iterable

from looop.store import jsonio
from looop.store.readfile import NotRegular, read_bounded

MAX_BYTES = 64 << 10


def claims_dir(d: str) -> str:
    return os.path.join(d, "claims")


def read_all(d: str) -> list[tuple[str, dict[str, Any] | None, bytes]]:
    """(name, parsed object or None if malformed, raw bytes), sorted by name."""
    try:
        names = sorted(n for n in os.listdir(claims_dir(d)) if n.endswith(".json") and not n.startswith("."))
    except FileNotFoundError:
        return []
    out = []
    for n in names:
        try:
            raw = read_bounded(os.path.join(claims_dir(d), n), MAX_BYTES + 1)
        except NotRegular:
            raw = b""  # reported as malformed, left as is (never opened blocking)
        except OSError:
            continue
        obj = None
        if len(raw) <= MAX_BYTES:
            try:
                obj = jsonio.loads(raw)
            except ValueError:
                obj = None
        if not (isinstance(obj, dict) and isinstance(obj.get("session"), str)):
            obj = None
        out.append((n[:-5], obj, raw))
    return out


def reap(d: str, alive: Iterable[str]) -> tuple[list[tuple[str, str]], list[str]]:
    """Remove claims whose session is not alive.

    Returns ([(claim name, session)] reaped, [malformed claim names])."""
    live = set(alive)
    reaped, bad = [], []
    for name, obj, _raw in read_all(d):
        if obj is None:
            bad.append(name)
            continue
        if obj["session"] not in live:
            try:
                os.unlink(os.path.join(claims_dir(d), name + ".json"))
            except FileNotFoundError:
                continue
            reaped.append((name, obj["session"]))
    return reaped, bad
