"""Housekeeping, step 1 of a beat (no AI): reap finished session dirs past
the retention window, leases held by sessions that are not alive, and
mailbox records (delivered asks and tells) past the same window."""
from __future__ import annotations

import os
import time
from datetime import datetime
from typing import Any

from looop.store import claims, events, paths, sessions


def age_s(row: dict[str, Any], d: str, now: float) -> float:
    """Seconds since a finished session last changed (status updated_at,
    else the status file's mtime)."""
    stamp = row.get("_updated")
    if isinstance(stamp, str):
        try:
            return now - datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
        except ValueError:
            pass
    try:
        return now - os.path.getmtime(os.path.join(paths.session_dir(d, row["id"]), "status.json"))
    except OSError:
        return 0.0


def reap_sessions(d: str, rows: list[dict[str, Any]], ttl: float, now: float | None = None) -> list[str]:
    """Remove finished worker dirs older than `ttl`; returns their ids."""
    now = time.time() if now is None else now
    gone = [r["id"] for r in rows if r.get("role") == "worker" and not r.get("alive")
            and age_s(r, d, now) > ttl]
    for sid in gone:
        sessions.remove(d, sid)
    return gone


_warned: set[str] = set()  # malformed claims already reported by this process


def housekeep(d: str, rows: list[dict[str, Any]], ttl: float, out: Any) -> list[dict[str, Any]]:
    """Both reapings; returns the rows still present."""
    gone = set(reap_sessions(d, rows, ttl))
    if gone:
        out.line("info", "sessions.reaped", f"reaped {len(gone)} finished sessions "
                 f"({', '.join(sorted(gone))})", dim=True, ids=sorted(gone))
    alive = [r["id"] for r in rows if r.get("alive")]
    reaped, bad = claims.reap(d, alive)
    for name, sid in reaped:
        out.line("info", "claim.reaped", f"reaped claim {name} (session {sid} is not alive)",
                 claim=name, session=sid)
        events.emit(d, "claim_reaped", claim=name, session=sid)
    for name in sorted(set(bad) - _warned):  # once per pulse, not every beat
        out.line("warn", "claim.bad", f"claims/{name}.json is not a claim object "
                 "({\"session\": \"<id>\", …}) — left as is", claim=name)
    _warned.clear()
    _warned.update(bad)  # a claim fixed, then broken again, is said again
    from looop.store import asks, tells
    asks.reap(d, ttl, set(sessions.list_ids(d)))
    tells.reap(d, ttl)
    return [r for r in rows if r["id"] not in gone]
