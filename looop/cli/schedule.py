"""`looop schedule write|list|rm`: wake the loop at a time (store/schedules.py).

A due schedule joins the world hash and the prompt's SCHEDULES section, so
the decider is asked once when it comes due; a one-shot stays due until it
is dropped (here, or by the decider's `drop_schedule`).
"""
from __future__ import annotations

import time

from looop.cli.args import duration, parser
from looop.errors import UsageError
from looop.store import paths


def _when(s: dict, now: float) -> str:
    if s.get("error"):
        return f"unreadable ({s['error']})"
    nxt = s.get("next_at")
    if "every_s" in s:
        base = f"every {s['every_s']:g}s"
        return base + (f" · next {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(nxt))}" if nxt else "")
    at = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(s["at"]))
    return f"at {at}" + (" · DUE" if s["due"] else f" · in {max(0, int(s['at'] - now))}s")


def cmd_schedule(argv: list[str]) -> int:
    p = parser("schedule", "Wake the loop at a time: a due schedule joins the world hash and the "
                           "prompt (a one-shot stays due until dropped).")
    sub = p.add_subparsers(dest="sub", metavar="write|list|rm", parser_class=type(p))
    w = sub.add_parser("write", help="create or replace a schedule")
    w.add_argument("name")
    g = w.add_mutually_exclusive_group(required=True)
    g.add_argument("--in", dest="in_", metavar="DUR", help="one-shot: due this long from now")
    g.add_argument("--every", metavar="DUR", help="recurring, at least 60s")
    w.add_argument("--note", default="", help="what the decider should do when it is due")
    ls = sub.add_parser("list", help="every schedule")
    ls.add_argument("--json", action="store_true")
    rm = sub.add_parser("rm", help="drop a schedule")
    rm.add_argument("name")
    a = p.parse_args(argv)
    from looop.store import jsonio, schedules
    d = paths.data_dir()
    now = time.time()
    if a.sub == "write":
        try:
            s = schedules.write(d, a.name, note=a.note, now=now,
                                at=now + duration(a.in_) if a.in_ is not None else None,
                                every_s=duration(a.every) if a.every is not None else None)
        except ValueError as e:
            raise UsageError(str(e)) from None
        print(f"schedule {s.name}: {_when(s.to_json(now), now)}")
        return 0
    if a.sub == "rm":
        if not schedules.remove(d, a.name):
            raise UsageError(f"no schedule {a.name!r}")
        print(f"dropped schedule {a.name}")
        return 0
    if a.sub == "list":
        rows = [s.to_json(now) for s in schedules.read_all(d)]
        if a.json:
            print(jsonio.dumps(rows))
        elif not rows:
            print("no schedules (add one with `looop schedule write <name> --in DUR`)")
        for r in rows if not a.json else []:
            print(f"{r['name']:<20} {_when(r, now)}" + (f"  — {r['note']}" if r.get("note") else ""))
        return 0
    raise UsageError("say write, list or rm (see `looop schedule --help`)")
