"""Surfacing, the last step of a beat: live workers that need a human —
flagged, or asking / limited / stuck by their activity (SPEC §15) — and
pending asks, each with the command that answers it.

Prints a NEEDS YOU block with the exact command to attach (with the
LOOOP_DATA_DIR prefix on a non-default profile), and — when a tmux server is
reachable and LOOOP_TMUX_SURFACE is not 0 — opens one tmux window per newly
flagged worker. `.surfaced` remembers which flags already got a window, so a
restart of the pulse does not open them again.
"""
from __future__ import annotations

import os
import shlex
from typing import Any

from looop import settings
from looop.store import events, jsonio, paths
from looop.store.atomic import write_atomic


def attach_cmd(d: str, sid: str) -> str:
    prefix = "" if paths.is_default_profile(d) else f"LOOOP_DATA_DIR={shlex.quote(d)} "
    return f"{prefix}looop attach {sid}"


TMUX_TIMEOUT = 5.0  # s: one `tmux new-window`
NEEDY = ("asking", "limited", "stuck")  # activities that need someone (SPEC §15)


def flagged(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Live workers that need someone: flagged, or asking / limited / stuck."""
    return [r for r in rows if r.get("role") == "worker" and r.get("alive")
            and (r.get("flagged") or (r.get("activity") or {}).get("state") in NEEDY)]


def _why(r: dict[str, Any]) -> tuple[str, str]:
    """(glyph, text) of one NEEDS YOU line: the flag note, else the activity
    and its evidence line."""
    if r.get("flagged"):
        return "⚑", r.get("note") or "(no note)"
    act = r.get("activity") or {}
    text = (act.get("evidence") or {}).get("text")
    until = f" until {act['until']}" if act.get("until") else ""
    return "?", f"{act.get('state')}{until}" + (f" — {text}" if text else "")


def surface(d: str, rows: list[dict[str, Any]], out: Any, env: dict[str, str],
            asks: list[tuple[dict[str, Any], bool]] = ()) -> list[str]:
    """Print the block; returns the ids that need someone (workers, then asks)."""
    import time
    from looop.inbox import ask_items, profile_prefix
    pending = ask_items(asks, time.time(), profile_prefix(d)) if asks else []
    # a worker asking because of its own pending ask: the ask line says it
    rows = [r for r in flagged(rows) if r.get("flagged")
            or ((r.get("activity") or {}).get("evidence") or {}).get("source") != "ask"]
    if not rows and not pending:
        return []
    out.line("warn", "attention", f"NEEDS YOU ({len(rows) + len(pending)})", bold=True,
             ids=[r["id"] for r in rows] + [it["id"] for it in pending])
    for r in rows:
        cmd = attach_cmd(d, r["id"])
        glyph, why = _why(r)
        act = (r.get("activity") or {}).get("state")
        out.line("warn", "attention", f"  {glyph} {r['id']}: {why} — {cmd}",
                 id=r["id"], note=r.get("note"), activity=act, attach=cmd)
        events.emit(d, "needs_you", id=r["id"], note=r.get("note"), activity=act)
    for it in pending:
        out.line("warn", "attention", f"  ? {it['id']} ({it['session']}): {it['text']} — {it['command']}",
                 ask=it["id"], session=it["session"], text=it["text"], answer=it["command"])
        events.emit(d, "needs_you", ask=it["id"], session=it["session"], text=it["text"])
    if rows and settings.get("LOOOP_TMUX_SURFACE", env=env) != "0":
        _tmux(d, rows, env)
    return [r["id"] for r in rows] + [it["id"] for it in pending]


def _tmux(d: str, rows: list[dict[str, Any]], env: dict[str, str]) -> None:
    import shutil
    if not shutil.which("tmux", path=env.get("PATH")):
        return
    path = os.path.join(d, ".surfaced")
    seen = set(jsonio.load_file(path, []) or [])
    now = {f"{r['id']}\t{r.get('note')}" for r in rows}
    opened: set[str] = set()
    try:
        for r in rows:
            key = f"{r['id']}\t{r.get('note')}"
            if key in seen:
                continue
            # absolute paths: the tmux server's PATH and profile need not be ours
            cmd = f"LOOOP_DATA_DIR={shlex.quote(d)} {shlex.quote(paths.looop_bin())} attach {r['id']}"
            if _run(["tmux", "new-window", "-d", "-n", f"⚑{r['id']}", cmd], d, env) != 0:
                return  # no server reachable: the printed block is enough, try again next time
            opened.add(key)
    finally:
        # what was opened is remembered even if a later window failed or a stop
        # cut the loop (Shutdown), so a restarted pulse does not open it again
        keep = (seen & now) | opened
        if keep != seen:
            write_atomic(path, jsonio.dumpb(sorted(keep)), fsync=False)


def _run(argv: list[str], cwd: str, env: dict[str, str], timeout: float = TMUX_TIMEOUT) -> int | None:
    """One tmux client call: its exit code, None if it could not start or
    did not end within `timeout` (a stopped or swamped server). A stop
    request ends the wait at once (stop.Shutdown), like every wait of the
    pulse; the client's group is killed either way."""
    from looop.pulse import runner
    try:
        proc = runner.spawn(argv, cwd=cwd, env=env)
    except OSError:
        return None
    try:
        return proc.wait() if runner.wait_exit(proc, timeout) else None
    finally:
        if proc.returncode is None:
            runner.kill_group(proc)
