"""Bounded, non-blocking reads of data-dir files.

Anything in the data dir may be replaced by a runner, a worker or the user
with a FIFO, a device or a symlink. A plain `open()` of a FIFO blocks until a
writer shows up — forever, for the pulse — so every read here opens with
O_NONBLOCK (and O_NOFOLLOW where looop itself wrote the file), refuses what is
not a regular file with a clear error, and reads at most `limit` bytes.
"""
from __future__ import annotations

import errno
import os
import stat

DEFAULT_LIMIT = 16 << 20

_KINDS = ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"),
          (stat.S_ISDIR, "a directory"))


class NotRegular(OSError):
    """The path exists but is not a regular file (or is a symlink we refuse)."""


def open_regular(path: str, follow: bool = False) -> int:
    """An O_RDONLY fd on a regular file; never blocks. Raises
    FileNotFoundError, NotRegular, or another OSError."""
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | (0 if follow else os.O_NOFOLLOW)
    try:
        fd = os.open(path, flags)
    except OSError as e:
        if e.errno == errno.ELOOP and not follow:
            raise NotRegular(errno.ELOOP, "a symlink (refused)", path) from None
        raise
    try:
        check_regular(fd, path)
    except OSError:
        os.close(fd)
        raise
    return fd


def check_regular(fd: int, path: str) -> None:
    """Raise NotRegular (naming what it is) unless `fd` is a regular file."""
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        kind = next((name for test, name in _KINDS if test(mode)), "not a regular file")
        raise NotRegular(errno.EINVAL, kind + " (refused: not a regular file)", path)


def read_bounded(path: str, limit: int = DEFAULT_LIMIT, follow: bool = False) -> bytes:
    """At most `limit` bytes of a regular file (read `limit + 1` to detect
    an oversized one). Raises like open_regular."""
    fd = open_regular(path, follow)
    try:
        chunks, left = [], limit
        while left > 0:
            b = os.read(fd, min(left, 1 << 20))
            if not b:
                break
            chunks.append(b)
            left -= len(b)
        return b"".join(chunks)
    finally:
        os.close(fd)


def describe(e: OSError) -> str:
    """`<name> is a FIFO (refused: …)` for a one-line message."""
    name = os.path.basename(e.filename) if isinstance(e.filename, str) else "file"
    return f"{name} is {e.strerror}" if isinstance(e, NotRegular) else f"{name}: {e.strerror or e}"
