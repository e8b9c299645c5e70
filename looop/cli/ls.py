"""`looop ls`: live rows from process titles (one psutil scan, no socket),
finished rows from disk. Also the source of `status`'s worker list.

--all adds live sessions of every other profile on this machine (with a
DATA DIR column, before CMD); finished sessions always come from this profile's disk.
"""
from __future__ import annotations

import os
import sys
import time
from datetime import datetime
from typing import Any

from looop.cli.args import duration, end_line, parser
from looop.registry import rows, where
from looop.store import paths
from looop.store.title import FLAG


def _age(r: dict[str, Any], now: float) -> str:
    stamp = r["started_at"] if r["alive"] else (r.get("_updated") or r["started_at"])
    try:
        t = datetime.fromisoformat(str(stamp).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return "-"
    s = max(0, int(now - t))
    text = f"{s}s" if s < 120 else f"{s // 60}m" if s < 7200 else f"{s // 3600}h" if s < 172800 else f"{s // 86400}d"
    return text if r["alive"] else text + " ago"


def with_backoff(d: str, rs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A finished worker whose rules goal waits out a restart backoff shows
    `backoff` (with `retry_at`), not the exit it is about to retry."""
    from looop.store import rulestate
    retries = rulestate.retries(d) if rs else {}
    now = time.time()
    for r in rs:
        at = retries.get(r["id"])
        if at is not None and at > now and not r["alive"] and r["state"] in ("exited", "dead"):
            r["state"], r["retry_at"] = "backoff", at
    return rs


def usage(rs: list[dict[str, Any]], sample: float = 0.2) -> dict[str, tuple[float, int]]:
    """id → (CPU %, RSS bytes) of each live row's command and everything
    below it, CPU measured over `sample` seconds (psutil: `ls --wide` only)."""
    import psutil
    procs: dict[str, list[Any]] = {}
    for r in rs:
        if not r["alive"] or not r.get("pid"):
            continue
        try:
            top = psutil.Process(r["pid"])
            procs[r["id"]] = [top] + top.children(recursive=True)
        except psutil.Error:
            continue
    for ps in procs.values():
        for q in ps:
            try:
                q.cpu_percent(None)
            except psutil.Error:
                pass
    time.sleep(sample if procs else 0)
    out = {}
    for sid, ps in procs.items():
        cpu, rss = 0.0, 0
        for q in ps:
            try:
                cpu += q.cpu_percent(None)
                rss += q.memory_info().rss
            except psutil.Error:
                pass
        out[sid] = (cpu, rss)
    return out


def _mib(n: int) -> str:
    return f"{n / (1 << 20):.1f}M"


def activity_cell(r: dict[str, Any]) -> str:
    """The ACTIVITY column: the state, and a parked worker's resume time."""
    act = (r.get("activity") or {}).get("state") or "-"
    p = r.get("parked")
    if p and p.get("resume_at"):
        from looop.store.ladderstate import hhmmss
        act += f" (parked → {hhmmss(p['resume_at'])})"
    return act


def table(rs: list[dict[str, Any]], width: int, wide: bool = False) -> str:
    now = time.time()
    everywhere = any("data_dir" in r for r in rs)
    # DATA DIR before CMD: a line is cut at the terminal's width, and CMD is the long one
    head = ["ID", "STATE", "ACTIVITY", "WHERE", "PID", "AGE", FLAG] + (["DATA DIR"] if everywhere else []) + ["CMD"]
    used = usage(rs) if wide else {}
    if wide:
        head[6:6] = ["CPU", "RSS", "↺"]
    body = []
    for r in rs:
        state = r["state"] + (f" {r['exit_code']}" if r["exit_code"] is not None and not r["alive"] else "")
        flag = (FLAG + (" " + r["note"] if r["note"] else "")) if r["flagged"] else ""
        row = [r["id"], state, activity_cell(r), where(r), str(r["pid"] or "-"),
               _age(r, now), flag[:40]] + ([r["data_dir"]] if everywhere else []) + [r["cmd"]]
        if wide:
            cpu, rss = used.get(r["id"], (None, None))
            row[6:6] = [f"{cpu:.0f}%" if cpu is not None else "-", _mib(rss) if rss is not None else "-",
                        str(r.get("restarts") or 0)]
        body.append(row)
    widths = [max(len(x[i]) for x in [head] + body) for i in range(len(head))]
    lines = []
    for x in [head] + body:
        line = "  ".join(c.ljust(w) for c, w in zip(x, widths)).rstrip()
        lines.append(line[:width] if width > 0 else line)
    return "\n".join(lines)


def with_orphans(d: str, rs: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], str | None]:
    """`ls --remote`: ask the engines this data dir's remote sessions ran on
    what still lives there; a row whose local child is gone but whose engine
    side lives becomes `orphaned` (the next root releases it). Also the line
    naming the engines that did not answer (None if all did): their rows are
    only what the disk says, which must not pass for an answer."""
    from looop.store import sessions
    from looop.tree import backends
    found, silent = backends.survey(d, backends.placements(d, sessions.list_ids(d)))
    return mark_orphans(rs, found), silent_line(silent)


def silent_line(silent: set[str]) -> str | None:
    if not silent:
        return None
    return (f"{', '.join(sorted(silent))} did not answer: what still runs there is unknown "
            "(its rows are as on disk)")


def mark_orphans(rs: list[dict[str, Any]], found: dict[tuple[str, str], dict[str, Any]]) -> list[dict[str, Any]]:
    """Pure: rows + what the engines list ((engine, sid) → identity)."""
    out = []
    for r in rs:
        rem = r.get("remote") or {}
        ident = found.get((str(rem.get("engine")), r["id"])) if rem else None
        if ident is not None and not r["alive"]:
            r = dict(r, state="orphaned", remote=ident)
        out.append(r)
    return out


def cmd_ls(argv: list[str]) -> int:
    p = parser("ls", "List sessions: the pulse first, then workers. Live rows come from "
                     "process titles, finished ones from disk.")
    p.add_argument("--json", action="store_true", help="a JSON array (stable shape, see `looop help`)")
    p.add_argument("-w", "--watch", action="store_true", help="redraw in place until Ctrl-C")
    p.add_argument("--interval", default="1s", help="redraw interval for --watch (default 1s)")
    p.add_argument("--all", action="store_true", help="include live sessions of every profile")
    p.add_argument("--wide", action="store_true",
                   help="add CPU (over 0.2 s), RSS (command + descendants) and ↺ restarts")
    p.add_argument("--remote", action="store_true",
                   help="also ask the engines (ssh hosts, squeue): a session whose engine side "
                        "outlived its local child shows as orphaned; an engine that does not answer "
                        "is named after the table (on stderr with --json)")
    a = p.parse_args(argv)
    d = paths.data_dir()
    every = duration(a.interval)

    def render() -> str:
        rs, silent = with_backoff(d, rows(d, everywhere=a.all)), None
        if a.remote:
            rs, silent = with_orphans(d, rs)
        if a.json:
            from looop.store import jsonio
            for r in rs:
                for k in [k for k in r if k.startswith("_")]:
                    del r[k]
            if silent:  # stdout stays the JSON array
                print(f"looop ls: {silent}", file=sys.stderr)
            return jsonio.dumps(rs)
        width = os.get_terminal_size().columns if sys.stdout.isatty() else 0
        text = table(rs, width, wide=a.wide) if rs else "no sessions (start the loop with `looop`)"
        return text + (f"\n⚠ {silent}" if silent else "")

    return redraw(render, a.watch, every)


def redraw(render: Any, watch: bool, every: float) -> int:
    """Print `render()` once, or with `watch` redraw it in place every
    `every` seconds until Ctrl-C (`ls --watch`, `inbox --watch`)."""
    if not watch:
        print(render())
        return 0
    try:
        while True:
            frame = render()
            sys.stdout.write("\x1b[H\x1b[2J" + frame + "\n" if sys.stdout.isatty() else frame + "\n")
            sys.stdout.flush()
            time.sleep(max(0.1, every))
    except KeyboardInterrupt:
        end_line()
        return 0
