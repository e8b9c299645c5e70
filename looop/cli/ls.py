"""`looop ls`: live rows from process titles (one psutil scan, no socket),
finished rows from disk. Also the source of `status`'s worker list.

--all adds live sessions of every other profile on this machine (with a
DATA DIR column); finished sessions always come from this profile's disk.
"""
from __future__ import annotations

import os
import sys
import time
from datetime import datetime
from typing import Any, Iterable

from looop.cli.args import duration, parser
from looop.store import paths, sessions
from looop.tree.title import FLAG, Title, parse_title


def live_titles() -> Iterable[tuple[int, Title]]:
    """(pid, title) of every looop process on the machine."""
    import psutil
    for p in psutil.process_iter(["cmdline"]):
        cl = p.info.get("cmdline")
        if cl and cl[0].startswith("looop:"):
            t = parse_title(" ".join(x for x in cl if x))
            if t is not None:
                yield p.pid, t


def rows(d: str, everywhere: bool = False) -> list[dict[str, Any]]:
    """The `ls --json` objects: pulse first, then workers by id."""
    live: dict[tuple[str, str], tuple[int, Title]] = {}
    for pid, t in live_titles():
        if t.role != "root" and (everywhere or t.data_dir == d):
            live[(t.data_dir, t.sid)] = (pid, t)
    out = []
    seen = set()
    for (dd, sid), (pid, t) in live.items():
        st, meta = sessions.read_status(dd, sid), sessions.read_meta(dd, sid)
        seen.add((dd, sid))
        out.append(_row(sid, t.role, t.state, True, st, meta, child_pid=pid,
                        flagged=t.flagged, data_dir=dd))
    for sid in sessions.list_ids(d):
        if (d, sid) in seen:
            continue
        st, meta = sessions.read_status(d, sid), sessions.read_meta(d, sid)
        state = st.get("state") or "dead"
        if state in ("starting", "running"):
            state = "dead"  # on disk as live, but no process carries its title
        out.append(_row(sid, meta.get("role") or st.get("role") or "worker", state, False, st, meta,
                        child_pid=None, flagged=bool(st.get("flagged")), data_dir=d))
    out.sort(key=lambda r: (r["role"] != "pulse", r["data_dir"] != d, r["id"]))
    if not everywhere:
        for r in out:
            del r["data_dir"]
    return out


def _row(sid: str, role: str, state: str, alive: bool, st: dict, meta: dict, *,
         child_pid: int | None, flagged: bool, data_dir: str) -> dict[str, Any]:
    return {"id": sid, "role": role, "state": state, "alive": alive,
            "pid": st.get("pid") if alive else None, "child_pid": child_pid,
            "exit_code": st.get("exit_code"), "flagged": flagged,
            "note": st.get("note") if flagged else None,
            "started_at": meta.get("started_at") or st.get("started_at"),
            "cmd": meta.get("command") or "", "data_dir": data_dir,
            "_updated": st.get("updated_at")}


def _age(r: dict[str, Any], now: float) -> str:
    stamp = r["started_at"] if r["alive"] else (r.get("_updated") or r["started_at"])
    try:
        t = datetime.fromisoformat(str(stamp).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return "-"
    s = max(0, int(now - t))
    text = f"{s}s" if s < 120 else f"{s // 60}m" if s < 7200 else f"{s // 3600}h" if s < 172800 else f"{s // 86400}d"
    return text if r["alive"] else text + " ago"


def table(rs: list[dict[str, Any]], width: int) -> str:
    now = time.time()
    everywhere = any("data_dir" in r for r in rs)
    head = ["ID", "STATE", "PID", "AGE", FLAG, "CMD"] + (["DATA DIR"] if everywhere else [])
    body = []
    for r in rs:
        state = r["state"] + (f" {r['exit_code']}" if r["exit_code"] is not None and not r["alive"] else "")
        flag = (FLAG + (" " + r["note"] if r["note"] else "")) if r["flagged"] else ""
        body.append([r["id"], state, str(r["pid"] or "-"), _age(r, now), flag[:40], r["cmd"]]
                    + ([r["data_dir"]] if everywhere else []))
    widths = [max(len(x[i]) for x in [head] + body) for i in range(len(head))]
    lines = []
    for x in [head] + body:
        line = "  ".join(c.ljust(w) for c, w in zip(x, widths)).rstrip()
        lines.append(line[:width] if width > 0 else line)
    return "\n".join(lines)


def cmd_ls(argv: list[str]) -> int:
    p = parser("ls", "List sessions: the pulse first, then workers. Live rows come from "
                     "process titles, finished ones from disk.")
    p.add_argument("--json", action="store_true", help="a JSON array (stable shape, see `looop help`)")
    p.add_argument("-w", "--watch", action="store_true", help="redraw in place until Ctrl-C")
    p.add_argument("--interval", default="1s", help="redraw interval for --watch (default 1s)")
    p.add_argument("--all", action="store_true", help="include live sessions of every profile")
    a = p.parse_args(argv)
    d = paths.data_dir()
    every = duration(a.interval)

    def render() -> str:
        rs = rows(d, everywhere=a.all)
        if a.json:
            from looop.store import jsonio
            for r in rs:
                r.pop("_updated", None)
            return jsonio.dumps(rs)
        width = os.get_terminal_size().columns if sys.stdout.isatty() else 0
        return table(rs, width) if rs else "no sessions (start the loop with `looop`)"

    if not a.watch:
        print(render())
        return 0
    try:
        while True:
            frame = render()
            sys.stdout.write("\x1b[H\x1b[2J" + frame + "\n" if sys.stdout.isatty() else frame + "\n")
            sys.stdout.flush()
            time.sleep(max(0.1, every))
    except KeyboardInterrupt:
        return 0
