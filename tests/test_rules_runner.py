"""The rules runner in a real tree (issue 14): a failing `run:` goal is
retried with backoff without stalling the goals after it; `every:` reruns on
time by itself; `looop kill` sticks until the goal changes; a worker waiting
out its backoff shows `backoff`."""
from __future__ import annotations

import json
import os
import signal
import time

from conftest import Tree, ls, run, wait_until
from fakes import isolated_home, read

assert isolated_home  # autouse fixture, imported so pytest finds it


def rules_dir(d: str, goals: dict[str, str]) -> None:
    os.makedirs(os.path.join(d, "goals"), exist_ok=True)
    with open(os.path.join(d, "looop.json"), "w") as f:
        json.dump({"default": "rules"}, f)
    open(os.path.join(d, ".seeded"), "w").close()
    for gid, text in goals.items():
        with open(os.path.join(d, "goals", gid + ".md"), "w") as f:
            f.write(text)


def row(sid: str) -> dict | None:
    return next((r for r in ls() if r["id"] == sid), None)


def journal(d: str) -> str:
    try:
        return read(d, "journal.md")
    except FileNotFoundError:
        return ""


def env(interval: str = "5") -> dict[str, str]:
    return {**os.environ, "LOOOP_INTERVAL": interval}


def test_a_failing_goal_is_retried_with_backoff_and_does_not_stall_the_next(data_dir):
    d = data_dir
    rules_dir(d, {"bad": "---\nrun: echo boom; exit 2\n---\n",
                  "svc": "---\nrun: echo start; sleep 100\n---\n"})
    t = Tree(d, env=env("5"))
    try:
        wait_until(lambda: (x := row("svc")) and x["alive"], 60, "svc to start despite bad failing")
        wait_until(lambda: "failure 3" in journal(d), 90, "bad retried a third time (backoff 1, 2, 4 s)")
        st = json.loads(read(d, ".rules-state.json"))
        assert st["bad"]["failures"] >= 3
        assert "backoff" not in read(d, "prompts", "bad.md").split("looop worker contract")[-1].split("\n#")[-1]
    finally:
        assert t.stop(signal.SIGTERM) == 0


def test_every_reruns_that_long_after_the_run_finished_without_another_change(data_dir):
    d = data_dir
    rules_dir(d, {"tock": "---\nrun: date +%s.%N >> $LOOOP_DATA_DIR/runs.txt\nevery: 2s\n---\n"})
    t = Tree(d, env=env("3600"))  # only the due time can wake the beat
    try:
        wait_until(lambda: os.path.exists(os.path.join(d, "runs.txt"))
                   and len(read(d, "runs.txt").split()) >= 3, 90, "three runs of tock")
        stamps = [float(x) for x in read(d, "runs.txt").split()]
        gaps = [b - a for a, b in zip(stamps, stamps[1:])]
        assert all(1.9 <= g <= 40 for g in gaps[:2]), gaps  # 2 s after the last run ended, not an hour
    finally:
        assert t.stop(signal.SIGTERM) == 0


def test_kill_sticks_until_the_goal_changes_and_backoff_shows(data_dir):
    d = data_dir
    rules_dir(d, {"svc": "---\nrun: echo start; sleep 100\n---\n",
                  "slow": "---\nrun: exit 3\n---\n"})
    t = Tree(d, env=env("0.3"))
    try:
        first = wait_until(lambda: (x := row("svc")) and x["alive"] and x, 60, "svc to start")
        # after a few failures the backoff (4 s, 8 s …) is long enough to see
        wait_until(lambda: "failure 3" in journal(d), 90, "slow to fail three times")
        wait_until(lambda: (x := row("slow")) and x["state"] == "backoff", 30, "ls to show backoff")
        human = run("ls", check=True).stdout
        assert any(ln.split()[:2] == ["slow", "backoff"] for ln in human.splitlines()), human
        assert run("kill", "svc").returncode == 0
        wait_until(lambda: "svc was killed by hand" in journal(d), 15, "the journal to say why")
        time.sleep(1.5)  # several beats: nothing restarts it
        assert row("svc")["state"] == "killed" and row("svc")["started_at"] == first["started_at"]
        with open(os.path.join(d, "goals", "svc.md"), "a") as f:
            f.write("changed\n")
        wait_until(lambda: (x := row("svc")) and x["alive"], 15, "svc to start again after the edit")
        assert "goal changed since it was killed" in journal(d)
    finally:
        assert t.stop(signal.SIGTERM) == 0
