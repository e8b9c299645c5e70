"""Verbs that observe a session: from its files, and the screen over the socket.

They work on finished sessions too (where it makes sense) and on `pulse`.
Waiting verbs poll files with a deadline (50 ms period): no inotify needed,
and a dead root cannot leave them hanging.
"""
from __future__ import annotations

import os
import re
import sys
import time
from typing import Any

from looop.cli.args import duration, end_line, parser, said, session_arg
from looop.errors import LooopError, Timeout, UsageError
from looop.store import jsonio, paths, sessions

POLL = 0.05
_ANSI = re.compile(rb"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[()][0-9A-Za-z]|\x1b[@-Z\\^_=>]")


# an escape sequence cut at the end of a chunk
_CUT_ESC = re.compile(rb"\x1b(?:\[[0-?]*[ -/]*|\][^\x07\x1b]*|[()])?\Z")


_CR_NL = re.compile(rb"\r+\n")
_CR_AT_BOL = re.compile(rb"(?:(?<=\n)|^)\r+")
_CR_AFTER_NL = re.compile(rb"(?<=\n)\r+")


def strip_ansi(data: bytes, bol: bool = True) -> str:
    """Plain text of terminal output: escapes removed, CRLF → LF, and the
    carriage returns that move nothing (already at column 0) dropped.
    `bol`: `data` starts at the beginning of a line."""
    text = _CR_NL.sub(b"\n", _ANSI.sub(b"", data))
    return (_CR_AT_BOL if bol else _CR_AFTER_NL).sub(b"", text).decode("utf-8", "replace")


def split_cut(data: bytes) -> tuple[bytes, bytes]:
    """(complete, held back): hold back a trailing escape sequence or UTF-8
    character that the next chunk will complete (followers print clean text)."""
    m = _CUT_ESC.search(data, max(0, len(data) - 4096))
    if m is not None:
        return data[:m.start()], data[m.start():]
    if data.endswith(b"\r"):  # maybe the first half of a CRLF
        return data[:-1], data[-1:]
    for back in range(1, min(4, len(data)) + 1):  # a UTF-8 lead byte short of its tail?
        b = data[-back]
        if b < 0x80:
            break
        if b >= 0xc0:
            need = 2 if b < 0xe0 else 3 if b < 0xf0 else 4
            if back < need:
                return data[:-back], data[-back:]
            break
    return data, b""


def target(sid: str) -> tuple[str, str]:
    """(data dir, id) of an existing session; UsageError names a missing one."""
    d = paths.data_dir()
    sid = paths.check_id(sid, "session", allow_pulse=True)
    if not sessions.exists(d, sid):
        raise UsageError(f"no session {sid!r} (see `looop ls`)")
    return d, sid


def alive(d: str, sid: str) -> bool:
    """Is the session's supervising child still there, carrying its title?
    (pid + title, so a reused pid is never taken for the session)."""
    st = sessions.read_status(d, sid)
    if st.get("state") not in ("starting", "running") or not st.get("child_pid"):
        return False
    from looop.store.title import title_of
    t = title_of(int(st["child_pid"]))
    return t is not None and t.sid == sid and t.data_dir == d


def cmd_watch(argv: list[str]) -> int:
    p = parser("watch", "Follow a session's output read-only from the start, colors kept, "
                        "until it exits or Ctrl-C. `looop watch pulse` watches the loop. "
                        "A worker on an ssh host whose link drops ends with it (at once, or "
                        "after ssh's 15 s keepalive when nothing answers): one line says so, exit 1.")
    session_arg(p)
    d, sid = target(p.parse_args(argv).id)
    return _follow(d, sid, 0, raw=True)


def lost_link(sid: str, st: dict[str, Any]) -> str | None:
    """Why a follow ends in error: the session ended because its ssh link
    dropped (ssh's own 255, which it never passes on from a command that
    ran; a remote command exiting 255 reads the same). A follower must not
    end silently then, as if the worker had finished: scripts and people
    need to tell "done" from "cut off". None for every other end."""
    remote = st.get("remote") or {}
    if remote.get("engine") != "ssh" or st.get("state") != "exited" or st.get("exit_code") != 255:
        return None
    return (f"{sid} lost its ssh link to {remote.get('host')} (ssh exited 255): the worker ended "
            "with it; `looop ls --remote` shows whether anything of it is left there")


