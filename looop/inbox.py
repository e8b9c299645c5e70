"""The inbox: every item that needs someone, each with its age and the exact
command that answers it (SPEC §15). Source of `looop inbox`, the NEEDS YOU
block, the notify command and the STATUS line.

Item: {"kind", "id", "session", "age_s", "text", "command"}, kind one of
  ask      a pending ask (text starts "stranded: " when its asker is gone)
  flag     a live worker's attention flag
  asking | limited | stuck   a live worker's activity (ls rows' `activity`)
  failed   a worker past its restart intensity (lifecycle state `failed`),
           or given up on by the recovery ladder or the restart cap
  budget   today's spend reached `max_daily_usd`, or (once a day) the soft
           threshold `warn_daily_usd`

The recovery ladder's memory (store/ladderstate.py) adds to the `stuck` and
`limited` items what looop did: "nudge did not help" once the ladder raised
it (RAISED, a new item for the notifier), a refused restart, a parked
worker's resume time.

`aggregate` is pure (the sources in, the items out); `collect` gathers the
sources of one profile. An `asking` activity backed by an ask or a flag is
not listed twice: the ask or flag item already says what to do.
"""
from __future__ import annotations

import shlex
import time
from typing import Any, Iterable

from looop.store import printable
from looop.store.sessions import stamp  # noqa: F401  (also read as inbox.stamp)
from looop.tree.activity_states import NEEDS_SOMEONE as ACTIVITY_KINDS  # a worker's activity items

KINDS = ("ask", "flag", "asking", "limited", "stuck", "failed", "budget")
RAISED = "nudge did not help"   # a stuck item the ladder raised starts with this


def command(prefix: str, *words: str) -> str:
    """`looop <words>` with the profile prefix (`LOOOP_DATA_DIR=… `, or '')."""
    return prefix + "looop " + " ".join(words)


def profile_prefix(d: str) -> str:
    from looop.store import paths
    return "" if paths.is_default_profile(d) else f"LOOOP_DATA_DIR={shlex.quote(d)} "


def _age(value: Any, now: float) -> int:
    t = stamp(value)
    return max(0, int(now - t)) if t is not None else 0


def _one_line(text: Any, cap: int = 300) -> str:
    s = printable.one_line(text)
    return s if len(s) <= cap else s[:cap - 1] + "…"


def _item(kind: str, iid: str, session: str | None, age: int, text: str, cmd: str) -> dict[str, Any]:
    return {"kind": kind, "id": iid, "session": session, "age_s": age, "text": text, "command": cmd}


def ask_items(pending: Iterable[tuple[dict[str, Any], bool]], now: float, prefix: str) -> list[dict[str, Any]]:
    out = []
    for rec, stranded in pending:
        text = _one_line(rec.get("prompt"))
        if rec.get("options"):
            text += f" [{'/'.join(map(str, rec['options']))}]"
        if rec.get("ref"):
            text += f" (see {rec['ref']})"
        if stranded:
            text = "stranded: " + text
        out.append(_item("ask", rec["id"], rec.get("worker"), _age(rec.get("ts"), now), text,
                         command(prefix, "answer", rec["id"], "<answer>")))
    return out


def ladder_text(state: str, text: str, mem: dict[str, Any] | None) -> str:
    """An activity item's text with what the recovery ladder did about it."""
    if not mem or mem.get("kind") != state:
        return text
    if state == "stuck" and mem.get("step") in ("raise", "restart", "fail"):
        again = "restarted with resume, " if mem["step"] != "raise" else ""
        text = f"{RAISED} ({again}still stuck): {text}"
    if state == "limited" and mem.get("step") == "park" and mem.get("resume_at"):
        from looop.store.ladderstate import hhmmss
        text += f" — parked: looop resumes it at {hhmmss(mem['resume_at'])}"
    if mem.get("refused"):
        text += f" — restart refused: {mem['refused']}"
    return text


