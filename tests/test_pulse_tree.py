"""The pulse inside a running `looop`: worker moves go through the root,
backoff and reset over real beats, the rules runner doing real work, and
`looop tick` refusing to race the live pulse."""
from __future__ import annotations

import json
import os
import signal
from typing import Any, Callable

import pytest

from conftest import Tree, alive, kill_tmux, ls, run, wait_until
from fakes import bump_world, isolated_home, read, sensor, setup_fake

from looop.store.prompts import contract

WORKER = ("cat {{prompt_file}} >/dev/null; echo SID=$LOOOP_SESSION_ID; "
          "while read -r l; do echo got:$l; done; echo bye")

assert isolated_home  # autouse fixture, imported so pytest finds it


def fast_env(**extra: str) -> dict[str, str]:
    return {**os.environ, "LOOOP_INTERVAL": "0.2", **extra}


def journal_has(d: str, text: str) -> bool:
    try:
        return text in read(d, "journal.md")
    except FileNotFoundError:
        return False


def log_has(d: str, sid: str, text: str) -> bool:
    try:
        return text in read(d, "sessions", sid, "output.log")
    except FileNotFoundError:
        return False


def row(sid: str) -> dict | None:
    return next((r for r in ls() if r["id"] == sid), None)


def test_worker_moves_through_a_running_tree(data_dir, tmp_path):
    d = data_dir
    fake = setup_fake(d, str(tmp_path / "ctl"), interactive=WORKER)
    t = Tree(d, env=fast_env())
    try:
        r = run("tick")
        assert r.returncode == 1 and f"looop is running for this data dir (pid {t.pid})" in r.stderr
        pulse_pid = t.pulse_running()["pid"]
        os.kill(pulse_pid, signal.SIGINT)  # shrugged off: Ctrl-C is the root's business

        def move(decision: dict, journaled: str) -> None:
            fake.queue(decision)
            bump_world(d)
            wait_until(lambda: journal_has(d, journaled), 15, f"the journal to say {journaled!r}")

        move({"action": "start_worker", "id": "w1", "prompt": "do the thing"}, "started worker w1")
        w = wait_until(lambda: (x := row("w1")) and x["alive"] and x, 10, "w1 live in ls")
        assert w["role"] == "worker"
        prompt = read(d, "prompts", "w1.md")
        assert prompt.startswith(contract()) and prompt.rstrip().endswith("do the thing")
        wait_until(lambda: log_has(d, "w1", "SID=w1"), 10, "LOOOP_SESSION_ID inside the worker")

        run("flag", "w1", "which branch?", check=True)
        line = f"⚑ w1: which branch? — LOOOP_DATA_DIR={d} looop attach w1"
        # the block is written line by line: wait for the whole of it, not its header
        wait_until(lambda: "NEEDS YOU (1)" in t.output() and line in t.output(), 10,
                   "the NEEDS YOU block with the attach command")
        run("unflag", "w1", check=True)

        move({"action": "steer_session", "id": "w1", "input": "hello there"}, "steered w1")
        wait_until(lambda: log_has(d, "w1", "got:hello there"), 10, "the steered line")

        move({"action": "send_key", "id": "w1", "keys": ["C-d"]}, "sent C-d to w1")
        wait_until(lambda: (x := row("w1")) and x["state"] == "exited" and x["exit_code"] == 0,
                   10, "w1 to exit on EOF")

        move({"action": "restart_session", "id": "w1"}, "restarted w1")
        wait_until(lambda: (x := row("w1")) and x["alive"], 10, "w1 running again")

        assert t.pulse_running()["pid"] == pulse_pid
        s = json.loads(run("status", "--json", check=True).stdout)
        assert set(s) == {"pulse", "root", "last_tick", "workers", "cost_today_usd", "data_dir"}
        assert s["pulse"]["running"] and s["root"]["pid"] == t.pid and s["data_dir"] == d
        assert len(s["last_tick"]["hash"]) == 64
        assert [w["id"] for w in s["workers"]] == ["w1"] and s["workers"][0]["alive"]
        assert set(s["workers"][0]) == set(ls()[0])
    finally:
        assert t.stop(signal.SIGTERM) == 0
    assert fake.queued() == 0


