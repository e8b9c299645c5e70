"""Owner of the ask exchange: `asks/<worker>-<n>.json` and `answers/<ask-id>.json`.

An ask is a worker's question to a human (or the decider):
  asks/<id>.json     {"v": 1, "id", "worker", "prompt", "options"?, "ref"?,
                      "ts", "pid", "pid_started"}  — created exclusively by
                     the asking process; `pid`/`pid_started` are its identity,
                     so a reader can tell a stranded ask (asker gone).
  answers/<id>.json  {"v": 1, "answer", "ts", "by"} — created exclusively:
                     the first answer wins; `--force` replaces it atomically
                     while it is not yet delivered.
  asks/done/<id>.json the ask, moved there once its asker printed the answer
                     (delivered). Numbers never repeat: `n` counts both dirs.
  asks/.wake         empty; rewritten by `wake_watchers` (a worker child whose
                     activity starts needing someone) to wake inotify on asks/.

States, derived from the files alone: *pending* (no answer), *answered* (an
answer, not yet delivered), *delivered* (in done/). An asker that gives up
(timeout, killed) leaves its ask pending; asking the same question again from
the same worker resumes it — and returns at once if it was answered meanwhile.
"""
from __future__ import annotations

import os
import re
import time
from typing import Any

from looop.errors import LooopError, UsageError
from looop.store import jsonio, paths
from looop.store.atomic import create_exclusive, write_atomic
from looop.store.sessions import rfc3339

V = 1
MAX_BYTES = 1 << 20      # one record; an answer or question beyond it is refused
MAX_TEXT = 64 << 10      # a question or an answer, in characters
_NUM = re.compile(r"-(\d{1,9})$")


def asks_dir(d: str) -> str:
    return os.path.join(d, "asks")


def done_dir(d: str) -> str:
    return os.path.join(d, "asks", "done")


def answers_dir(d: str) -> str:
    return os.path.join(d, "answers")


def check_ask_id(value: str) -> str:
    """`<worker>-<n>`; UsageError for anything else (`/`, `..`, …) before any disk access."""
    aid = paths.check_id(value, "ask id", allow_pulse=True)
    if not _NUM.search(aid):
        raise UsageError(f"invalid ask id {aid!r}: ask ids look like <worker>-<n>, e.g. w1-3")
    return aid


def _path(d: str, aid: str) -> str:
    return os.path.join(asks_dir(d), aid + ".json")


def _answer_path(d: str, aid: str) -> str:
    return os.path.join(answers_dir(d), aid + ".json")


def _load(path: str) -> dict[str, Any] | None:
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_BYTES + 1)
        obj = jsonio.loads(raw) if len(raw) <= MAX_BYTES else None
    except (OSError, ValueError):
        return None
    return obj if isinstance(obj, dict) else None


def _n(aid: str) -> int:
    m = _NUM.search(aid)
    return int(m.group(1)) if m else 0


def _numbers(d: str, worker: str) -> list[int]:
    out = []
    for base in (asks_dir(d), done_dir(d)):
        try:
            names = os.listdir(base)
        except FileNotFoundError:
            continue
        for n in names:
            stem = n[:-5] if n.endswith(".json") else ""
            if stem.startswith(worker + "-") and stem[len(worker) + 1:].isdigit():
                out.append(int(stem[len(worker) + 1:]))
    return out


def _text(value: str, what: str) -> str:
    if len(value) > MAX_TEXT:
        raise UsageError(f"{what} is {len(value)} characters (cap {MAX_TEXT})")
    return value


def create(d: str, worker: str, prompt: str, options: list[str] | None = None,
           ref: str | None = None, pid: int | None = None,
           pid_started: float | None = None) -> dict[str, Any]:
    """A new pending ask (or the same undelivered question from this worker,
    resumed under the new asker pid). Returns the record."""
    worker = paths.check_id(worker, "session")
    _text(prompt, "the question")
    same = [a for a in pending(d, answered=True)
            if a.get("worker") == worker and a.get("prompt") == prompt
            and a.get("options") == (options or None) and a.get("ref") == ref]
    if same:
        rec = dict(same[0], pid=pid, pid_started=pid_started)
        write_atomic(_path(d, rec["id"]), jsonio.dumpb(rec))
        return rec
    os.makedirs(asks_dir(d), exist_ok=True)
    n = max(_numbers(d, worker), default=0) + 1
    while True:
        rec: dict[str, Any] = {"v": V, "id": f"{worker}-{n}", "worker": worker, "prompt": prompt}
        if options:
            rec["options"] = list(options)
        if ref:
            rec["ref"] = ref
        rec.update(ts=rfc3339(), pid=pid, pid_started=pid_started)
        if create_exclusive(_path(d, rec["id"]), jsonio.dumpb(rec)):
            return rec
        n += 1  # another asker of this worker took n meanwhile


def read(d: str, aid: str) -> dict[str, Any] | None:
    """The ask record (pending or answered, not delivered), or None."""
    return _load(_path(d, check_ask_id(aid)))


def read_answer(d: str, aid: str) -> dict[str, Any] | None:
    return _load(_answer_path(d, check_ask_id(aid)))


def pending(d: str, answered: bool = False) -> list[dict[str, Any]]:
    """Undelivered asks, oldest first; unanswered only unless `answered`.
    A record that does not parse is skipped (and left alone)."""
    try:
        names = sorted(n for n in os.listdir(asks_dir(d)) if n.endswith(".json") and not n.startswith("."))
    except FileNotFoundError:
        return []
    out = []
    for n in names:
        rec = _load(os.path.join(asks_dir(d), n))
        if rec is None or rec.get("id") != n[:-5] or not isinstance(rec.get("prompt"), str):
            continue
        if not answered and os.path.exists(_answer_path(d, rec["id"])):
            continue
        out.append(rec)
    out.sort(key=lambda r: (str(r.get("ts")), str(r.get("worker")), _n(r["id"])))
    return out


