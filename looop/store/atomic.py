"""Atomic writes and whole-line appends.

A crash at any moment leaves a file either old or new: write a temp file in the
same directory, fsync, rename over. Appends are one `write` of a whole line on
an O_APPEND fd, so concurrent appenders never interleave within a line.
"""
from __future__ import annotations

import os


def write_atomic(path: str, data: bytes | str, mode: int = 0o644, fsync: bool = True) -> None:
    """Replace `path` with `data`. Raises OSError (old file intact) on failure."""
    if isinstance(data, str):
        data = data.encode()
    d = os.path.dirname(path) or "."
    tmp = os.path.join(d, f".{os.path.basename(path)}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, mode)
    try:
        view = memoryview(data)
        while view:
            n = os.write(fd, view)
            view = view[n:]
        if fsync:
            os.fsync(fd)
        os.fchmod(fd, mode)
    except BaseException:
        os.close(fd)
        _unlink(tmp)
        raise
    os.close(fd)
    try:
        os.replace(tmp, path)
    except BaseException:
        _unlink(tmp)
        raise


def create_exclusive(path: str, data: bytes | str, mode: int = 0o644) -> bool:
    """Create `path` with `data` only if it does not exist; False if it does.

    Exclusive *and* whole: the bytes go to a temp file first and are then
    hard-linked into place (link(2) fails with EEXIST like O_EXCL), so a
    reader never sees a half-written record and two racing creators cannot
    both win."""
    if isinstance(data, str):
        data = data.encode()
    d = os.path.dirname(path) or "."
    tmp = os.path.join(d, f".{os.path.basename(path)}.{os.getpid()}.x.tmp")
    write_atomic(tmp, data, mode)
    try:
        os.link(tmp, path)
    except FileExistsError:
        return False
    finally:
        _unlink(tmp)
    return True


def append_line(path: str, line: str | bytes) -> None:
    """Append one line (newline added if missing) with a single write."""
    if isinstance(line, str):
        line = line.encode()
    if not line.endswith(b"\n"):
        line += b"\n"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o644)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass
