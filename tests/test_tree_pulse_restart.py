"""The pulse is permanent: restarted after a crash, within the restart
intensity; beyond it the root gives up with a non-zero exit (SPEC §1)."""
from __future__ import annotations

import json
import os
import signal

import pytest

from conftest import Tree, alive, ls, wait_gone, wait_until


def pulse_row(exclude: set[int] = frozenset()) -> dict | None:
    r = next((r for r in ls() if r["id"] == "pulse"), None)
    if r and r["alive"] and r["state"] == "running" and r["child_pid"] not in exclude \
            and r["pid"] and alive(r["pid"]):
        return r
    return None


def test_sigkill_of_the_pulse_child_restarts_it(tree):
    old = tree.pulse_running()
    os.kill(old["child_pid"], signal.SIGKILL)
    new = wait_until(lambda: pulse_row({old["child_pid"]}), 10, "a new pulse")
    assert new["child_pid"] != old["child_pid"]
    assert new["pid"] != old["pid"]
    # the old PTY command came back to the root (a subreaper), which killed it
    wait_gone([old["child_pid"], old["pid"]], 3)
    assert tree.proc.poll() is None
    with open(os.path.join(tree.d, "events.jsonl")) as f:
        evs = [json.loads(ln) for ln in f]
    assert any(e["event"] == "supervisor_restart" and e["id"] == "pulse" for e in evs)
    assert "pulse exited" in tree.output() and "restarting" in tree.output()


def test_six_pulse_crashes_in_a_minute_stop_the_root(data_dir):
    t = Tree(data_dir)  # defaults: 5 restarts in 60 s
    killed: set[int] = set()
    for i in range(6):
        row = wait_until(lambda: pulse_row(killed), 10, f"pulse #{i + 1}")
        killed.add(row["child_pid"])
        os.kill(row["child_pid"], signal.SIGKILL)
    code = t.proc.wait(10)
    t.out.close()
    assert code == 1
    out = t.output()
    assert "pulse crashed 6 times in 60s — giving up" in out
    assert out.count("restarting") == 5
    wait_gone(list(killed), 3)
    rows = {r["id"]: r for r in ls()}
    assert rows["pulse"]["alive"] is False
