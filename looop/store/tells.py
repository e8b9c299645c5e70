"""Owner of `tells/`: messages for a worker, delivered once.

  tells/<worker>-<n>.json          {"v": 1, "id", "worker", "text", "from", "ts"},
                                   created exclusively (n never repeats)
  tells/consumed/<worker>-<n>.json the same file, moved there on delivery

Delivery is the rename: `take` moves a tell to consumed/ *before* handing it
out, so two concurrent `looop told` never print the same message and a crash
after the move loses nothing (the file is still there, in consumed/).
"""
from __future__ import annotations

import os
from typing import Any

from looop.errors import UsageError
from looop.store import jsonio, paths
from looop.store.atomic import create_exclusive
from looop.store.sessions import rfc3339

V = 1
MAX_TEXT = 64 << 10


def tells_dir(d: str) -> str:
    return os.path.join(d, "tells")


def consumed_dir(d: str) -> str:
    return os.path.join(d, "tells", "consumed")


def _mine(names: list[str], worker: str) -> list[tuple[int, str]]:
    out = []
    for n in names:
        stem = n[:-5] if n.endswith(".json") else ""
        if stem.startswith(worker + "-") and stem[len(worker) + 1:].isdigit():
            out.append((int(stem[len(worker) + 1:]), n))
    return sorted(out)


def _list(path: str) -> list[str]:
    try:
        return os.listdir(path)
    except FileNotFoundError:
        return []


def send(d: str, worker: str, text: str, sender: str = "human") -> dict[str, Any]:
    """Queue one message for `worker`; returns the record."""
    worker = paths.check_id(worker, "session")
    if not text.strip():
        raise UsageError("the message is empty")
    if len(text) > MAX_TEXT:
        raise UsageError(f"the message is {len(text)} characters (cap {MAX_TEXT})")
    os.makedirs(tells_dir(d), exist_ok=True)
    used = _mine(_list(tells_dir(d)) + _list(consumed_dir(d)), worker)
    n = (used[-1][0] if used else 0) + 1
    while True:
        rec = {"v": V, "id": f"{worker}-{n}", "worker": worker, "text": text,
               "from": sender, "ts": rfc3339()}
        if create_exclusive(os.path.join(tells_dir(d), rec["id"] + ".json"), jsonio.dumpb(rec)):
            return rec
        n += 1


def pending(d: str, worker: str) -> list[str]:
    """Ids of undelivered tells for `worker`, oldest first."""
    return [n[:-5] for _, n in _mine(_list(tells_dir(d)), worker)]


def reap(d: str, ttl: float, now: float | None = None) -> int:
    """Housekeeping: delete delivered tells older than `ttl`; returns how many."""
    import time
    now = time.time() if now is None else now
    n = 0
    for name in _list(consumed_dir(d)):
        p = os.path.join(consumed_dir(d), name)
        try:
            if name.endswith(".json") and now - os.path.getmtime(p) > ttl:
                os.unlink(p)
                n += 1
        except OSError:
            continue
    return n


def take(d: str, worker: str) -> list[dict[str, Any]]:
    """Deliver every pending tell of `worker` once, oldest first. A file that
    does not parse is delivered as a record with `"text": None` (moved, so it
    is kept for a human, and reported once)."""
    os.makedirs(consumed_dir(d), exist_ok=True)
    out = []
    for _, name in _mine(_list(tells_dir(d)), worker):
        dst = os.path.join(consumed_dir(d), name)
        try:
            os.rename(os.path.join(tells_dir(d), name), dst)
        except FileNotFoundError:
            continue  # a concurrent `told` took it
        rec = jsonio.load_file(dst)
        if not isinstance(rec, dict) or not isinstance(rec.get("text"), str):
            rec = {"id": name[:-5], "worker": worker, "text": None}
        out.append(rec)
    return out
