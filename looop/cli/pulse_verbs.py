"""Verbs around the pulse: `tick`, `status`, `journal`, `cost`, and the
internal `_rules`, `_fmt`, `_cost`.

Imports are lazy: these verbs share nothing with the `ls` hot path.
"""
from __future__ import annotations

import os
import sys
from typing import Any

from looop.cli.args import parser
from looop.errors import AlreadyRunning, BadInput, LooopError, UsageError
from looop.store import paths


# -- tick ---------------------------------------------------------------------

def cmd_tick(argv: list[str]) -> int:
    p = parser("tick", "Run one beat (sense → diff → decide → act → journal) and exit. "
                       "Refuses while `looop` runs for this data dir (except --dry-run, which then "
                       "reads the live pulse's last sensor readings). Exit 1 if the beat failed.")
    p.add_argument("--dry-run", action="store_true",
                   help="sense, then print the prompt and world hash; call no runner, execute nothing")
    p.add_argument("--json", action="store_true", help="NDJSON lines (also LOOOP_LOG_FORMAT=json)")
    a = p.parse_args(argv)
    from looop.pulse import loop, runner, seeds, stop
    from looop.store import config
    from looop.ui.out import Printer, json_mode
    out = Printer(json=json_mode(a.json))
    d = paths.data_dir()
    paths.ensure_layout(d)
    from looop.store import lock
    read_only = False
    try:
        fd: int | None = lock.take(d)
    except lock.Held as e:
        if not a.dry_run:
            raise AlreadyRunning(f"looop is running for this data dir (pid {e.pid}) — its pulse "
                                 f"beats there; watch it with: looop watch pulse") from None
        fd, read_only = None, True  # read-only: allowed beside the live loop
        out.line("info", "tick.read_only", f"looop is running (pid {e.pid}): a dry run over its "
                 f"last sensor readings, nothing written", pid=e.pid)
    try:
        if not a.dry_run:
            _, created = config.ensure(d)
            for path in ([paths.config_path(d)] if created else []) + seeds.seed(d):
                out.line("info", "seed", f"seeded {path}", path=path)
        stop.install()
        runner.become_subreaper()
        try:
            outcome = loop.one_beat(d, out, link=None, dry_run=a.dry_run, read_only=read_only)
        except stop.Shutdown:
            return 1
        finally:
            runner.sweep_children()
        return 1 if outcome.failed or stop.requested() else 0
    finally:
        if fd is not None:
            os.close(fd)


# -- status -------------------------------------------------------------------

def root_pid(d: str) -> int | None:
    """The pid in `.lock` if it is a live looop root of this data dir."""
    from looop.store import lock
    return lock.live_root(d)


def status(d: str) -> dict[str, Any]:
    from looop import registry
    from looop.pulse.loop import NEXT_FILE, intervals
    from looop.store import config, cost, jsonio
    from looop.store.sessions import rfc3339
    rows = registry.rows(d)
    pulse = next((r for r in rows if r["role"] == "pulse" and r["alive"]), None)
    nxt = jsonio.load_file(os.path.join(d, NEXT_FILE), {}) or {}
    try:
        idle = intervals(config.load(d))["idle"]
    except BadInput:
        idle = None
    hp = os.path.join(d, ".last-tick-hash")
    try:
        with open(hp) as f:
            last = {"at": rfc3339(os.path.getmtime(hp)), "hash": f.read().strip() or None}
    except OSError:
        last = {"at": None, "hash": None}
    workers = [{k: v for k, v in r.items() if not k.startswith("_")} for r in rows if r["role"] == "worker"]
    return {"pulse": {"running": pulse is not None, "pid": pulse["pid"] if pulse else None,
                      "interval_s": nxt.get("interval_s", idle) if pulse else idle,
                      **({"log_error": pulse.get("log_error")} if pulse else {})},
            "root": {"pid": root_pid(d)}, "last_tick": last, "workers": workers,
            "cost_today_usd": round(float(cost.total(d, day=cost.today())), 6), "data_dir": d}


def cmd_status(argv: list[str]) -> int:
    p = parser("status", "The pulse (running, pid, interval), the last tick, workers, "
                         "today's spend and the data dir.")
    p.add_argument("--json", action="store_true", help="one JSON object (stable shape)")
    a = p.parse_args(argv)
    from looop.store import cost, jsonio
    s = status(paths.data_dir())
    if a.json:
        print(jsonio.dumps(s))
        return 0
    pu, lt = s["pulse"], s["last_tick"]
    print(f"data dir   {s['data_dir']}")
    print("pulse      " + (f"running (pid {pu['pid']}, root {s['root']['pid']}) · next beat in "
                           f"{pu['interval_s']:g}s" if pu["running"] else "not running — start it with `looop`"))
    if pu.get("log_error"):
        print(f"           ! {pu['log_error']}")
    print(f"last tick  {lt['at'] or 'never'}" + (f" · world {lt['hash'][:12]}" if lt["hash"] else ""))
    print(f"cost today {cost.fmt_usd(s['cost_today_usd'])}")
    print(f"workers    {len(s['workers'])}" + ("" if s["workers"] else " (none)"))
    from looop.cli.ls import activity_cell
    for w in s["workers"]:
        code = f" exit {w['exit_code']}" if w["exit_code"] is not None else ""
        flag = f"  ⚑ {w['note'] or ''}" if w["flagged"] else ""
        err = f"  ! {w['log_error']}" if w.get("log_error") else ""
        act = f" · {activity_cell(w)}" if w.get("activity") else ""
        why = f" ({w['failed_reason']})" if w.get("failed_reason") else ""
        print(f"  {w['id']:<20} {w['state']}{code}{act}{why}{flag}{err}")
    return 0


