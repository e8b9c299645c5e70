"""What a root that died hard leaves behind, found and cleared by the next
root of the same data dir (it holds the lock, so nothing else owns them).

When a root and its children are SIGKILLed together (`kill -9 -PGID`), no
stop ladder runs: commands that ignore the PTY's hangup, or that left its
session (setsid), survive, and status.json files still say `running`.
"""
from __future__ import annotations

from looop.store import sessions
from looop.store.sessions import State
from looop.store.title import live_titles


def sweep(d: str) -> list[int]:
    """SIGKILL every process carrying LOOOP_DATA_DIR=<d> plus LOOOP_SESSION_ID
    (a worker's command or its descendants) or LOOOP_PULSE_FD (the pulse's),
    except our ancestors (a shell of an old worker may be the one starting
    us). Blocks up to 1 s for them to go. Returns their pids."""
    import psutil
    me = psutil.Process()
    spare = {me.pid} | {p.pid for p in me.parents()}
    found = []
    for p in psutil.process_iter(["environ"]):
        env = p.info.get("environ") or {}
        if p.pid not in spare and env.get("LOOOP_DATA_DIR") == d and \
                ("LOOOP_SESSION_ID" in env or "LOOOP_PULSE_FD" in env):
            found.append(p)
    for p in found:
        try:
            p.kill()  # psutil checks the create time: never a reused pid
        except psutil.Error:
            pass
    if found:
        psutil.wait_procs(found, timeout=1)
    return [p.pid for p in found]


def bury_stale_sessions(d: str) -> None:
    """Record as dead the sessions that status.json says are live but that no
    process carries in its title any more."""
    live = {t.sid for _pid, t in live_titles() if t.data_dir == d and t.role != "root"}
    for sid in sessions.list_ids(d):
        st = sessions.read_status(d, sid)
        if st.get("state") in (State.STARTING.value, State.RUNNING.value) and sid not in live:
            try:
                sessions.write_status(d, sid, dict(st, state=State.DEAD.value))
            except OSError:
                pass  # a full disk: ls shows it dead anyway (no title carries it)
