"""Owner of `journal.md`: one line per move, `- YYYY-MM-DD HH:MM <text>`,
ending ` · run <run-id>` when a beat's move wrote it (`looop why <run-id>`).

Appended with a single write per line (looop.store.atomic.append_line), so a
crash never leaves half a line and a concurrent reader never sees one. The
text is squeezed to one line: a decider cannot forge extra journal entries.
"""
from __future__ import annotations

import os
import time

from looop.store.atomic import append_line

NAME = "journal.md"
MAX_TEXT = 500


def path(d: str) -> str:
    return os.path.join(d, NAME)


def one_line(text: str, limit: int = MAX_TEXT) -> str:
    """Collapse whitespace (newlines included) and cut to `limit` chars."""
    s = " ".join(str(text).split())
    return s if len(s) <= limit else s[: limit - 1] + "…"


def append(d: str, text: str, now: float | None = None, run: str | None = None) -> str:
    """Append one entry; returns the line written (without newline)."""
    stamp = time.strftime("%Y-%m-%d %H:%M", time.localtime(now))
    line = f"- {stamp} {one_line(text) or '(no text)'}" + (f" · run {run}" if run else "")
    append_line(path(d), line)
    return line


def tail(d: str, n: int) -> list[str]:
    """The last `n` lines (fewer if the journal is shorter; [] if absent).

    Reads at most the last 256 KiB: the journal grows forever, a beat must not."""
    from looop.store.readfile import NotRegular, open_regular
    try:
        fd = open_regular(path(d), follow=True)
    except (FileNotFoundError, NotRegular):
        return []
    with os.fdopen(fd, "rb") as f:
        start = max(0, f.seek(0, os.SEEK_END) - (256 << 10))
        f.seek(start)
        data = f.read()
    if not data.endswith(b"\n"):
        data = data[:data.rfind(b"\n") + 1]  # a torn last line (in flight, or a crash)
    lines = data.decode("utf-8", "replace").splitlines()
    if start > 0 and lines:
        lines = lines[1:]  # the first line may be cut
    return [ln for ln in lines if ln.strip()][-n:] if n > 0 else []
