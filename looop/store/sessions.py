"""Owner of `sessions/<id>/`: meta.json, status.json and output.log(.1).

meta.json   — written at start: id, role, command, cwd, started_at; rewritten
              by each restart of the session (started_at, restarts).
status.json — rewritten (atomically) on every state change: state, pid of the
              PTY command and its create time, the supervising child's pid,
              exit_code, flagged/note, log_base.
sent.json   — the last `send`: {"text", "offset", "row", "ts"}, `offset` the log
              end once its echo was on the screen, `row` the screen row it was
              typed on (so `expect` skips the echo).
output.log  — raw PTY bytes. Rotated at LOOOP_LOG_MAX_BYTES into output.log.1;
              `log_base` counts bytes rotated away so offsets stay monotonic.
"""
from __future__ import annotations

import errno
import os
import time
from enum import Enum
from typing import Any, Iterator

from looop.store import jsonio, paths
from looop.store.atomic import make_spare, write_atomic, write_spare


class State(str, Enum):
    STARTING = "starting"
    RUNNING = "running"
    EXITED = "exited"    # the command ended by itself
    KILLED = "killed"    # stopped on request (kill, shutdown)
    DEAD = "dead"        # its supervising child vanished without a word
    BACKOFF = "backoff"  # ended; the root restarts it when its backoff is over
    FAILED = "failed"    # restarted too often: given up on (terminal)

    @property
    def live(self) -> bool:
        return self in (State.STARTING, State.RUNNING)


LOG = "output.log"


def rfc3339(ts: float | None = None) -> str:
    """UTC, whole seconds: `2026-12-04T13:51:00Z` (time, not datetime: `send`
    writes one and should not import datetime for it)."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() if ts is None else ts))


def stamp(value: Any) -> float | None:
    """An RFC 3339 string or epoch seconds → epoch seconds (None if neither)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        from datetime import datetime
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
        except ValueError:
            return None
    return None


def read_meta(d: str, sid: str) -> dict[str, Any]:
    return jsonio.load_file(os.path.join(paths.session_dir(d, sid), "meta.json"), {}) or {}


def read_status(d: str, sid: str) -> dict[str, Any]:
    return jsonio.load_file(os.path.join(paths.session_dir(d, sid), "status.json"), {}) or {}


def write_meta(d: str, sid: str, meta: dict[str, Any]) -> None:
    write_atomic(os.path.join(paths.session_dir(d, sid), "meta.json"), jsonio.dumpb(meta), fsync=False)


def restarted(meta: dict[str, Any]) -> dict[str, Any]:
    """meta.json for one more run of the same session: a new start time and
    `restarts` + 1 (what `ls` shows as the restart count)."""
    return dict(meta, started_at=rfc3339(), restarts=int(meta.get("restarts") or 0) + 1)


_spared: set[str] = set()  # status files this process has set a spare block aside for


def write_status(d: str, sid: str, status: dict[str, Any]) -> None:
    """Atomic. On a full disk it still lands, through the block set aside by
    the first write (atomic.write_spare): `ls` must be able to show *why*
    (`log_error`) exactly when nothing else can be written."""
    now = time.time()  # updated_ts: sub-second, for due times (`every:` after the end)
    status = dict(status, updated_at=rfc3339(now), updated_ts=round(now, 3))
    path, data = os.path.join(paths.session_dir(d, sid), "status.json"), jsonio.dumpb(status)
    try:
        write_atomic(path, data, fsync=False)
    except OSError as e:
        if e.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        write_spare(path, data)
        return
    if path not in _spared:
        try:
            make_spare(path)
            _spared.add(path)
        except OSError:
            pass  # no room for it now; tried again on the next write


def write_sent(d: str, sid: str, text: str | None, row: int | None = None) -> None:
    """Record a send (after its paste showed): the log end now, the text and
    the screen row it was typed on. `text` None forgets the last one."""
    path = os.path.join(paths.session_dir(d, sid), "sent.json")
    if text is None:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        return
    rec = {"text": text, "offset": log_end(d, sid), "row": row, "ts": rfc3339()}
    write_atomic(path, jsonio.dumpb(rec), fsync=False)


