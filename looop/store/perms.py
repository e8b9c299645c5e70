"""Owner-only data: every file looop writes in the data dir is 0600 (0700
for scripts), every dir 0700 — prompts, session metas, run prompts and events
say what the user is working on.

looop's own processes run under umask 077 (`own_files_only`, once at the
CLI entry point); what they start (workers, sensors, runners) gets the
user's umask back (`user_umask`), so the user's own files are untouched.
A data dir that existed with looser modes is tightened once at root start.
"""
from __future__ import annotations

import os
import stat

_USER_UMASK: list[int] = []
UNTOUCHED = ("reports",)  # deliverables for humans: looop never touches them


def own_files_only() -> None:
    """Umask 077 for this process; remembers the user's for its commands."""
    old = os.umask(0o077)
    if not _USER_UMASK:
        _USER_UMASK.append(old)


def user_umask() -> int:
    """The umask the user started looop with (what commands looop starts get)."""
    return _USER_UMASK[0] if _USER_UMASK else _current()


def _current() -> int:
    old = os.umask(0o077)
    os.umask(old)
    return old


def tighten(d: str) -> tuple[int, int]:
    """chmod go-rwx the data dir and what looop keeps in it (not reports/,
    never through a symlink). Returns (old mode of d, entries changed)."""
    old = stat.S_IMODE(os.lstat(d).st_mode)
    n = _fix(d, old)
    for root, dirs, files in os.walk(d):
        if root == d:
            dirs[:] = [x for x in dirs if x not in UNTOUCHED]
        for name in dirs + files:
            p = os.path.join(root, name)
            try:
                st = os.lstat(p)
            except OSError:
                continue
            if not stat.S_ISLNK(st.st_mode):
                n += _fix(p, stat.S_IMODE(st.st_mode))
    return old, n


def _fix(p: str, mode: int) -> int:
    if not mode & 0o077:
        return 0
    try:
        os.chmod(p, mode & 0o700)  # (callers never pass a symlink)
    except OSError:
        return 0
    return 1
