"""The built-in `rules` decider (`looop _rules`, SPEC §10): a tiny Kubernetes
for your scripts. Offline, deterministic, one decision per call, over goal
frontmatter:

    run: <shell command>     want a worker with the goal's id running it:
                             start it if absent; if it exited non-zero (or
                             died), start it again after a backoff of
                             1, 2, 4 … s (capped at 15 min); exit 0 = done
    every: <duration>        rerun a finished one that long after it finished
    done_when: <command>     archive the goal once the command exits 0
    paused: true             leave the goal alone (start nothing)
    restart: transient       let looop's supervisor restart the worker instead
      (or permanent)         (SPEC §16: backoff 1 s doubling, `failed` past
    max_restarts: 3/10m      the intensity, which stays until the goal changes)

Goals are visited in file-name order; the first that wants something now
gets it, otherwise `noop`. A goal with a bad value (`every: 10x`,
`restart: bogus`) is skipped and named in the journal. A goal waiting out a backoff wants nothing yet,
so the goals after it still get their turn; its restart time is kept in
`.rules-state.json` (store/rulestate.py), which the beat treats as a due
time: it wakes the pulse and changes the world hash when reached, so the
loop stays level-triggered without a `sleep` inside the worker.

`looop kill` sticks: a worker killed by hand is not started again until its
goal file changes (a worker stopped by looop's own shutdown is restarted).
Each finished run is counted once (by its start time), and an exit 0 resets
the failures (and marks a one-shot `run:` done, so it is not rerun when
housekeeping reaps its session dir).
"""
from __future__ import annotations

import hashlib
import os
import time
from typing import TYPE_CHECKING, Any, Callable

from looop.pulse import worldhash

if TYPE_CHECKING:
    from looop.pulse.goals import Goal

BACKOFF_CAP = 900
CHECK_TIMEOUT = 30.0
SCRIPT_CMD = "bash {{prompt_file}}"
TRUE = ("1", "true", "yes", "on")


def backoff(failures: int) -> int:
    """Seconds to wait before restart number `failures` (1, 2, 4 … ≤ 900)."""
    return 0 if failures <= 0 else min(2 ** (failures - 1), BACKOFF_CAP)


finished_at = worldhash.finished_at


def digest(g: "Goal") -> str:
    return hashlib.sha256(g.text.encode()).hexdigest()[:16]


def _start(g: "Goal", why: str) -> dict[str, Any]:
    run = g.meta["run"]
    dec = {"action": "start_worker", "id": g.id, "prompt": run + "\n", "command": SCRIPT_CMD,
           "journal": f"{why}: {g.id} ({run})"}
    for key in ("restart", "max_restarts"):  # the root validates them
        if g.meta.get(key):
            dec[key] = g.meta[key]
    return dec


SUPERVISED = ("transient", "permanent")


def _supervised(g: "Goal", row: dict[str, Any], st: dict[str, Any],
                notes: list[str]) -> tuple[bool, dict[str, Any] | None]:
    """A goal whose worker looop's supervisor restarts (`restart:`): (handled,
    decision). Its ends are the supervisor's business; `failed` stays
    failed until the goal file changes."""
    kind = g.meta.get("restart", "").strip().lower()
    state, code = row.get("state"), row.get("exit_code")
    if kind not in SUPERVISED:
        return False, None
    if state == "failed":
        if st.get("failed") in (None, digest(g)):
            st["failed"] = digest(g)
            notes.append(f"{g.id} failed (restarted too often): not started until goals/{g.id}.md changes")
            return True, None
        st.pop("failed")
        return True, _start(g, "start (goal changed since it failed)")
    st.pop("failed", None)
    if state in ("backoff", "dead") or state == "exited" and (code != 0 or kind == "permanent"):
        return True, None  # the supervisor restarts it (or gives up: failed)
    return False, None


def problem(g: "Goal") -> str | None:
    """Why this goal's frontmatter cannot be acted on, or None. A bad value
    skips only its own goal, said in the journal: one typo must not fail
    every beat (and starve the goals after it), nor silently mean
    something else (an unparsable `every:` is not a one-shot)."""
    from looop.store.restartspec import parse_kind, parse_max_restarts
    if not g.meta.get("run"):
        return None
    if g.meta.get("every", "").strip() and g.seconds("every") is None:
        return f"bad every {g.meta['every']!r} (use e.g. 30s, 10m, 2h, 1d)"
    try:
        if g.meta.get("restart", "").strip():
            parse_kind(g.meta["restart"])
        if g.meta.get("max_restarts", "").strip():
            parse_max_restarts(g.meta["max_restarts"])
    except ValueError as e:
        return str(e)
    return None


