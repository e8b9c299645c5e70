"""The live registry, read: process titles (one /proc scan) merged with the
session files on disk. Source of `ls`, `status`, `prune` and the pulse's view
of its workers; no socket round-trip, so it works while the root is busy.

`rows(d)` returns the stable `ls --json` objects (SPEC §7), pulse first.
"""
from __future__ import annotations

import os
import shlex
import time
from typing import Any, Callable

from looop.store import sessions
from looop.store.title import Title, live_titles, title_of


def activity_of(d: str, sid: str) -> str | None:
    """A live worker's activity state from its child's title alone (one
    /proc read: cheap enough to poll), None if it is not live."""
    pid = sessions.read_status(d, sid).get("child_pid")
    t = title_of(pid) if isinstance(pid, int) and pid > 0 else None
    return t.activity if t is not None and t.sid == sid and t.data_dir == d else None


def rows(d: str, everywhere: bool = False) -> list[dict[str, Any]]:
    """The `ls --json` objects: pulse first, then workers by id."""
    live: dict[tuple[str, str], tuple[int, Title]] = {}
    for pid, t in live_titles():
        if t.role != "root" and (everywhere or t.data_dir == d):
            old = live.get((t.data_dir, t.sid))
            # two carriers of one id: a dying child of a SIGKILLed root next
            # to its successor; the running one is the session
            if old is None or old[1].state != "running":
                live[(t.data_dir, t.sid)] = (pid, t)
    out = []
    seen = set()
    now = time.time()
    for (dd, sid), (pid, t) in live.items():
        st, meta = sessions.read_status(dd, sid), sessions.read_meta(dd, sid)
        t = agreeing(t, st, lambda: title_of(pid), now)
        seen.add((dd, sid))
        state = "stopped" if t.state == "running" and _stopped(st) else t.state
        out.append(_row(sid, t.role, state, True, st, meta, child_pid=pid,
                        flagged=t.flagged, data_dir=dd, activity=_activity(dd, sid, t, st)))
    for sid in sessions.list_ids(d):
        if (d, sid) in seen:
            continue
        st, meta = sessions.read_status(d, sid), sessions.read_meta(d, sid)
        state = st.get("state") or "dead"
        if state in ("starting", "running"):
            state = "dead"  # on disk as live, but no process carries its title
        out.append(_row(sid, meta.get("role") or st.get("role") or "worker", state, False, st, meta,
                        child_pid=None, flagged=bool(st.get("flagged")), data_dir=d))
    _mark_parked(d, out)
    out.sort(key=lambda r: (r["role"] != "pulse", r["data_dir"] != d, r["id"]))
    if not everywhere:
        for r in out:
            del r["data_dir"]
    return out


FRESH = 2.0  # s: a status.json this new, beside a title that disagrees, is a publish in flight


def agreeing(t: Title, st: dict, reread: Callable[[], Title | None], now: float) -> Title:
    """Pure but for `reread`: the title to pair with status.json `st`. A child
    writes the file, then its title; a reader that took the title before a
    publish and the file after holds two moments (an `asking` title beside
    a `working` file, a flag beside no note) — the inbox once notified such
    an evidence-less `asking`. The file is then the newer: its title is
    usually one /proc read away, and if the child has not set it yet (a
    loaded box can hold it between the two writes), the fresh file speaks
    for it. A file that stays stale (it could not be written: a full disk)
    is not fresh, and the title wins as before."""
    if _agree(t, st):
        return t
    again = reread()
    if again is not None and again.sid == t.sid and again.data_dir == t.data_dir and _agree(again, st):
        return again
    ts = st.get("updated_ts")
    if isinstance(ts, (int, float)) and not isinstance(ts, bool) and 0 <= now - ts < FRESH:
        act = st.get("activity") if isinstance(st.get("activity"), dict) else {}
        since = sessions.stamp(act.get("since"))
        return t._replace(flagged=bool(st.get("flagged")), activity=act.get("state"),
                          since=int(since) if since is not None else t.since)
    return t


def _agree(t: Title, st: dict) -> bool:
    act = st.get("activity") if isinstance(st.get("activity"), dict) else {}
    return t.flagged == bool(st.get("flagged")) and t.activity == act.get("state")