def test_failed_beats_back_off_and_success_resets(data_dir, tmp_path):
    d = data_dir
    fake = setup_fake(d, str(tmp_path / "ctl"))
    fake.mode("fail:3")
    sensor(d, "sig", "grep SigIgn /proc/self/status > reports/sigign; echo '{}'")
    t = Tree(d, args=("--json",), env=fast_env())
    try:
        def cadences() -> list[dict]:
            out = []
            for ln in t.output().splitlines():
                try:
                    o = json.loads(ln)
                except ValueError:
                    continue
                if o.get("event") == "cadence":
                    out.append(o)
            return out
        wait_until(lambda: len(cadences()) >= 5, 20, "five beats")
    finally:
        t.stop(signal.SIGTERM)
    got = [(c["interval_s"], c["mode"]) for c in cadences()[:5]]
    assert got[:3] == [(0.4, "backoff"), (0.8, "backoff"), (1.6, "backoff")]
    assert got[3] == (0.2, "busy") or got[3] == (0.2, "idle")  # success: back to the interval
    assert got[4] == (0.2, "idle")
    assert len(fake.calls()) == 4  # three failures, one success, then an unchanged world
    # the pulse shrugs off SIGINT, but what it starts gets every signal back
    assert read(d, "reports", "sigign").split() == ["SigIgn:", "0000000000000000"]
    for ln in t.output().splitlines():
        if ln.strip():
            json.loads(ln)


def test_rules_runner_runs_reruns_and_archives(data_dir):
    d = data_dir
    os.makedirs(os.path.join(d, "goals"))
    with open(os.path.join(d, "looop.json"), "w") as f:
        json.dump({"default": "rules"}, f)
    with open(os.path.join(d, "goals", "hello.md"), "w") as f:
        f.write("---\nrun: echo hi from $LOOOP_SESSION_ID; sleep 1\nevery: 2s\n"
                "done_when: test -f done\n---\nSay hi every two seconds until `done` exists.\n")
    t = Tree(d, env=fast_env())
    try:
        wait_until(lambda: log_has(d, "hello", "hi from hello"), 15, "the worker to run")
        first = wait_until(lambda: (x := row("hello")) and x["state"] == "exited" and x, 10,
                           "the worker to exit")
        assert first["exit_code"] == 0
        wait_until(lambda: (x := row("hello")) and x["started_at"] != first["started_at"] or
                   journal_has(d, "rerun (every 2s): hello"), 15, "a rerun after every: 2s")
        assert read(d, "prompts", "hello.md").startswith("#!/usr/bin/env bash\n# # looop worker contract")
        open(os.path.join(d, "done"), "w").close()
        wait_until(lambda: os.path.exists(os.path.join(d, "goals", "archive", "hello.md")), 15,
                   "done_when to archive the goal")
        assert not os.path.exists(os.path.join(d, "goals", "hello.md"))
        assert journal_has(d, "goal hello done (test -f done)")
    finally:
        assert t.stop(signal.SIGTERM) == 0


def test_stopping_the_tree_mid_beat_leaves_no_runner(data_dir, tmp_path):
    d = data_dir
    fake = setup_fake(d, str(tmp_path / "ctl"))
    fake.mode("hang")
    t = Tree(d, env=fast_env())
    pids_file = os.path.join(fake.ctl, "hang.pids")
    wait_until(lambda: os.path.exists(pids_file) and read(fake.ctl, "hang.pids").strip(), 10,
               "the runner to hang")
    pids = [int(p) for p in read(fake.ctl, "hang.pids").split()]
    assert t.stop(signal.SIGTERM) == 0
    import psutil
    wait_until(lambda: not any(psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE
                               for p in pids), 5, "the runner and its child to be gone")
    assert "Traceback" not in t.output()


def _surfacing(d: str, tmp_path: Any) -> tuple[Any, dict[str, str], Callable[..., Any]]:
    """A fake decider whose workers print their id, a pulse env that opens
    tmux windows for flags, and a private tmux server with one session:
    (fake, env, tmux(*args) → CompletedProcess)."""
    import shutil
    import subprocess
    if not shutil.which("tmux"):
        pytest.skip("tmux not installed")
    fake = setup_fake(d, str(tmp_path / "ctl"), interactive=WORKER)
    tmux_dir = tmp_path / "tmux"
    tmux_dir.mkdir()
    env = fast_env(LOOOP_TMUX_SURFACE="1", TMUX_TMPDIR=str(tmux_dir))
    env.pop("TMUX", None)

    def tmux(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["tmux", *args], env=env, capture_output=True, text=True, timeout=10)
    assert tmux("new-session", "-d", "-s", "looop-test", "sleep 300").returncode == 0
    return fake, env, tmux


