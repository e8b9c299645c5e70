"""Worker restart policy on real processes (SPEC §16): transient, permanent
and temporary workers, intensity → `failed`, backoff as a root timer, a
SIGKILLed command, the runner's `resume` template, and bad input. One tree
for the module; each test has its own session ids."""
from __future__ import annotations

import json
import os
import signal
import time

import pytest

from conftest import alive, ls, run, wait_until


@pytest.fixture
def t(module_tree):
    return module_tree


def row(sid: str) -> dict | None:
    return next((r for r in ls() if r["id"] == sid), None)


def events(d: str, name: str, sid: str) -> list[dict]:
    with open(os.path.join(d, "events.jsonl")) as f:
        evs = [json.loads(ln) for ln in f if ln.strip()]
    return [e for e in evs if e["event"] == name and e.get("id") == sid]


def starts(path: str) -> list[float]:
    try:
        with open(path) as f:
            return [float(x) for x in f.read().split()]
    except FileNotFoundError:
        return []


def start(sid: str, script: str, *flags: str, runner: str | None = None) -> None:
    args = ["start-session", sid, script, *([runner] if runner else []), *flags]
    if runner is None:
        args += ["--command", "bash {{prompt_file}}"]
    r = run(*args)
    assert r.returncode == 0 or "exited at once" in r.stderr, r.stderr


def test_transient_exit_1_restarts_with_backoff_then_fails_after_3(t, tmp_path):
    log = str(tmp_path / "starts")
    start("tr1", f"date +%s.%N >> {log}; exit 1", "--restart", "transient", "--max-restarts", "3/10m")
    wait_until(lambda: (r := row("tr1")) and r["state"] == "failed", 30, "tr1 failed")
    ts = starts(log)
    assert len(ts) == 4, ts  # the first run and 3 restarts
    gaps = [b - a for a, b in zip(ts, ts[1:])]
    assert gaps[0] >= 0.9 and gaps[1] >= 1.9 and gaps[2] >= 3.9, gaps  # 1 s, 2 s, 4 s
    r = row("tr1")
    assert r["exit_code"] == 1 and not r["alive"]
    assert len(events(t.d, "supervisor_restart", "tr1")) == 3
    assert len(events(t.d, "worker_failed", "tr1")) == 1
    assert "worker tr1 exited (exit 1) — failed: 4 ends in 10m (max_restarts 3)" in t.output()
    time.sleep(1.2)  # a 4th restart would have been due by now (backoff 8 s is never scheduled)
    assert len(starts(log)) == 4 and row("tr1")["state"] == "failed"
    st = run("status").stdout
    assert "tr1" in st and "failed" in st


def test_permanent_restarts_after_exit_0_and_kill_stops_it(t, tmp_path):
    log = str(tmp_path / "starts")
    start("pm1", f"date +%s >> {log}; [ $(wc -l < {log}) -ge 2 ] && exec sleep 300; exit 0",
          "--restart", "permanent")
    wait_until(lambda: len(starts(log)) == 2 and (r := row("pm1")) and r["alive"], 15,
               "pm1 restarted after exit 0")
    assert events(t.d, "supervisor_restart", "pm1")[0]["exit_code"] == 0
    assert run("kill", "pm1").returncode == 0
    assert row("pm1")["state"] == "killed"  # asked: not restarted
    assert len(events(t.d, "supervisor_restart", "pm1")) == 1 and len(starts(log)) == 2


def test_temporary_is_never_restarted(t, tmp_path):
    log = str(tmp_path / "starts")
    start("tmp1", f"date +%s >> {log}; exit 1")
    wait_until(lambda: events(t.d, "worker_exited", "tmp1"), 10, "tmp1 exited")
    # the decision is taken when the death is seen: no backoff state, no restart event
    wait_until(lambda: "worker tmp1 exited (exit 1)" in t.output(), 5, "the exit line")
    assert row("tmp1")["state"] == "exited" and not events(t.d, "supervisor_restart", "tmp1")
    assert len(starts(log)) == 1


def test_sigkilled_command_of_a_permanent_worker_restarts(t):
    start("pm2", "exec sleep 300", "--restart", "permanent")
    old = wait_until(lambda: (r := row("pm2")) and r["alive"] and r["pid"] and r, 10, "pm2 live")
    os.kill(old["pid"], signal.SIGKILL)
    new = wait_until(lambda: (r := row("pm2")) and r["alive"] and r["pid"] not in (None, old["pid"])
                     and r, 15, "pm2 running again")
    assert alive(new["pid"]) and not alive(old["pid"])
    ev = events(t.d, "supervisor_restart", "pm2")
    assert len(ev) == 1 and ev[0]["exit_code"] == 128 + signal.SIGKILL
    assert run("kill", "pm2").returncode == 0