def _follow(d: str, sid: str, offset: int, raw: bool, held: bytes = b"") -> int:
    """Print new output until the session ends (checked before each read, so
    the last bytes are never missed) or Ctrl-C. A dropped ssh link ends the
    worker too (within ssh's keepalive, 5 s × 3, when nothing answers): one
    line on stderr and exit 1 (`lost_link`)."""
    out = sys.stdout.buffer
    bol = True
    try:
        while True:
            live = alive(d, sid)
            data, offset = sessions.read_log(d, sid, offset)
            if data:
                if raw:
                    out.write(data)
                else:
                    text, held = split_cut(held + data)
                    out.write(strip_ansi(text, bol).encode())
                    bol = text.endswith(b"\n") if text else bol
                out.flush()
            elif not live:
                if held:
                    out.write(strip_ansi(held, bol).encode())
                    out.flush()
                why = lost_link(sid, sessions.read_status(d, sid))
                if why:
                    raise LooopError(why)
                return 0
            else:
                time.sleep(POLL)
    except KeyboardInterrupt:
        end_line()
        return 0


def cmd_log(argv: list[str]) -> int:
    p = parser("log", "Show a session's recorded output (ANSI stripped unless --raw).")
    session_arg(p)
    p.add_argument("--tail", type=int, metavar="N", help="only the last N lines")
    p.add_argument("--grep", metavar="RE", help="only lines matching RE")
    p.add_argument("--raw", action="store_true", help="bytes exactly as recorded, colors kept")
    p.add_argument("--since", type=int, default=0, metavar="OFFSET", help="start at a byte offset")
    p.add_argument("-f", "--follow", action="store_true", help="keep following until it exits (exit 1 with one line if its ssh link dropped)")
    p.add_argument("--json", action="store_true", help='{"text", "offset", "done"}')
    a = p.parse_args(argv)
    d, sid = target(a.id)
    if a.since < 0:
        raise UsageError("--since must be >= 0")
    if a.tail is not None and a.tail < 0:
        raise UsageError("--tail must be >= 0")
    if a.follow and not (a.grep or a.tail is not None or a.json):
        return _follow(d, sid, a.since, raw=a.raw)  # one path, chunk boundaries handled
    if a.tail is not None and not a.grep:
        data, offset = tail_log(d, sid, max(a.tail, 0), a.since)
    else:
        data, offset = sessions.read_log(d, sid, a.since)
    text = data.decode("utf-8", "replace") if a.raw else strip_ansi(data)
    matched = True
    if a.grep:
        try:
            rx = re.compile(a.grep)
        except re.error as e:
            raise UsageError(f"bad --grep regex: {e}") from None
        text = "".join(ln for ln in text.splitlines(keepends=True) if rx.search(ln))
        matched = bool(text)  # like grep: no match → exit 1
    if a.tail is not None:
        text = "".join(text.splitlines(keepends=True)[-a.tail:] if a.tail > 0 else [])
    if a.json:
        print(jsonio.dumps({"text": text, "offset": offset, "done": not alive(d, sid)}))
        return 0 if matched else 1
    if a.raw and not a.grep and a.tail is None:
        sys.stdout.buffer.write(data)
    else:
        sys.stdout.write(text)
    sys.stdout.flush()
    if a.follow:
        return _follow(d, sid, offset, raw=a.raw)
    return 0 if matched else 1


def tail_log(d: str, sid: str, n: int, since: int = 0) -> tuple[bytes, int]:
    """The bytes holding the last `n` lines, read backwards from the end in
    growing windows (a 40 MB log costs a few reads, not the whole file)."""
    end = sessions.log_end(d, sid)
    size = 64 << 10
    while True:
        start = max(since, end - size)
        data, offset = sessions.read_log(d, sid, start)
        clipped = offset - len(data) > start  # asked for bytes already rotated away
        if start <= since or clipped or data.count(b"\n") > n:
            if start > since and not clipped and b"\n" in data:
                data = data[data.index(b"\n") + 1:]  # a partial first line
            return data, offset
        size *= 4


