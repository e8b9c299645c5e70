"""The built-in `rules` decider (`looop _rules`, SPEC §10): a tiny Kubernetes
for your scripts. Offline, deterministic, one decision per call, over goal
frontmatter:

    run: <shell command>     want a worker with the goal's id running it:
                             start it if absent; if it exited non-zero (or
                             died), start it again after a backoff of
                             1, 2, 4 … s (capped at 15 min); exit 0 = done
    every: <duration>        rerun a finished one after that long
    done_when: <command>     archive the goal once the command exits 0

Goals are visited in file-name order; the first that wants something gets
it, otherwise `noop`. The backoff is served inside the restarted worker
(`sleep N` before the command) so the loop stays level-triggered: the rules
decider never has to be woken for it. Consecutive failures per goal are kept
in `.rules-state.json`; an exit 0 resets them (and marks a one-shot `run:`
done, so it is not rerun when housekeeping reaps its session dir).
"""
from __future__ import annotations

import os
import time
from datetime import datetime
from typing import Any, Callable

from looop.pulse.goals import Goal

STATE_FILE = ".rules-state.json"
BACKOFF_CAP = 900
CHECK_TIMEOUT = 30.0
SCRIPT_CMD = "bash {{prompt_file}}"


def backoff(failures: int) -> int:
    """Seconds to wait before restart number `failures` (1, 2, 4 … ≤ 900)."""
    return 0 if failures <= 0 else min(2 ** (failures - 1), BACKOFF_CAP)


def finished_at(row: dict[str, Any]) -> float | None:
    stamp = row.get("_updated")
    try:
        return datetime.fromisoformat(str(stamp).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _start(g: Goal, why: str, delay: int = 0) -> dict[str, Any]:
    run = g.meta["run"]
    script = (f"# looop rules: backoff before restarting\nsleep {delay}\n" if delay else "") + run + "\n"
    return {"action": "start_worker", "id": g.id, "prompt": script, "command": SCRIPT_CMD,
            "journal": f"{why}: {g.id} ({run})"}


def _for_goal(g: Goal, row: dict[str, Any] | None, st: dict[str, Any], now: float,
              check: Callable[[str], bool]) -> dict[str, Any] | None:
    """The decision this goal wants, or None. Updates `st` (this goal's state)."""
    cond = g.meta.get("done_when")
    if cond and check(cond):
        return {"action": "archive_goal", "id": g.id, "journal": f"goal {g.id} done ({cond})"}
    if not g.meta.get("run"):
        return None
    every = g.seconds("every")
    if row is None:
        # a one-shot that succeeded and whose session dir was reaped stays done
        return None if st.get("done") and every is None else _start(g, "start")
    state, code = row.get("state"), row.get("exit_code")
    if row.get("alive"):
        st.pop("done", None)
        return None
    if state == "exited" and code == 0 or state == "killed":
        st["failures"] = 0
        st["done"] = state == "exited"
        done = finished_at(row)
        if every is not None and (done is None or now >= done + every):
            return _start(g, f"rerun (every {g.meta['every']})")
        if state == "killed" and every is None:
            return _start(g, "start again (was killed)")
        return None
    st["failures"] = int(st.get("failures") or 0) + 1
    delay = backoff(st["failures"])
    return _start(g, f"restart after exit {code} (failure {st['failures']}, backoff {delay}s)", delay)


def decide(goals: list[Goal], rows: dict[str, dict[str, Any]], state: dict[str, Any],
           now: float, check: Callable[[str], bool]) -> dict[str, Any]:
    """Pure but for `check` (runs done_when): one decision dict. Mutates
    `state` to what should be saved."""
    for g in sorted(goals, key=lambda g: g.id):
        st = state.setdefault(g.id, {})
        dec = _for_goal(g, rows.get(g.id), st, now, check)
        if dec is not None:
            return dec
    for gid in [k for k in state if k not in {g.id for g in goals}]:
        del state[gid]  # archived goals forget their failures
    n = len(goals)
    return {"action": "noop", "reason": f"{n} goal{'s' * (n != 1)}: nothing to do",
            "journal": f"rules: {n} goal{'s' * (n != 1)}, nothing to do"}


def shell_check(d: str, env: dict[str, str]) -> Callable[[str], bool]:
    """done_when runner: `bash -lc cmd` in the data dir, own group, 30 s."""
    import subprocess

    from looop.pulse import runner

    def check(cmd: str) -> bool:
        proc = runner.spawn(["bash", "-lc", cmd], cwd=d, env=env)
        try:
            return proc.wait(CHECK_TIMEOUT) == 0
        except subprocess.TimeoutExpired:
            return False
        finally:
            runner.kill_group(proc, 0)
    return check


def run(d: str) -> dict[str, Any]:
    """Read the data dir, decide, write `.decision.json` and the state."""
    from looop import registry
    from looop.pulse.goals import read_goals
    from looop.store import jsonio
    from looop.store.atomic import write_atomic
    path = os.path.join(d, STATE_FILE)
    state = jsonio.load_file(path, {}) or {}
    if not isinstance(state, dict):
        state = {}
    rows = {r["id"]: r for r in registry.rows(d) if r.get("role") == "worker"}
    dec = decide(read_goals(d), rows, state, time.time(), shell_check(d, dict(os.environ)))
    write_atomic(os.path.join(d, ".decision.json"), jsonio.dumpb(dec) + b"\n", fsync=False)
    write_atomic(path, jsonio.dumpb(state), fsync=False)
    return dec
