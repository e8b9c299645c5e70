"""Process titles: the live registry, and so an on-disk-like format of its own.

    looop: root [running] <data dir>
    looop: pulse [running] <data dir>
    looop: worker <id> [<state>[ ⚑]] <data dir>

The data dir is last so it may contain spaces. Titles never carry secrets
(cmdlines are world-readable): no prompt, no command line, no environment.
This module is the only caller of setproctitle.
"""
from __future__ import annotations

import re
from typing import NamedTuple

FLAG = "⚑"
_RE = re.compile(r"^looop: (root|pulse|worker)(?: (\S+))? \[(\w+)( " + FLAG + r")?\] (.+)$")


class Title(NamedTuple):
    role: str
    sid: str
    state: str
    flagged: bool
    data_dir: str


def format_title(role: str, sid: str, state: str, flagged: bool, data_dir: str) -> str:
    who = f"{role} {sid}" if role == "worker" else role
    return f"looop: {who} [{state}{' ' + FLAG if flagged else ''}] {data_dir}"


def set_title(role: str, sid: str, state: str, flagged: bool, data_dir: str) -> None:
    # No SPT_NOENV: the title may then use the environ area, so long data-dir
    # paths are not cut (the argv area of `python looop` is ~30 bytes). That
    # wipes /proc/PID/environ of looop's own processes, which is why nothing
    # may rely on reading it — and why titles never carry secrets.
    import setproctitle
    setproctitle.setproctitle(format_title(role, sid, state, flagged, data_dir))


def parse_title(text: str) -> Title | None:
    m = _RE.match(text)
    if not m:
        return None
    role, sid, state, flag, d = m.groups()
    return Title(role, sid or role, state, bool(flag), d)