def test_restart_uses_the_runners_resume_template(t):
    with open(os.path.join(t.d, "looop.json"), "w") as f:
        json.dump({"runners": {"resumer": {
            "tick": "true", "interactive": "bash {{prompt_file}}",
            "resume": "echo RESUMED $(basename {{prompt_file}}); exec sleep 300"}}}, f)
    start("rs1", "echo FIRST; exit 3", "--restart", "transient", runner="resumer")
    wait_until(lambda: "RESUMED rs1.md" in run("log", "rs1").stdout, 15, "rs1 resumed")
    out = run("log", "rs1").stdout
    assert out.index("FIRST") < out.index("RESUMED rs1.md")  # one log across both runs
    assert row("rs1")["alive"]
    assert run("kill", "rs1").returncode == 0
    os.unlink(os.path.join(t.d, "looop.json"))


def test_kill_during_backoff_cancels_the_restart(t, tmp_path):
    log = str(tmp_path / "starts")
    start("bk1", f"date +%s >> {log}; exit 1", "--restart", "transient")
    wait_until(lambda: (r := row("bk1")) and r["state"] == "backoff", 10, "bk1 in backoff")
    r = run("kill", "bk1")
    assert r.returncode == 0 and "bk1 killed" in r.stdout
    time.sleep(1.3)  # past the 1 s backoff
    assert row("bk1")["state"] == "killed" and len(starts(log)) == 1


def test_bad_restart_input_is_one_clear_line(t):
    r = run("start-session", "bad1", "x", "--max-restarts", "3x")
    assert r.returncode == 1
    assert r.stderr.strip() == "looop start-session: bad max restarts '3x' (use N/WINDOW, e.g. 3/10m)"
    r = run("start-session", "bad1", "x", "--restart", "sometimes")
    assert r.returncode == 1 and "bad restart type 'sometimes'" in r.stderr
    with open(os.path.join(t.d, "looop.json"), "w") as f:
        json.dump({"runners": {"noresume": {"tick": "true", "interactive": "bash {{prompt_file}}",
                                            "resume": "claude --continue"}}}, f)
    r = run("start-session", "bad1", "x", "noresume")
    assert r.returncode == 1
    assert "runner 'noresume': 'resume' must contain {{prompt_file}}" in r.stderr
    assert row("bad1") is None
    r = run("doctor")
    assert r.returncode == 1 and "runner noresume: 'resume' must contain {{prompt_file}}" in r.stdout
    os.unlink(os.path.join(t.d, "looop.json"))


def test_rules_goal_with_restart_leaves_restarts_to_the_supervisor(data_dir, tmp_path):
    from conftest import Tree
    from fakes import read
    d, log = data_dir, str(tmp_path / "starts")
    os.makedirs(os.path.join(d, "goals"))
    with open(os.path.join(d, "looop.json"), "w") as f:
        json.dump({"default": "rules"}, f)
    open(os.path.join(d, ".seeded"), "w").close()
    goal = os.path.join(d, "goals", "flaky.md")
    with open(goal, "w") as f:
        f.write(f"---\nrun: date +%s >> {log}; exit 4\nrestart: transient\nmax_restarts: 2/10m\n---\n")
    t = Tree(d, env={**os.environ, "LOOOP_INTERVAL": "0.5"})
    try:
        wait_until(lambda: (r := row("flaky")) and r["state"] == "failed", 30, "flaky failed")
        assert len(starts(log)) == 3  # the rules runner's start + the supervisor's 2 restarts
        assert len(events(d, "supervisor_restart", "flaky")) == 2
        wait_until(lambda: "flaky failed (restarted too often)" in read(d, "journal.md"), 10,
                   "the rules runner to say it leaves it failed")
        assert "restart after" not in read(d, "journal.md") and len(starts(log)) == 3
        with open(goal, "a") as f:
            f.write("edited\n")
        wait_until(lambda: len(starts(log)) >= 4, 15, "a start after the goal changed")
        wait_until(lambda: "start (goal changed since it failed)" in read(d, "journal.md"), 10,
                   "the journal to say why it started again")  # written after the start returns
    finally:
        t.stop()


def test_start_worker_action_carries_the_restart_policy(data_dir, tmp_path):
    """The decider's start_worker with `restart`/`max_restarts`: the supervisor
    restarts the worker it started, and gives up on it past the intensity."""
    from conftest import Tree
    from fakes import setup_fake
    d, log = data_dir, str(tmp_path / "starts")
    fake = setup_fake(d, str(tmp_path / "ctl"))
    fake.queue({"action": "start_worker", "id": "aw", "prompt": f"date +%s.%N >> {log}; exit 2",
                "command": "bash {{prompt_file}}", "restart": "transient", "max_restarts": "1/10m",
                "journal": "start a flaky one"})
    t = Tree(d, env={**os.environ, "LOOOP_INTERVAL": "0.5"})
    try:
        wait_until(lambda: (r := row("aw")) and r["state"] == "failed", 30, "aw failed")
        assert len(starts(log)) == 2  # the start and 1 restart
        assert len(events(d, "supervisor_restart", "aw")) == 1
        assert json.load(open(os.path.join(d, "sessions", "aw", "meta.json")))["restart"] == \
            {"type": "transient", "max_restarts": 1, "window_s": 600.0}
    finally:
        t.stop()