def _for_goal(g: "Goal", row: dict[str, Any] | None, st: dict[str, Any], now: float,
              check: Callable[[str], bool], notes: list[str]) -> dict[str, Any] | None:
    """The decision this goal wants now, or None. Updates `st` (this goal's
    state); a goal that waits says why in `notes`."""
    cond = g.meta.get("done_when")
    if cond and check(cond):
        return {"action": "archive_goal", "id": g.id, "journal": f"goal {g.id} done ({cond})"}
    if not g.meta.get("run") or g.meta.get("paused", "").strip().lower() in TRUE:
        return None
    every = g.seconds("every")
    if st.get("killed"):
        if st["killed"] == digest(g) and (row is None or not row.get("alive")):
            return None  # killed by hand: stays stopped until the goal changes
        st.pop("killed")
        if row is None or not row.get("alive"):
            return _start(g, "start (goal changed since it was killed)")
    if row is None:
        # a one-shot that succeeded and whose session dir was reaped stays done
        return None if st.get("done") and every is None else _start(g, "start")
    state, code = row.get("state"), row.get("exit_code")
    if row.get("alive"):
        st.pop("done", None)
        return None
    handled, dec = _supervised(g, row, st, notes)
    if handled:
        return dec
    if state == "killed" and row.get("stop_reason") == "kill":
        st["killed"], st["failures"] = digest(g), 0
        st.pop("retry_at", None)
        notes.append(f"{g.id} was killed by hand: not restarted until goals/{g.id}.md changes")
        return None
    if state == "exited" and code == 0 or state == "killed":
        st["failures"] = 0
        st.pop("retry_at", None)
        st["done"] = state == "exited"
        done = finished_at(row)
        if every is not None and (done is None or now >= done + every):
            return _start(g, f"rerun (every {g.meta['every']})")
        if state == "killed" and every is None:
            return _start(g, "start again (stopped by looop's shutdown)")
        return None
    run_id = str(row.get("started_at"))
    if st.get("seen") != run_id:  # a failed run not counted yet
        st["seen"] = run_id
        st["failures"] = int(st.get("failures") or 0) + 1
        st["retry_at"] = (finished_at(row) or now) + backoff(st["failures"])
    at = float(st.get("retry_at") or 0)
    why = f"exit {code}" if state == "exited" else state
    if now < at:
        notes.append(f"{g.id}: {why} (failure {st['failures']}), restart in {at - now:.0f}s")
        return None
    st.pop("retry_at", None)
    return _start(g, f"restart after {why} (failure {st['failures']}, backoff {backoff(st['failures'])}s)")


def decide(goals: list["Goal"], rows: dict[str, dict[str, Any]], state: dict[str, Any],
           now: float, check: Callable[[str], bool]) -> dict[str, Any]:
    """Pure but for `check` (runs done_when): one decision dict. Mutates
    `state` to what should be saved."""
    notes: list[str] = []
    for g in sorted(goals, key=lambda g: g.id):
        st = state.setdefault(g.id, {})
        bad = problem(g)
        if bad:
            notes.append(f"goals/{g.id}.md: {bad}: skipped")
            continue
        dec = _for_goal(g, rows.get(g.id), st, now, check, notes)
        if dec is not None:
            if notes:
                dec["journal"] += " · " + "; ".join(notes)
            return dec
    for gid in [k for k in state if k not in {g.id for g in goals}]:
        del state[gid]  # archived goals forget their failures
    n = len(goals)
    what = "; ".join(notes) if notes else "nothing to do"
    return {"action": "noop", "reason": f"{n} goal{'s' * (n != 1)}: {what}",
            "journal": f"rules: {n} goal{'s' * (n != 1)}, {what}"}


def shell_check(d: str, env: dict[str, str]) -> Callable[[str], bool]:
    """done_when runner: `bash -lc cmd` in the data dir, own group, 30 s."""
    from looop.pulse import runner

    def check(cmd: str) -> bool:
        proc = runner.spawn(["bash", "-lc", cmd], cwd=d, env=env)
        done = runner.wait_exit(proc, CHECK_TIMEOUT)  # not reaped: the group stays ours
        runner.kill_group(proc, 0)
        return done and proc.returncode == 0
    return check


def run(d: str) -> dict[str, Any]:
    """Read the data dir, decide, write `.decision.json` and the state."""
    from looop import registry
    from looop.pulse.goals import read_goals
    from looop.store import jsonio, rulestate, sessions
    from looop.store.atomic import write_atomic
    state = rulestate.load(d)
    rows = {r["id"]: r for r in registry.rows(d) if r.get("role") == "worker"}
    for r in rows.values():
        if r.get("state") == "killed":  # by `looop kill`, or by looop's shutdown?
            r["stop_reason"] = sessions.read_status(d, r["id"]).get("stop_reason")
    dec = decide(read_goals(d), rows, state, time.time(), shell_check(d, dict(os.environ)))
    write_atomic(os.path.join(d, ".decision.json"), jsonio.dumpb(dec) + b"\n", fsync=False)
    rulestate.save(d, state)
    return dec