# -- journal, cost --------------------------------------------------------------

def cmd_journal(argv: list[str]) -> int:
    p = parser("journal", "Print the journal: one line per move.")
    p.add_argument("--tail", type=int, metavar="N", help="only the last N lines")
    a = p.parse_args(argv)
    from looop.store import journal
    d = paths.data_dir()
    if not os.path.exists(journal.path(d)):
        print(f"no journal yet ({journal.path(d)}) — the loop has not moved")
        return 0
    if a.tail is not None:
        if a.tail < 0:
            raise UsageError("--tail must be >= 0")
        lines = journal.tail(d, a.tail)
    else:
        with open(journal.path(d), encoding="utf-8", errors="replace") as f:
            lines = f.read().splitlines()
    for ln in lines:
        print(ln)
    return 0


def cmd_cost(argv: list[str]) -> int:
    p = parser("cost", "Spend from the ledger (cost.jsonl): total, by kind and by runner.")
    p.add_argument("scope", nargs="?", choices=("today", "all"), default="today")
    p.add_argument("--by", choices=("kind", "session"), default="kind",
                   help="session: spend per worker session (the pulse's decide calls as (ticks))")
    p.add_argument("--json", action="store_true")
    a = p.parse_args(argv)
    from looop.store import cost, jsonio
    d = paths.data_dir()
    day = cost.today() if a.scope == "today" else None
    if not os.path.exists(cost.path(d)) and not a.json:
        print(f"no cost ledger yet ({cost.path(d)}) — nothing metered")
        return 0
    s = cost.summary(d, day)
    if a.json:
        s["total_usd"] = round(s["total_usd"], 6)
        for key in ("by_kind", "by_runner", "by_session"):
            s[key] = {k: round(v, 6) for k, v in s[key].items()}
        print(jsonio.dumps({"scope": a.scope, "day": day, **s}))
        return 0
    print(f"{'today (' + day + ')' if day else 'all time'}: {cost.fmt_usd(s['total_usd'])} "
          f"over {s['rows']} call{'s' * (s['rows'] != 1)}")
    if a.by == "session":
        for sid, usd in sorted(s["by_session"].items(), key=lambda kv: (-kv[1], kv[0])):
            print(f"  {sid:<24} {cost.fmt_usd(usd)}")
        return 0
    for key, label in (("by_kind", "by kind"), ("by_runner", "by runner")):
        if s[key]:
            parts = ", ".join(f"{k} {cost.fmt_usd(v)}" for k, v in sorted(s[key].items()))
            print(f"  {label}: {parts}")
    return 0


def cmd_cost_report(argv: list[str]) -> int:
    p = parser("_cost", "Record a cost row: _cost <kind> <id> <runner> <usd>. "
                        "Only positive amounts are recorded.")
    for name in ("kind", "id", "runner", "usd"):
        p.add_argument(name)
    a = p.parse_args(argv)
    from looop.store import cost
    for what, v in (("kind", a.kind), ("id", a.id), ("runner", a.runner)):
        paths.check_id(v, what, allow_pulse=True)
    try:
        cost.record(paths.data_dir(), a.kind, a.id, a.runner, cost.parse_usd(a.usd))
    except OSError as e:  # nothing half-written (append_line); the caller sees it failed
        raise LooopError(f"cannot record the cost in {e.filename or cost.NAME}: {e.strerror or e}") from None
    return 0


# -- internal: rules, fmt --------------------------------------------------------

def cmd_rules(argv: list[str]) -> int:
    p = parser("_rules", "The built-in rules decider: reads goal frontmatter (run:, every:, "
                         "done_when:) and writes one decision to .decision.json.")
    p.parse_args(argv)
    from looop.pulse import rules
    dec = rules.run(paths.data_dir())
    print(f"rules: {dec['action']} · {dec.get('journal', '')}")
    return 0


def cmd_fmt(argv: list[str]) -> int:
    p = parser("_fmt", "Read pi's NDJSON event stream on stdin; print friendly lines and record "
                       "each assistant message's cost (LOOOP_COST_KIND/ID/RUNNER).")
    p.parse_args(argv)
    from looop.pulse.fmt import format_stream
    format_stream(sys.stdin.buffer, sys.stdout, paths.data_dir(), os.environ)
    return 0
