"""Atomic writes and whole-line appends.

A crash at any moment leaves a file either old or new: write a temp file in the
same directory, fsync, rename over. Appends are one `write` of a whole line on
an O_APPEND fd, so concurrent appenders never interleave within a line.
"""
from __future__ import annotations

import os
import re


def write_atomic(path: str, data: bytes | str, mode: int = 0o600, fsync: bool = True) -> None:
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


def create_exclusive(path: str, data: bytes | str, mode: int = 0o600) -> bool:
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


SPARE = 4096  # one page/block: what a spare holds without allocating more


def spare_path(path: str) -> str:
    return os.path.join(os.path.dirname(path) or ".", f".{os.path.basename(path)}.spare")


def make_spare(path: str) -> None:
    """Set aside one block for `path` while there is room (see write_spare)."""
    sp = spare_path(path)
    if not os.path.exists(sp):
        write_atomic(sp, b" " * SPARE, mode=0o600, fsync=False)


def write_spare(path: str, data: bytes) -> None:
    """Replace `path` with `data` on a full disk, still atomically: overwrite
    the spare's already-allocated block (no new space needed), rename it over
    `path`, and keep the old file as the next spare (a hard link holds it
    across the rename). Raises OSError if there is no spare or `data` is
    larger than one block."""
    if len(data) > SPARE:
        raise OSError(28, "too large for the spare block", path)
    sp = spare_path(path)
    fd = os.open(sp, os.O_WRONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    try:
        if os.pwrite(fd, data, 0) != len(data):
            raise OSError(28, "short write to the spare block", sp)
        os.ftruncate(fd, len(data))
    finally:
        os.close(fd)
    old = sp + ".old"
    try:
        os.link(path, old)
    except FileNotFoundError:
        old = ""
    os.replace(sp, path)
    if old:
        os.replace(old, sp)


def append_line(path: str, line: str | bytes) -> None:
    """Append one whole line (newline added if missing), or nothing.

    Under an flock shared by every looop appender: if the file does not end
    in a newline (a line torn by someone else, or a crash) ours starts on a
    fresh one, so the tear never takes our record with it; a short write
    (a nearly full disk) is truncated back to the old size and raises.
    Never blocks on a FIFO (O_NONBLOCK; refused: not a regular file)."""
    import fcntl

    from looop.store.readfile import check_regular
    if isinstance(line, str):
        line = line.encode()
    if not line.endswith(b"\n"):
        line += b"\n"
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC | os.O_NONBLOCK
                 | os.O_NOFOLLOW, 0o600)
    try:
        check_regular(fd, path)
        fcntl.flock(fd, fcntl.LOCK_EX)
        size = os.fstat(fd).st_size
        if size and os.pread(fd, 1, size - 1) != b"\n":
            line = b"\n" + line
        try:
            done = 0
            while done < len(line):
                done += os.write(fd, line[done:])
        except OSError as e:
            os.ftruncate(fd, size)  # nothing visible of a line we could not finish
            if e.filename is None:
                e.filename = path
            raise
    finally:
        os.close(fd)



def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


_TMP = re.compile(r"^\..+\.(\d+)(?:\.x)?\.tmp$")


def sweep_tmp(d: str, skip: tuple[str, ...] = ("reports",)) -> list[str]:
    """Remove temp files of write_atomic calls that died mid-write (their
    writer's pid is gone), anywhere below `d`. Returns the paths removed."""
    gone = []
    for root, dirs, files in os.walk(d):
        if root == d:
            dirs[:] = [x for x in dirs if x not in skip]
        for name in files:
            m = _TMP.match(name)
            if m and not _alive(int(m.group(1))):
                _unlink(os.path.join(root, name))
                gone.append(os.path.join(root, name))
    return gone


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return pid != 0
