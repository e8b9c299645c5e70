"""What changed since the last decided beat — the WHAT CHANGED section of
the prompt and the first half of `looop why`. Pure: the beat gathers the
inputs, `store/whyrec.py` keeps the record.

An input snapshot maps "kind name" → a short text of what the world hash
sees for it: each goal (a digest of its text), the PLAYBOOK, each sensor's
signal, each worker's state (exit, flag, activity), each schedule's due-ness.
Two snapshots diff to [{"kind", "name", "old", "new"}] (None = absent).
"""
from __future__ import annotations

import hashlib
from typing import Any, Iterable

TEXT_MAX = 160


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= TEXT_MAX else text[:TEXT_MAX - 1] + "…"


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def worker_text(row: dict[str, Any]) -> str:
    state = str(row.get("state"))
    if row.get("exit_code") is not None and not row.get("alive"):
        state += f" exit {row['exit_code']}"
    act = (row.get("activity") or {}).get("state") if row.get("alive") else None
    if act:
        state += f" ({act})"
    if row.get("flagged"):
        state += " ⚑" + (f" {row.get('note')}" if row.get("note") else "")
    return state


def snapshot(playbook: str, goals: Iterable[tuple[str, str]], signals: Iterable[tuple[str, bytes]],
             workers: Iterable[dict[str, Any]], schedules: Iterable[tuple[str, str]]) -> dict[str, str]:
    """The inputs as "kind name" → text. `signals`: (sensor, canonical bytes)."""
    snap = {"playbook PLAYBOOK.md": _digest(playbook)}
    snap.update({f"goal {gid}": _digest(text) for gid, text in goals})
    snap.update({f"sensor {n}": _short(data.decode("utf-8", "replace")) for n, data in signals})
    snap.update({f"worker {r.get('id')}": worker_text(r) for r in workers if r.get("role") != "pulse"})
    snap.update({f"schedule {n}": text for n, text in schedules})
    return snap


def diff(old: dict[str, str] | None, new: dict[str, str]) -> list[dict[str, Any]]:
    """Changes from `old` to `new`, by kind then name. No `old` (the first
    decided beat): everything is new."""
    old = old or {}
    out = []
    for key in sorted(set(old) | set(new)):
        if old.get(key) != new.get(key):
            kind, _, name = key.partition(" ")
            out.append({"kind": kind, "name": name, "old": old.get(key), "new": new.get(key)})
    return out


def change_line(c: dict[str, Any]) -> str:
    """`sensor ci: "green" → "red"`; goals and the PLAYBOOK by edit, not digest."""
    if c["kind"] in ("goal", "playbook"):
        what = "added" if c["old"] is None else "removed" if c["new"] is None else "edited"
        return f"{c['kind']} {c['name']}: {what}"
    old = "(none)" if c["old"] is None else c["old"]
    new = "(gone)" if c["new"] is None else c["new"]
    return f"{c['kind']} {c['name']}: {old} → {new}"
