"""Process titles: the live registry, and so an on-disk-like format of its own.

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
# rest as the format. This module is the only caller of setproctitle.)
from __future__ import annotations

import re
from typing import NamedTuple

FLAG = "⚑"
_RE = re.compile(r"^looop: (root|pulse|worker)(?: (\S+))? \[(\w+)( " + FLAG + r")?(?: ([a-z]+) (\d+))?\] (.+)$")


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
    role, sid, state, flag, act, since, d = m.groups()
    return Title(role, sid or role, state, bool(flag), d, act, int(since) if since else None)