def worker_items(rows: Iterable[dict[str, Any]], asked: set[str], now: float,
                 prefix: str, ladder: dict[str, dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """Flags, activity and failed lifecycle states of the ls rows."""
    out = []
    for r in rows:
        if r.get("role") != "worker":
            continue
        sid = r["id"]
        attach = command(prefix, "attach", sid)
        if r.get("state") == "failed":
            why = r.get("failed_reason") or "restarted too often"
            out.append(_item("failed", sid, sid, _age(r.get("_updated"), now),
                             _one_line(f"failed: {why} (exit {r.get('exit_code')})"),
                             command(prefix, "restart", sid)))
            continue
        if not r.get("alive"):
            continue
        if r.get("flagged"):
            out.append(_item("flag", sid, sid, _age(r.get("_updated"), now),
                             _one_line(r.get("note") or "(no note)"), attach))
        act = r.get("activity") if isinstance(r.get("activity"), dict) else {}
        state = act.get("state")
        if state not in ACTIVITY_KINDS:
            continue
        ev = act.get("evidence") if isinstance(act.get("evidence"), dict) else {}
        if state == "asking" and (ev.get("source") in ("ask", "flag") or sid in asked or r.get("flagged")):
            continue
        text = _one_line(ev.get("text") or state)
        if state == "limited" and act.get("until"):
            text += f" (until {act['until']})"
        text = ladder_text(state, text, (ladder or {}).get(sid))
        out.append(_item(state, sid, sid, _age(act.get("since"), now), text, attach))
    return out


def budget_item(budget: dict[str, Any] | None, now: float, config_path: str) -> list[dict[str, Any]]:
    """`budget` = {"day", "spent", "limit", "since"} when reached, else None."""
    if not budget:
        return []
    from looop.store.cost import fmt_usd
    text = (f"budget reached: {fmt_usd(budget['spent'])} of {fmt_usd(budget['limit'])} today "
            "(max_daily_usd) — no AI call until tomorrow")
    return [_item("budget", f"budget-{budget['day']}", None, _age(budget.get("since"), now), text,
                  f"${{EDITOR:-vi}} {shlex.quote(config_path)}  # raise or remove max_daily_usd")]


def warn_item(warn: dict[str, Any] | None, now: float, config_path: str,
              prefix: str = "") -> list[dict[str, Any]]:
    """`warn` = guardstate's {"day", "spent", "limit", "since"} once the pulse
    saw today's spend reach `warn_daily_usd` (a stale day is no item)."""
    from looop.store.cost import fmt_usd, today
    if not warn or warn.get("day") != today():
        return []
    try:
        text = (f"spend warning: {fmt_usd(warn['spent'])} of warn_daily_usd {fmt_usd(warn['limit'])} "
                "today (a soft threshold: the loop goes on)")
    except (KeyError, TypeError, ValueError):
        return []
    return [_item("budget", f"spend-warn-{warn['day']}", None, _age(warn.get("since"), now), text,
                  command(prefix, "cost", "--by", "session")
                  + f"  # and ${{EDITOR:-vi}} {shlex.quote(config_path)}")]


def aggregate(rows: list[dict[str, Any]], pending: list[tuple[dict[str, Any], bool]],
              budget: dict[str, Any] | None, now: float, prefix: str,
              config_path: str, warn: dict[str, Any] | None = None,
              ladder: dict[str, dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """Pure: every inbox item, by kind (KINDS order), oldest first within one."""
    asked = {str(rec.get("worker")) for rec, _ in pending}
    items = ask_items(pending, now, prefix) + worker_items(rows, asked, now, prefix, ladder) \
        + budget_item(budget, now, config_path) + warn_item(warn, now, config_path, prefix)
    items.sort(key=lambda it: (KINDS.index(it["kind"]), -it["age_s"], it["id"]))
    return items


def budget_state(d: str, cfg: dict[str, Any]) -> dict[str, Any] | None:
    """{"day", "spent", "limit", "since"} once today's ledger reaches
    `max_daily_usd` (since = the row that crossed it), else None."""
    from looop.store import config, cost
    limit = config.usd_limit(cfg, "max_daily_usd")
    if limit is None:
        return None
    day, spent, since = cost.today(), 0.0, None
    for r in cost.rows(d):
        if cost.local_day(r.get("ts", "")) != day:
            continue
        spent += r["cost_usd"]
        if since is None and spent >= limit:
            since = r.get("ts")
    return {"day": day, "spent": spent, "limit": float(limit), "since": since} if spent >= limit else None


def pending_asks(d: str, rows: list[dict[str, Any]]) -> list[tuple[dict[str, Any], bool]]:
    """(ask, stranded) for each pending ask: stranded when its worker is not
    alive or the asking process is gone."""
    from looop.store import asks
    live = {r["id"] for r in rows if r.get("alive")}
    return [(rec, rec.get("worker") not in live or not asks.asker_alive(rec)) for rec in asks.pending(d)]


def collect(d: str, cfg: dict[str, Any] | None = None, rows: list[dict[str, Any]] | None = None,
            now: float | None = None) -> list[dict[str, Any]]:
    """The inbox of profile `d` now (reads titles, asks, the ledger)."""
    from looop.store import config, paths
    if rows is None:
        from looop.registry import rows as registry_rows
        rows = registry_rows(d)
    if cfg is None:
        from looop.errors import LooopError
        try:
            cfg = config.load(d)
        except LooopError:  # a broken config must not hide the asks
            cfg = {}
    from looop.store import guardstate, ladderstate
    now = time.time() if now is None else now
    return aggregate(rows, pending_asks(d, rows), budget_state(d, cfg), now,
                     profile_prefix(d), paths.config_path(d), warn=guardstate.budget(d),
                     ladder=ladderstate.read(d))
