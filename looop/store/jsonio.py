"""JSON in and out.

orjson is fast to run but costs ~11 ms to import, which is a third of the
budget of `looop ls`. Long-running processes (root, children, pulse) import it
up front; short verbs use the stdlib `json` unless orjson is already loaded.
"""
from __future__ import annotations

import json
import sys
from typing import Any


def dumpb(obj: Any, *, sort_keys: bool = False) -> bytes:
    """Compact JSON bytes (no trailing newline)."""
    orjson = sys.modules.get("orjson")
    if orjson is not None:
        return orjson.dumps(obj, option=orjson.OPT_SORT_KEYS if sort_keys else 0)
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False,
                      sort_keys=sort_keys).encode()


def dumps(obj: Any, **kw: Any) -> str:
    return dumpb(obj, **kw).decode()


def loads(data: bytes | str) -> Any:
    orjson = sys.modules.get("orjson")
    if orjson is not None:
        return orjson.loads(data)
    return json.loads(data)


def load_file(path: str, default: Any = None, limit: int = 4 << 20) -> Any:
    """Parse a JSON file looop wrote; `default` if it is missing, unreadable,
    not a regular file (never blocks on a FIFO) or over `limit` bytes."""
    from looop.store.readfile import read_bounded
    try:
        raw = read_bounded(path, limit + 1)
        return default if len(raw) > limit else loads(raw)
    except (OSError, ValueError):
        return default