def answer(d: str, aid: str, text: str, force: bool = False, by: str = "human") -> dict[str, Any]:
    """Record the answer; returns the ask it answers. LooopError, one line,
    when the ask is missing, delivered, already answered (without `force`)
    or the answer is not one of its options."""
    aid = check_ask_id(aid)
    _text(text, "the answer")
    rec = read(d, aid)
    if rec is None:
        if os.path.exists(os.path.join(done_dir(d), aid + ".json")):
            raise LooopError(f"ask {aid} was already answered and its answer delivered")
        raise LooopError(f"no pending ask {aid!r} (see `looop inbox`)")
    opts = rec.get("options")
    if opts and text not in opts:
        raise LooopError(f"{text!r} is not one of the options of {aid}: {', '.join(map(str, opts))}")
    os.makedirs(answers_dir(d), exist_ok=True)
    data = jsonio.dumpb({"v": V, "answer": text, "ts": rfc3339(), "by": by})
    if force:
        write_atomic(_answer_path(d, aid), data)
    elif not create_exclusive(_answer_path(d, aid), data):
        raise LooopError(f"ask {aid} is already answered (--force overwrites)")
    return rec


WAKE = ".wake"  # rewritten to wake whoever watches asks/ (the pulse's inbox watcher)


def wake_watchers(d: str) -> None:
    """Best effort: rewrite asks/.wake so an inotify watcher of asks/ (the
    pulse's notifier) checks the inbox now — a worker's activity just began
    needing someone (asking, limited, stuck), which is no ask file. Never
    read by anyone; `pending` skips dot-files."""
    try:
        os.makedirs(asks_dir(d), exist_ok=True)
        write_atomic(os.path.join(asks_dir(d), WAKE), b"", fsync=False)
    except OSError:
        pass  # the poll catches it anyway


def deliver(d: str, aid: str) -> None:
    """The asker printed the answer: move the ask to done/ (once)."""
    os.makedirs(done_dir(d), exist_ok=True)
    try:
        os.replace(_path(d, aid), os.path.join(done_dir(d), aid + ".json"))
    except FileNotFoundError:
        pass


def reap(d: str, ttl: float, sessions_present: set[str], now: float | None = None) -> list[str]:
    """Housekeeping: close pending asks whose worker's session dir is gone
    (reaped: nobody can ever ask again), then delete delivered asks and their
    answers older than `ttl`. Returns the ids deleted."""
    now = time.time() if now is None else now
    for rec in pending(d, answered=True):
        if rec.get("worker") not in sessions_present:
            deliver(d, rec["id"])
    gone = []
    try:
        names = os.listdir(done_dir(d))
    except FileNotFoundError:
        return gone
    for n in names:
        p = os.path.join(done_dir(d), n)
        try:
            if not n.endswith(".json") or now - os.path.getmtime(p) <= ttl:
                continue
            os.unlink(p)
        except OSError:
            continue
        gone.append(n[:-5])
        try:
            os.unlink(os.path.join(answers_dir(d), n))
        except OSError:
            pass
    return gone


def asker_alive(rec: dict[str, Any]) -> bool:
    """Is the process that asked still waiting? (pid, create time) identity;
    an ask without a recorded pid counts as waiting."""
    pid, started = rec.get("pid"), rec.get("pid_started")
    if not isinstance(pid, int) or pid <= 0:
        return True
    import psutil
    try:
        p = psutil.Process(pid)
        if p.status() == psutil.STATUS_ZOMBIE:
            return False
        return not isinstance(started, (int, float)) or abs(p.create_time() - started) < 0.05
    except psutil.Error:
        return False


def wait_answer(d: str, aid: str, timeout: float) -> dict[str, Any] | None:
    """Block until answers/<aid>.json exists (or `timeout` seconds pass:
    None). Wakes on inotify where the kernel has it, else polls every 0.25 s;
    with inotify it still rechecks every second, so a missed event costs at
    most that."""
    path = _answer_path(d, aid)
    os.makedirs(answers_dir(d), exist_ok=True)
    deadline = time.monotonic() + timeout
    with DirWatch(answers_dir(d)) as w:
        while True:
            rec = _load(path)
            if rec is not None and isinstance(rec.get("answer"), str):
                return rec
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            w.wait(min(left, 1.0 if w.fd is not None else 0.25))


class DirWatch:
    """inotify on one directory through libc (no dependency); a no-op
    object (fd None) where that is unavailable, and the caller polls."""

    IN_CREATE, IN_MOVED_TO, IN_CLOSE_WRITE = 0x100, 0x80, 0x8

    def __init__(self, path: str):
        self.fd: int | None = None
        try:
            import ctypes
            libc = ctypes.CDLL(None, use_errno=True)
            fd = libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
            if fd < 0:
                return
            if libc.inotify_add_watch(fd, os.fsencode(path),
                                      self.IN_CREATE | self.IN_MOVED_TO | self.IN_CLOSE_WRITE) < 0:
                os.close(fd)
                return
            self.fd = fd
        except (OSError, AttributeError):
            self.fd = None

    def wait(self, secs: float) -> None:
        if self.fd is None:
            time.sleep(secs)
            return
        import select
        r, _, _ = select.select([self.fd], [], [], secs)
        if r:
            try:
                os.read(self.fd, 65536)
            except BlockingIOError:
                pass

    def __enter__(self) -> "DirWatch":
        return self

    def __exit__(self, *_: Any) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