def _trimmed(snap: dict[str, Any]) -> dict[str, Any]:
    """`shot --json --trim`: the same trim as the text forms, in lines and cells."""
    from looop.ui.screen import _trim_runs
    lines = [ln.rstrip(" ") for ln in snap["lines"]]
    while lines and not lines[-1]:
        lines.pop()
    return dict(snap, lines=lines, cells=[_trim_runs(r) for r in snap["cells"][:len(lines)]])


def screen_of(d: str, sid: str) -> dict[str, Any]:
    """The live screen from the child, or a replay of the log's tail at the
    size the session last had (status.json cols/rows)."""
    if alive(d, sid):
        from looop.tree import control
        try:
            return control.call(d, "shot", id=sid)["screen"]
        except LooopError:
            pass  # it ended meanwhile: replay
    from looop import screen
    if not os.path.exists(sessions.log_path(d, sid)):
        raise LooopError(f"session {sid} has no recorded output ({sessions.log_path(d, sid)} is gone)")
    st = sessions.read_status(d, sid)
    cols, rows = _int(st.get("cols"), 80), _int(st.get("rows"), 24)
    data = sessions.tail_bytes(d, sid, screen.replay_tail())
    # the pulse's PTY has ONLCR off: its bare LFs also return the carriage
    return screen.replay(data, cols, rows, lnm=sid == "pulse").snapshot()


def _int(v: Any, default: int) -> int:
    return v if isinstance(v, int) and not isinstance(v, bool) and v > 0 else default


def cmd_shot(argv: list[str]) -> int:
    from looop.ui.screen import render
    p = parser("shot", "The current screen through a terminal emulator; a finished session is "
                       "replayed at the size it last had.")
    session_arg(p)
    g = p.add_mutually_exclusive_group()
    g.add_argument("--ansi", action="store_true", help="keep colors and attributes")
    g.add_argument("--json", action="store_true", help="cols, rows, cursor, lines, cells")
    g.add_argument("--format", choices=("plain", "ansi", "json"))
    p.add_argument("--trim", action="store_true", help="drop trailing spaces and blank lines")
    a = p.parse_args(argv)
    fmt = a.format or ("ansi" if a.ansi else "json" if a.json else "plain")
    snap = screen_of(*target(a.id))
    if fmt == "json":
        print(jsonio.dumps(_trimmed(snap) if a.trim else snap))
    else:
        print(render(snap, ansi=fmt == "ansi", trim=a.trim))
    return 0


def cmd_expect(argv: list[str]) -> int:
    p = parser("expect", "Block until REGEX matches the output (or the screen). Exit 124 on timeout. "
                         "Right after a `send`, never inside the echo of the text just sent.")
    session_arg(p)
    p.add_argument("regex")
    p.add_argument("--timeout", default="30s")
    p.add_argument("--from-now", action="store_true", help="only output produced from now on")
    p.add_argument("--screen", action="store_true", help="match the rendered screen instead")
    p.add_argument("--raw", action="store_true", help="match raw bytes (ANSI kept)")
    p.add_argument("--since", type=int, metavar="N", help="start at byte offset N")
    p.add_argument("--json", action="store_true")
    a = p.parse_args(argv)
    d, sid = target(a.id)
    try:
        rx = re.compile(a.regex, re.MULTILINE)
    except re.error as e:
        raise UsageError(f"bad regex: {e}") from None
    deadline = time.monotonic() + duration(a.timeout)
    # right after a `send`: the log from the end of its echo on; the screen
    # without the echo itself (on the row it was typed on). A finished
    # session's old output stays searchable from the start.
    sent = sessions.read_sent(d, sid) if a.since is None and not a.from_now and alive(d, sid) else {}
    echo = str(sent.get("text") or "") if a.screen else ""
    echo_row = sent.get("row") if isinstance(sent.get("row"), int) else -1
    end = sessions.log_end(d, sid) if a.from_now else (a.since if a.since is not None
                                                       else int(sent.get("offset") or 0))
    seen = b""
    while True:
        live = alive(d, sid)  # before reading: a session that ended has logged everything
        if a.screen:
            from looop.ui.screen import screen_text
            hay, end = screen_text(screen_of(d, sid)), None
        else:
            data, end = sessions.read_log(d, sid, end)  # only the new bytes
            seen += data
            hay = seen.decode("utf-8", "replace") if a.raw else strip_ansi(seen)
        m = first_outside(rx, hay, echo, echo_row if a.screen else -1)
        if m:
            if a.json:
                print(jsonio.dumps({"match": m.group(0), "groups": list(m.groups()), "offset": end}))
            else:
                print(m.group(0))
            return 0
        if not live:
            raise LooopError(f"session {sid} ended without a match")
        if time.monotonic() >= deadline:
            raise Timeout(f"no match for {a.regex!r} within {said(a.timeout)}")
        time.sleep(POLL)