def test_tmux_window_per_newly_flagged_worker(data_dir, tmp_path):
    d = data_dir
    fake, env, tmux = _surfacing(d, tmp_path)
    t = Tree(d, env=env)
    try:
        fake.queue({"action": "start_worker", "id": "w1", "prompt": "p"})
        bump_world(d)
        wait_until(lambda: (x := row("w1")) and x["alive"], 15, "w1 live")
        run("flag", "w1", "look at me", check=True)
        wait_until(lambda: "⚑w1" in tmux("list-windows", "-a", "-F", "#{window_name}").stdout, 15,
                   "a tmux window for the flagged worker")
        n = len(fake.calls())
        bump_world(d)  # another changed-world beat with the same flag: no second window
        wait_until(lambda: len(fake.calls()) > n and "NEEDS YOU" in t.output().split("deciding")[-1],
                   15, "another deciding beat")
        windows = tmux("list-windows", "-a", "-F", "#{window_name}").stdout.split()
        assert windows.count("⚑w1") == 1
    finally:
        t.stop(signal.SIGTERM)
        kill_tmux(env=env)


def test_sigterm_to_the_pulse_waiting_on_a_stopped_tmux_server_ends_it_at_once(data_dir, tmp_path):
    """Surfacing a flag opens a tmux window; a tmux server that cannot answer
    (SIGSTOPped) holds the client. SIGTERM to the pulse then ends it at once,
    not after the client's 5 s bound, and takes the client with it."""
    import time

    import psutil
    d = data_dir
    fake, env, tmux = _surfacing(d, tmp_path)
    server = psutil.Process(int(tmux("display", "-p", "#{pid}").stdout.strip()))
    t = Tree(d, env=env)
    try:
        fake.queue({"action": "start_worker", "id": "w1", "prompt": "p"})
        bump_world(d)
        wait_until(lambda: (x := row("w1")) and x["alive"], 15, "w1 live")
        pulse = t.pulse_running()["pid"]
        server.suspend()
        try:
            run("flag", "w1", "look at me", check=True)
            bump_world(d)

            def client() -> list[psutil.Process]:
                return [c for c in psutil.Process(pulse).children()
                        if c.cmdline()[:2] == ["tmux", "new-window"]]
            held = wait_until(client, 15, "the pulse's tmux client, held by the stopped server")
            began = time.monotonic()
            os.kill(pulse, signal.SIGTERM)
            wait_until(lambda: not psutil.pid_exists(pulse) or
                       psutil.Process(pulse).status() == psutil.STATUS_ZOMBIE, 15, "the pulse to end")
            took = time.monotonic() - began
            wait_until(lambda: not any(alive(c.pid) for c in held), 5, "the tmux client gone")
        finally:
            server.resume()
        assert took < 3, f"the pulse took {took:.1f}s to end while tmux held it"
        wait_until(lambda: (r := t.pulse_running()) and r["pid"] != pulse, 15, "a new pulse")
    finally:
        t.stop(signal.SIGTERM)
        kill_tmux(env=env)


