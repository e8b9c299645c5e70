"""Owner of `<data>/.lock`: an exclusive flock held by the root (or by a
one-shot `looop tick`), with the holder's pid written inside.

The fd is close-on-exec; the root closes it in every child right after fork,
so a lock is never held by anything but its taker. A stale lock (holder dead)
never blocks: the kernel drops a flock with its last fd.
"""
from __future__ import annotations

import fcntl
import os

from looop.store import paths


class Held(Exception):
    """Another process holds the lock; `pid` is what it wrote inside ("?" if unreadable)."""

    def __init__(self, pid: str):
        super().__init__(pid)
        self.pid = pid


def take(d: str) -> int:
    """Take the lock without blocking and write our pid; returns the fd to
    keep open for as long as we hold it. Raises Held."""
    fd = os.open(paths.lock_path(d), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(fd, 32).decode(errors="replace").strip() or "?"
        os.close(fd)
        raise Held(holder) from None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    return fd


def is_root_of(pid: int, d: str) -> bool:
    """Is `pid` a live looop root of data dir `d` (by its process title)?"""
    from looop.store.title import title_of
    t = title_of(pid)
    return t is not None and t.role == "root" and t.data_dir == d


def live_root(d: str) -> int | None:
    """The pid inside the lock if it is a live root of `d`, else None."""
    try:
        with open(paths.lock_path(d), "rb") as f:
            text = f.read(32).decode(errors="replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() and is_root_of(int(text), d) else None