def _mark_parked(d: str, out: list[dict[str, Any]]) -> None:
    """A live worker the recovery ladder parked on a usage limit gets
    `parked: {"until", "resume_at"}` (store/ladderstate.py; one stat when
    there is no ladder file)."""
    from looop.store import ladderstate
    mem = ladderstate.read(d)
    for r in out:
        p = ladderstate.parked(mem.get(r["id"])) if r["alive"] and r["data_dir"] == d else None
        if p is not None:
            r["parked"] = p


def _stopped(st: dict) -> bool:
    """Is the session's command SIGSTOPped (state T, or t: traced)? One small
    /proc read per live row; a reused pid (its create time differs) is not it."""
    pid = st.get("pid")
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:  # (os.read: one per live row of `ls`, no file object)
        fd = os.open(f"/proc/{pid}/stat", os.O_RDONLY | os.O_CLOEXEC)
        try:
            fields = os.read(fd, 4096).rsplit(b")", 1)[1].split()
        finally:
            os.close(fd)
    except (OSError, IndexError):
        return False
    return fields[:1] in ([b"T"], [b"t"])


def _activity(d: str, sid: str, t: Title, st: dict) -> dict[str, Any] | None:
    """`activity` of a live worker (SPEC §15): state and since from its title,
    evidence from status.json (written with the title), quiet_s from the
    log's mtime (the child writes output.log on every wake, so no child
    round-trip is needed)."""
    if t.activity is None:
        return None
    on_disk = st.get("activity") if isinstance(st.get("activity"), dict) else {}
    if on_disk.get("state") != t.activity:
        on_disk = {}  # caught between the title and the file: the title wins
    try:
        quiet = max(0.0, time.time() - os.stat(sessions.log_path(d, sid)).st_mtime)
    except OSError:
        quiet = on_disk.get("quiet_s")
    from looop.store.sessions import rfc3339
    out = {"state": t.activity, "since": rfc3339(t.since or 0),
           "quiet_s": round(quiet, 1) if quiet is not None else None,
           "evidence": on_disk.get("evidence") or {}}
    if on_disk.get("until"):
        out["until"] = on_disk["until"]
    return out


def _row(sid: str, role: str, state: str, alive: bool, st: dict, meta: dict, *,
         child_pid: int | None, flagged: bool, data_dir: str,
         activity: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"id": sid, "role": role, "state": state, "alive": alive, "activity": activity,
            "pid": st.get("pid") if alive else None, "child_pid": child_pid,
            "exit_code": st.get("exit_code"), "flagged": flagged,
            "note": st.get("note") if flagged else None,
            "started_at": st.get("started_at") or meta.get("started_at"),  # last (re)start
            "cmd": shown_command(meta), "restarts": int(meta.get("restarts") or 0),
            "log_error": st.get("log_error"),
            "data_dir": data_dir,
            "remote": _remote(st, meta),
            "_updated": st.get("updated_at"), "_updated_ts": st.get("updated_ts"),
            **({"failed_reason": st["failed_reason"]} if state == "failed" and st.get("failed_reason") else {})}


def shown_command(meta: dict) -> str:
    """The command a human recognises: a script worker (`bash <prompt file>`,
    e.g. the rules runner's) shows its script's commands, not the file."""
    cmd = meta.get("command") or ""
    pf = meta.get("prompt_file")
    if pf and cmd in (f"bash {pf}", f"bash {shlex.quote(pf)}"):
        from looop.store import prompts
        body = prompts.script_body(pf)
        if body:
            return body
    return cmd


def _remote(st: dict, meta: dict) -> dict[str, Any] | None:
    """{"engine", "host", "id"} of a session on a remote backend (SPEC §17),
    from its files (no engine round trip); None when local."""
    r = st.get("remote")
    if isinstance(r, dict):
        return {"engine": r.get("engine"), "host": r.get("host") or "", "id": r.get("id")}
    w = meta.get("where")
    if isinstance(w, dict) and w.get("kind") not in (None, "local"):
        return {"engine": w.get("kind"), "host": w.get("host") or "", "id": None}
    return None


def where(r: dict[str, Any]) -> str:
    """The WHERE column: local, ssh:HOST, slurm:JOBID."""
    rem = r.get("remote")
    if not rem:
        return "local"
    if rem.get("engine") == "ssh":
        return f"ssh:{rem.get('host')}"
    return f"{rem.get('engine')}:{rem.get('id') or '?'}"
