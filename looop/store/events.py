"""Owner of `events.jsonl`: one JSON object per lifecycle event, one write each.

Bounded: past LOOOP_EVENTS_MAX_BYTES (default 8 MiB) the file is rotated to
`events.jsonl.1` so a loop left running for weeks cannot fill the disk.
"""
from __future__ import annotations

import os
from typing import Any

from looop import settings
from looop.store import jsonio
from looop.store.atomic import append_line
from looop.store.sessions import rfc3339


def emit(d: str, event: str, **fields: Any) -> None:
    path = os.path.join(d, "events.jsonl")
    try:
        cap = int(settings.get("LOOOP_EVENTS_MAX_BYTES"))
        if cap > 0 and os.path.getsize(path) > cap:
            os.replace(path, path + ".1")
    except (OSError, ValueError):
        pass
    try:
        append_line(path, jsonio.dumpb({"ts": rfc3339(), "event": event, **fields}))
    except OSError:
        pass  # events are best-effort telemetry; never fail the tree for them
