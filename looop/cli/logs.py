"""`looop logs`: every session's new output in one stream, each line
prefixed with its session id (like `pm2 logs`). Polls the logs on disk (no
socket): a session that starts later joins from its first byte; Ctrl-C stops.
"""
from __future__ import annotations

import sys
import time

from looop.cli.args import duration, end_line, parser
from looop.errors import UsageError
from looop.store import paths, sessions

MAX_HELD = 64 << 10  # a partial line longer than this is printed as it is


def cmd_logs(argv: list[str]) -> int:
    from looop.cli.observe import strip_ansi
    p = parser("logs", "Follow every session's new output, one stream, each line prefixed "
                       "`<id> | `. Sessions that start later join from their first byte. Ctrl-C stops.")
    p.add_argument("--no-pulse", action="store_true", help="leave the pulse's lines out")
    p.add_argument("--lines", type=int, default=0, metavar="N", help="first show each session's last N lines")
    p.add_argument("--interval", default="200ms", help="how often the logs are read (default 200ms)")
    a = p.parse_args(argv)
    if a.lines < 0:
        raise UsageError("--lines must be >= 0")
    d, every = paths.data_dir(), max(0.02, duration(a.interval))
    offsets: dict[str, int] = {}
    held: dict[str, bytes] = {}
    width = 0
    for sid in sessions.list_ids(d):  # what is there now: only from its end (or last N lines)
        if a.lines > 0:
            from looop.cli.observe import tail_log
            data, off = tail_log(d, sid, a.lines)
            offsets[sid] = off - len(data)
        else:
            offsets[sid] = sessions.log_end(d, sid)
    try:
        while True:
            for sid in sessions.list_ids(d):
                if a.no_pulse and sid == paths.RESERVED:
                    continue
                data, off = sessions.read_log(d, sid, offsets.get(sid, 0))
                offsets[sid] = off
                if not data:
                    continue
                buf = held.get(sid, b"") + data
                cut = buf.rfind(b"\n") + 1
                if cut == 0 and len(buf) > MAX_HELD:
                    cut = len(buf)
                held[sid] = buf[cut:]
                width = max(width, len(sid))
                for line in strip_ansi(buf[:cut]).splitlines():
                    sys.stdout.write(f"{sid:<{width}} | {line}\n")
                sys.stdout.flush()
            time.sleep(every)
    except KeyboardInterrupt:
        end_line()
        return 0
