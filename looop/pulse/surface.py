"""Surfacing, the last step of a beat: flagged live workers need a human.

Prints a NEEDS YOU block with the exact command to attach (with the
LOOOP_DATA_DIR prefix on a non-default profile), and — when a tmux server is
reachable and LOOOP_TMUX_SURFACE is not 0 — opens one tmux window per newly
flagged worker. `.surfaced` remembers which flags already got a window, so a
restart of the pulse does not open them again.
"""
from __future__ import annotations

import os
import shlex
import subprocess
from typing import Any

from looop import settings
from looop.store import events, jsonio, paths
from looop.store.atomic import write_atomic


def attach_cmd(d: str, sid: str) -> str:
    prefix = "" if paths.is_default_profile(d) else f"LOOOP_DATA_DIR={shlex.quote(d)} "
    return f"{prefix}looop attach {sid}"


def flagged(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in rows if r.get("role") == "worker" and r.get("alive") and r.get("flagged")]


def surface(d: str, rows: list[dict[str, Any]], out: Any, env: dict[str, str]) -> list[str]:
    """Print the block; returns the flagged ids."""
    rows = flagged(rows)
    if not rows:
        return []
    out.line("warn", "attention", f"NEEDS YOU ({len(rows)})", bold=True,
             ids=[r["id"] for r in rows])
    for r in rows:
        cmd = attach_cmd(d, r["id"])
        out.line("warn", "attention", f"  ⚑ {r['id']}: {r.get('note') or '(no note)'} — {cmd}",
                 id=r["id"], note=r.get("note"), attach=cmd)
        events.emit(d, "needs_you", id=r["id"], note=r.get("note"))
    if settings.get("LOOOP_TMUX_SURFACE", env=env) != "0":
        _tmux(d, rows, env)
    return [r["id"] for r in rows]


def _tmux(d: str, rows: list[dict[str, Any]], env: dict[str, str]) -> None:
    import shutil
    if not shutil.which("tmux", path=env.get("PATH")):
        return
    path = os.path.join(d, ".surfaced")
    seen = set(jsonio.load_file(path, []) or [])
    now = {f"{r['id']}\t{r.get('note')}" for r in rows}
    for r in rows:
        if f"{r['id']}\t{r.get('note')}" in seen:
            continue
        try:
            # absolute paths: the tmux server's PATH and profile need not be ours
            cmd = f"LOOOP_DATA_DIR={shlex.quote(d)} {shlex.quote(paths.looop_bin())} attach {r['id']}"
            done = subprocess.run(["tmux", "new-window", "-d", "-n", f"⚑{r['id']}", cmd],
                                  env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL, timeout=5)
        except (OSError, subprocess.TimeoutExpired):
            return
        if done.returncode != 0:
            return  # no server reachable: the printed block is enough, try again next time
    write_atomic(path, jsonio.dumpb(sorted(now)), fsync=False)
