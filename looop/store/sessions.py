"""Owner of `sessions/<id>/`: meta.json, status.json and output.log(.1).

meta.json   — written once at start: id, role, command, cwd, started_at.
status.json — rewritten (atomically) on every state change: state, pid of the
              PTY command and its create time, the supervising child's pid,
              exit_code, flagged/note, log_base.
output.log  — raw PTY bytes. Rotated at LOOOP_LOG_MAX_BYTES into output.log.1;
              `log_base` counts bytes rotated away so offsets stay monotonic.
"""
from __future__ import annotations

import os
import shutil
import time
from datetime import datetime, timezone
from enum import Enum
from typing import Any, Iterator

from looop.store import jsonio, paths
from looop.store.atomic import write_atomic


class State(str, Enum):
    STARTING = "starting"
    RUNNING = "running"
    EXITED = "exited"    # the command ended by itself
    KILLED = "killed"    # stopped on request (kill, shutdown)
    DEAD = "dead"        # its supervising child vanished without a word

    @property
    def live(self) -> bool:
        return self in (State.STARTING, State.RUNNING)


LOG = "output.log"


def rfc3339(ts: float | None = None) -> str:
    return datetime.fromtimestamp(time.time() if ts is None else ts, timezone.utc) \
        .isoformat(timespec="seconds").replace("+00:00", "Z")


def read_meta(d: str, sid: str) -> dict[str, Any]:
    return jsonio.load_file(os.path.join(paths.session_dir(d, sid), "meta.json"), {}) or {}


def read_status(d: str, sid: str) -> dict[str, Any]:
    return jsonio.load_file(os.path.join(paths.session_dir(d, sid), "status.json"), {}) or {}


def write_meta(d: str, sid: str, meta: dict[str, Any]) -> None:
    write_atomic(os.path.join(paths.session_dir(d, sid), "meta.json"), jsonio.dumpb(meta), fsync=False)


def write_status(d: str, sid: str, status: dict[str, Any]) -> None:
    status = dict(status, updated_at=rfc3339())
    write_atomic(os.path.join(paths.session_dir(d, sid), "status.json"), jsonio.dumpb(status), fsync=False)


def list_ids(d: str) -> list[str]:
    try:
        return sorted(n for n in os.listdir(paths.sessions_dir(d))
                      if not n.startswith(".") and os.path.isdir(os.path.join(paths.sessions_dir(d), n)))
    except FileNotFoundError:
        return []


def exists(d: str, sid: str) -> bool:
    return os.path.isdir(paths.session_dir(d, sid))


def remove(d: str, sid: str) -> None:
    shutil.rmtree(paths.session_dir(d, sid), ignore_errors=True)


def log_path(d: str, sid: str) -> str:
    return os.path.join(paths.session_dir(d, sid), LOG)


def log_end(d: str, sid: str) -> int:
    """The logical offset of the end of the recorded output."""
    base = int(read_status(d, sid).get("log_base") or 0)
    try:
        return base + os.path.getsize(log_path(d, sid))
    except OSError:
        return base


def read_log(d: str, sid: str, since: int = 0, limit: int = -1) -> tuple[bytes, int]:
    """Bytes from logical offset `since` to the end (at most `limit`; -1 = all)
    and the logical offset just past them. Bytes rotated out of output.log.1
    are gone: reading then starts at the oldest byte still kept."""
    base = int(read_status(d, sid).get("log_base") or 0)
    cur = log_path(d, sid)
    out = b""
    pos = since
    if pos < base:
        try:
            start1 = base - os.path.getsize(cur + ".1")
            pos = max(pos, start1)
            with open(cur + ".1", "rb") as f:
                f.seek(pos - start1)
                out = f.read(limit)
            pos += len(out)
        except OSError:
            pass
        if limit >= 0 and len(out) >= limit:
            return out, pos
        pos = max(pos, base)
    try:
        with open(cur, "rb") as f:
            f.seek(pos - base)
            data = f.read(-1 if limit < 0 else limit - len(out))
    except OSError:
        data = b""
    return out + data, pos + len(data)


def tail_bytes(d: str, sid: str, n: int) -> bytes:
    end = log_end(d, sid)
    data, _ = read_log(d, sid, max(0, end - n))
    return data[-n:]


def iter_sessions(d: str) -> Iterator[tuple[str, dict[str, Any], dict[str, Any]]]:
    for sid in list_ids(d):
        yield sid, read_meta(d, sid), read_status(d, sid)