def test_sigterm_to_the_pulse_mid_beat_ends_it_cleanly(data_dir, tmp_path):
    """SIGTERM to the pulse while a sensor hangs, then (its next run) while
    the decider hangs: each time it ends promptly, what it started is gone,
    no traceback in its output, and the restarted pulse carries on over
    intact files (issue 14: the handler only records; the waits see it)."""
    import glob
    import time

    import psutil
    d = data_dir
    fake = setup_fake(d, str(tmp_path / "ctl"))
    fake.mode("hang")
    sensor(d, "slow", "if [ ! -e reports/slow.once ]; then touch reports/slow.once; "
                      "echo $$ > reports/slow.pid; sleep 300; fi; echo '{}'")
    t = Tree(d, env=fast_env())
    try:
        def pid_in(path: str) -> list[int]:
            try:
                return [int(p) for p in read(*path.split("|")).split()]
            except (FileNotFoundError, ValueError):
                return []

        for phase, marker in (("sensor", f"{d}|reports|slow.pid"), ("decider", f"{fake.ctl}|hang.pids")):
            hung = wait_until(lambda: pid_in(marker), 15, f"the {phase} to hang")
            pulse = t.pulse_running()["pid"]
            began = time.monotonic()
            os.kill(pulse, signal.SIGTERM)
            wait_until(lambda: not psutil.pid_exists(pulse) or
                       psutil.Process(pulse).status() == psutil.STATUS_ZOMBIE, 5, f"the pulse to end ({phase})")
            took = time.monotonic() - began
            assert took < 3, f"the pulse took {took:.1f}s to end in its {phase}"
            wait_until(lambda: not any(psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE
                                       for p in hung), 5, f"the {phase}'s processes to be gone")
            wait_until(lambda: (r := t.pulse_running()) and r["pid"] != pulse, 10, "a new pulse")
        # The root lists the third pulse as running when it forks it; its
        # "pulse up" line follows a moment later (CI once read the log between).
        log = wait_until(lambda: (o := run("log", "pulse").stdout).count("pulse up") >= 3 and o,
                         10, "the third pulse's 'pulse up' line")
        assert "Traceback" not in log and "Shutdown" not in log, log
        for name in (".next-interval",):
            if os.path.exists(os.path.join(d, name)):
                json.loads(read(d, name))
        for ln in read(d, "events.jsonl").splitlines():
            json.loads(ln)
        assert not glob.glob(os.path.join(d, ".*.tmp")) + glob.glob(os.path.join(d, "*", ".*.tmp"))
    finally:
        assert t.stop(signal.SIGTERM) == 0
    assert "Traceback" not in t.output()


def test_sigterm_to_the_pulse_waiting_on_a_silent_root_ends_it_at_once(data_dir, tmp_path):
    """The pulse carries a start_worker move to a root that cannot answer
    (SIGSTOPped between the decider's call and its decision). SIGTERM to the
    pulse then ends it at once, not after the call's 60 s bound: its link
    call waits on the stop pipe too, like every other wait of the pulse.
    The root, resumed, starts a new pulse."""
    import time

    import psutil
    if not _asleep(os.getppid()):  # (pytest's parent waits for it)
        pytest.skip("this kernel hides wait channels (/proc/PID/wchan)")
    d = data_dir
    fake = setup_fake(d, str(tmp_path / "ctl"))
    t = Tree(d, env=fast_env())
    root = psutil.Process(t.pid)
    try:
        pulse = wait_until(t.pulse_running, 15, "the pulse")["pid"]
        wait_until(lambda: len(fake.calls()) >= 1, 15, "the first beat")
        fake.mode("gate")  # the next decider waits for <ctl>/gate
        n = len(fake.calls())
        fake.queue({"action": "start_worker", "id": "w1", "prompt": "p"})
        bump_world(d)
        wait_until(lambda: len(fake.calls()) > n, 15, "the decider to be called")
        root.suspend()  # psutil: the identity-checked SIGSTOP
        try:
            open(os.path.join(fake.ctl, "gate"), "w").close()
            # the decider reaped, the pulse asleep: the only wait left in the
            # beat is the call carrying the move to the stopped root
            wait_until(lambda: not psutil.Process(pulse).children() and _asleep(pulse), 15,
                       "the pulse blocked on its link")
            began = time.monotonic()
            os.kill(pulse, signal.SIGTERM)
            wait_until(lambda: not psutil.pid_exists(pulse) or
                       psutil.Process(pulse).status() == psutil.STATUS_ZOMBIE, 15, "the pulse to end")
            took = time.monotonic() - began
        finally:
            root.resume()
        assert took < 3, f"the pulse took {took:.1f}s to end while waiting on the root"
        wait_until(lambda: (r := t.pulse_running()) and r["pid"] != pulse, 15, "a new pulse")
        assert "Traceback" not in run("log", "pulse").stdout
    finally:
        assert t.stop(signal.SIGTERM) == 0


def _asleep(pid: int) -> bool:
    """Is process `pid` blocked in a wait (S state, a wait channel)?"""
    try:
        with open(f"/proc/{pid}/stat") as f:
            asleep = f.read().rsplit(")", 1)[1].split()[0] == "S"
        with open(f"/proc/{pid}/wchan") as f:
            return asleep and f.read() not in ("", "0")
    except OSError:
        return False