def first_outside(rx: "re.Pattern[str]", hay: str, echo: str, row: int) -> "re.Match[str] | None":
    """The first match of `rx` not inside the echo: the occurrence of `echo`
    on screen row `row` (of the newline-joined screen `hay`)."""
    at = -1
    if echo and row >= 0:
        start = sum(len(ln) + 1 for ln in hay.split("\n")[:row])
        end = hay.find("\n", start)
        at = hay.find(echo, start, len(hay) if end < 0 else end)
    for m in rx.finditer(hay):
        if at < 0 or not (at <= m.start() and m.end() <= at + len(echo)):
            return m
    return None


UNTIL = ("ready", "asking", "working", "limited", "stuck", "exit")


def cmd_wait(argv: list[str]) -> int:
    p = parser("wait", "Block until the session exits (exit with its code) or, with --until, "
                       "its activity reaches a state (exit 0); 124 on timeout.")
    session_arg(p)
    p.add_argument("--timeout", help="give up after this long (default: wait forever)")
    p.add_argument("--until", default="exit", metavar="STATE", help=" | ".join(UNTIL) + " (default exit)")
    a = p.parse_args(argv)
    if a.until not in UNTIL:
        raise UsageError(f"unknown --until {a.until!r} (one of: {', '.join(UNTIL)})")
    d, sid = target(a.id)
    deadline = time.monotonic() + duration(a.timeout) if a.timeout else None
    if a.until != "exit":
        return _wait_activity(d, sid, a.until, deadline, a.timeout)
    while alive(d, sid):
        if deadline is not None and time.monotonic() >= deadline:
            raise Timeout(f"{sid} still running after {said(a.timeout)}")
        time.sleep(POLL)
    st = sessions.read_status(d, sid)
    code = st.get("exit_code")
    if not isinstance(code, int):
        raise LooopError(f"session {sid} ended without an exit code "
                         f"(state {st.get('state') or 'unknown'} on disk: was its looop killed?)")
    return code


def _wait_activity(d: str, sid: str, until: str, deadline: float | None, shown: str | None) -> int:
    from looop.registry import activity_of
    while True:
        now = activity_of(d, sid)
        if now == until:
            return 0
        if now is None and not alive(d, sid):
            raise LooopError(f"session {sid} ended before it was {until}")
        if deadline is not None and time.monotonic() >= deadline:
            raise Timeout(f"{sid} is {now or 'not live'}, not {until}, after {shown}")
        time.sleep(POLL)


def cmd_wait_idle(argv: list[str]) -> int:
    p = parser("wait-idle", "Block until the output is quiet for --settle (exit 124 on timeout).")
    session_arg(p)
    p.add_argument("--settle", default="500ms")
    p.add_argument("--timeout", default="30s")
    a = p.parse_args(argv)
    d, sid = target(a.id)
    settle, deadline = duration(a.settle), time.monotonic() + duration(a.timeout)
    last, quiet_since = sessions.log_end(d, sid), time.monotonic()
    while True:
        now = time.monotonic()
        end = sessions.log_end(d, sid)
        if end != last:
            last, quiet_since = end, now
        elif now - quiet_since >= settle:
            return 0
        if now >= deadline:
            raise Timeout(f"{sid} still producing output after {said(a.timeout)}")
        time.sleep(POLL)
