"""Process titles: the live registry, and so an on-disk-like format of its
own — its one owner: format, parse, set (the only setproctitle caller) and
scan (`live_titles`, `title_of`: every reader of titles goes through these).

    looop: root [running] <data dir>
    looop: pulse [running] <data dir>
    looop: worker <id> [<state>[ ⚑][ <activity> <since>]] <data dir>

`<activity>` is the worker's activity (SPEC §15: starting, working, ready,
asking, limited, stuck) and `<since>` the Unix second it began, so `ls`
shows the ACTIVITY column from one title scan; its evidence (screen text,
which may be anything) is never in a title, only in status.json.
The data dir is last so it may contain spaces. Titles never carry secrets
(cmdlines are world-readable): no prompt, no command line, no environment.
"""
# (The first paragraph above is about this module; `looop help` prints the
# rest as the format.) It lives in store/ (formats, the lowest layer) so the
# lock, the registry, the tree and the CLI all read titles the same way.
from __future__ import annotations

import os
import re
from typing import Iterator, NamedTuple

FLAG = "⚑"
# a worker names its id, root and pulse do not (what format_title writes, only)
_RE = re.compile(r"^looop: (?:(root|pulse)|(worker) (\S+)) \[(\w+)( " + FLAG + r")?(?: ([a-z]+) (\d+))?\] (.+)$")


class Title(NamedTuple):
    role: str
    sid: str
    state: str
    flagged: bool
    data_dir: str
    activity: str | None = None
    since: int | None = None


def format_title(role: str, sid: str, state: str, flagged: bool, data_dir: str,
                 activity: str | None = None, since: float | None = None) -> str:
    who = f"{role} {sid}" if role == "worker" else role
    act = f" {activity} {int(since or 0)}" if activity else ""
    return f"looop: {who} [{state}{' ' + FLAG if flagged else ''}{act}] {data_dir}"


def set_title(role: str, sid: str, state: str, flagged: bool, data_dir: str,
              activity: str | None = None, since: float | None = None) -> None:
    # No SPT_NOENV: the title may then use the environ area, so long data-dir
    # paths are not cut (the argv area of `python looop` is ~30 bytes). That
    # wipes /proc/PID/environ of looop's own processes, which is why nothing
    # may rely on reading it — and why titles never carry secrets.
    import setproctitle
    setproctitle.setproctitle(format_title(role, sid, state, flagged, data_dir, activity, since))


def set_helper_title(what: str) -> None:
    """A short-lived helper forked from a looop process (an ssh stop): a
    title that is never parsed as the process it was forked from."""
    import setproctitle
    setproctitle.setproctitle(f"looop-helper {what}")


def parse_title(text: str) -> Title | None:
    m = _RE.match(text)
    if not m:
        return None
    fixed, worker, sid, state, flag, act, since, d = m.groups()
    return Title(fixed or worker, sid or fixed, state, bool(flag), d, act, int(since) if since else None)


MAX_READ = 16384  # a title with the longest data dir fits (PATH_MAX 4096)


def live_titles() -> Iterator[tuple[int, Title]]:
    """(pid, title) of every looop process on the machine: a raw /proc scan
    on Linux (no psutil import: `ls` costs about one scan), psutil elsewhere."""
    if not _have_proc():
        yield from _psutil_titles()
        return
    try:
        names = os.listdir("/proc")
    except OSError:
        return
    for name in names:
        if name.isdigit():
            t = _proc_title(int(name))
            if t is not None:
                yield int(name), t


def title_of(pid: int) -> Title | None:
    """The looop title `pid` carries now (one /proc read on Linux: cheap to
    poll), None if it carries none or is gone. A reused pid carries another
    title (or none), so title + pid is an identity check."""
    if _have_proc():
        return _proc_title(pid)
    import psutil
    try:
        return parse_title(_joined(psutil.Process(pid).cmdline()))
    except psutil.Error:
        return None


def _proc_title(pid: int) -> Title | None:
    # os.open/os.read, not open(): `ls` reads every pid's cmdline, and a
    # buffered file object costs more than the read itself (at N=200, ~600 pids)
    try:
        fd = os.open(f"/proc/{pid}/cmdline", os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None  # gone meanwhile, or not ours to read
    try:
        raw = os.read(fd, MAX_READ)
        if not raw.startswith(b"looop:"):
            return None
        # one read returns the whole cmdline up to the count (the kernel
        # loops over pages); read on only after a page-sized piece, to be sure
        while raw and len(raw) % 4096 == 0 and len(raw) < MAX_READ:
            more = os.read(fd, MAX_READ - len(raw))
            if not more:
                break
            raw += more
    except OSError:
        return None
    finally:
        os.close(fd)
    # setproctitle pads with NULs; argv-style NULs join as spaces
    return parse_title(_joined(raw.decode("utf-8", "replace").split("\0")))


def _psutil_titles() -> Iterator[tuple[int, Title]]:
    import psutil
    for p in psutil.process_iter(["cmdline"]):
        cl = p.info.get("cmdline")
        if cl and cl[0].startswith("looop:"):
            t = parse_title(_joined(cl))
            if t is not None:
                yield p.pid, t


def _joined(parts: list[str]) -> str:
    return " ".join(x for x in parts if x)


_PROC: list[bool] = []


def _have_proc() -> bool:
    """Linux's /proc layout (checked once per process)."""
    if not _PROC:
        _PROC.append(os.path.isdir("/proc/self"))
    return _PROC[0]