def read_sent(d: str, sid: str) -> dict[str, Any]:
    rec = jsonio.load_file(os.path.join(paths.session_dir(d, sid), "sent.json"), {}) or {}
    return rec if isinstance(rec, dict) and isinstance(rec.get("offset"), int) else {}


def list_ids(d: str) -> list[str]:
    try:
        return sorted(n for n in os.listdir(paths.sessions_dir(d))
                      if not n.startswith(".") and os.path.isdir(os.path.join(paths.sessions_dir(d), n)))
    except FileNotFoundError:
        return []


def exists(d: str, sid: str) -> bool:
    return os.path.isdir(paths.session_dir(d, sid))


def remove(d: str, sid: str) -> None:
    import shutil  # (imports bz2 and lzma: kept off `ls`)
    shutil.rmtree(paths.session_dir(d, sid), ignore_errors=True)


def log_path(d: str, sid: str) -> str:
    return os.path.join(paths.session_dir(d, sid), LOG)


class _LogView:
    """output.log(.1) opened consistently with status.json's `log_base`.

    The child rotates (rename, new file) and then publishes the new base with
    the files' inodes (`log_ino`, `log1_ino`). A view is consistent when the
    files we opened carry the recorded inodes *and* the log fields did not
    change while we opened them: inodes alone can be reused two rotations
    later, but the child publishes after every rotation, so an unchanged
    status across the open rules that out. Open fds keep reading the right
    bytes even if a rotation happens afterwards."""

    def __init__(self, d: str, sid: str):
        cur = log_path(d, sid)
        for _ in range(50):
            before = _log_fields(read_status(d, sid))
            self.f0, self.f1 = _open(cur), _open(cur + ".1")
            after = _log_fields(read_status(d, sid))
            self.base = int(after[0] or 0)
            if before == after and after[1] in (None, _ino(self.f0)) and \
                    (self.f1 is None or after[2] in (None, _ino(self.f1))):
                return
            self.close()
            time.sleep(0.002)
        self.f0, self.f1 = _open(cur), _open(cur + ".1")  # a child gone mid-rotation

    def size0(self) -> int:
        return os.fstat(self.f0.fileno()).st_size if self.f0 else 0

    def close(self) -> None:
        for f in (self.f0, self.f1):
            if f is not None:
                f.close()


def _log_fields(st: dict[str, Any]) -> tuple[Any, Any, Any]:
    return st.get("log_base"), st.get("log_ino"), st.get("log1_ino")


def _open(path: str) -> Any:
    try:
        return open(path, "rb")
    except OSError:
        return None


def _ino(f: Any) -> int | None:
    return os.fstat(f.fileno()).st_ino if f is not None else None


def log_end(d: str, sid: str) -> int:
    """The logical offset of the end of the recorded output."""
    v = _LogView(d, sid)
    try:
        return v.base + v.size0()
    finally:
        v.close()


def read_log(d: str, sid: str, since: int = 0, limit: int = -1) -> tuple[bytes, int]:
    """Bytes from logical offset `since` to the end (at most `limit`; -1 = all)
    and the logical offset just past them. Bytes rotated out of output.log.1
    are gone: reading then starts at the oldest byte still kept."""
    v = _LogView(d, sid)
    try:
        base, out, pos = v.base, b"", since
        if pos < base and v.f1 is not None:
            start1 = base - os.fstat(v.f1.fileno()).st_size
            pos = max(pos, start1)
            v.f1.seek(pos - start1)
            out = v.f1.read(limit)
            pos += len(out)
            if limit >= 0 and len(out) >= limit:
                return out, pos
        pos = max(pos, base)
        data = b""
        if v.f0 is not None:
            v.f0.seek(pos - base)
            data = v.f0.read(-1 if limit < 0 else limit - len(out))
        return out + data, pos + len(data)
    finally:
        v.close()


def tail_bytes(d: str, sid: str, n: int) -> bytes:
    end = log_end(d, sid)
    data, _ = read_log(d, sid, max(0, end - n))
    return data[-n:]


def iter_sessions(d: str) -> Iterator[tuple[str, dict[str, Any], dict[str, Any]]]:
    for sid in list_ids(d):
        yield sid, read_meta(d, sid), read_status(d, sid)
