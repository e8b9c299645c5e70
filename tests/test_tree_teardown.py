"""Nothing outlives the root: SIGKILL of the root, stubborn workers, setsid'd
grandchildren, and the stop ladder of one worker (SPEC §1, §12)."""
from __future__ import annotations

import json
import os
import re
import signal
import time

import psutil
import pytest

from conftest import Tree, alive, ls, run, wait_gone, wait_until

from looop.store import sessions

STUBBORN = "trap '' HUP TERM; echo stubborn up; while :; do sleep 0.1; done"
ESCAPEE = "setsid sleep 301 & echo escapee=$!; wait"


def escapee_pid(sid: str) -> int:
    r = run("expect", sid, r"escapee=(\d+)", "--json", "--timeout", "10s", check=True)
    return int(json.loads(r.stdout)["groups"][0])


def three_workers(t: Tree) -> tuple[list[int], int]:
    """plain, stubborn, escapee; returns (every pid of the tree, the escapee)."""
    t.start("plain", "sleep 300")
    t.start("stubborn", STUBBORN)
    t.start("escapee", ESCAPEE)
    run("expect", "stubborn", "stubborn up", "--timeout", "10s", check=True)
    esc = escapee_pid("escapee")
    worker = next(r for r in ls() if r["id"] == "escapee")
    # it really left the worker's session (setsid), and is still ours
    assert os.getsid(esc) != os.getsid(worker["pid"])
    everything = t.pids()
    assert esc in everything
    assert {r["pid"] for r in ls() if r["role"] == "worker"} <= set(everything)
    return everything, esc


def test_sigkill_root_no_survivors_within_2s(data_dir):
    # the default grace (5 s) would be too long: an orphaned child must not use it
    t = Tree(data_dir, env=dict(os.environ, LOOOP_SHUTDOWN_GRACE="5"))
    everything, esc = three_workers(t)
    os.kill(t.pid, signal.SIGKILL)
    t0 = time.monotonic()
    wait_gone(everything, 2.0, "the tree after SIGKILL of the root")
    assert time.monotonic() - t0 <= 2.0
    assert not alive(esc)
    t.stop()
    for sid in ("plain", "stubborn", "escapee"):
        st = wait_until(lambda: sessions.read_status(data_dir, sid).get("state") == "killed"
                        and sessions.read_status(data_dir, sid), 3, f"{sid} recorded killed")
        assert st["exit_code"] is not None
    assert sessions.read_status(data_dir, "stubborn")["exit_code"] == 137  # it took SIGKILL


def test_sigterm_root_with_stubborn_workers_is_bounded(data_dir):
    t = Tree(data_dir)  # grace 1 s
    everything, esc = three_workers(t)
    t0 = time.monotonic()
    code = t.stop(signal.SIGTERM, timeout=1 + 2 + 2)
    took = time.monotonic() - t0
    assert code == 0
    assert took < 1 + 2 + 0.5, f"shutdown took {took:.2f}s"
    wait_gone(everything, 1.0)
    out = t.output()
    assert "stopped 3 workers (escapee, plain, stubborn)" in out
    assert "pulse stopped" in out
    rows = {r["id"]: r for r in ls()}
    assert rows["stubborn"]["state"] == "killed" and rows["stubborn"]["exit_code"] == 137
    assert rows["plain"]["state"] == "killed"
    assert rows["pulse"]["alive"] is False


def test_stubborn_worker_is_sigkilled_after_the_grace(tree):
    tree.start("stubborn", STUBBORN)
    run("expect", "stubborn", "stubborn up", "--timeout", "10s", check=True)
    row = next(r for r in ls() if r["id"] == "stubborn")
    group = [p.pid for p in psutil.Process(row["pid"]).children(recursive=True)] + [row["pid"]]
    t0 = time.monotonic()
    r = run("kill", "stubborn", check=True, timeout=10)
    took = time.monotonic() - t0
    assert r.stdout.strip() == "stubborn killed"
    assert 1.0 <= took < 1.0 + 2.0, f"kill took {took:.2f}s with a 1 s grace"
    wait_gone(group + [row["child_pid"]], 2.0)
    st = sessions.read_status(tree.d, "stubborn")
    assert (st["state"], st["exit_code"]) == ("killed", 137)
    assert run("wait", "stubborn", "--timeout", "5s").returncode == 137
    assert tree.proc.poll() is None  # the tree keeps running


def test_cooperative_worker_stops_at_once(tree):
    tree.start("polite", "sleep 300")
    t0 = time.monotonic()
    run("kill", "polite", check=True, timeout=10)
    assert time.monotonic() - t0 < 1.0  # SIGHUP did it: no grace spent
    st = sessions.read_status(tree.d, "polite")
    assert st["state"] == "killed" and st["exit_code"] == 129


def test_events_record_worker_lifecycle(tree):
    run("start-session", "brief", "exit 4", "--command", "bash {{prompt_file}}", check=True)
    assert run("wait", "brief", "--timeout", "10s").returncode == 4
    with open(os.path.join(tree.d, "events.jsonl")) as f:
        evs = [json.loads(ln) for ln in f]
    started = [e for e in evs if e["event"] == "worker_started" and e["id"] == "brief"]
    exited = [e for e in evs if e["event"] == "worker_exited" and e["id"] == "brief"]
    assert len(started) == 1 and started[0]["pid"] and started[0]["child_pid"]
    assert exited and (exited[0]["state"], exited[0]["exit_code"]) == ("exited", 4)
    assert any(e["event"] == "pulse_started" for e in evs)
    assert re.match(r"\d{4}-\d\d-\d\dT", started[0]["ts"])


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGQUIT, signal.SIGHUP])
def test_terminal_signals_to_the_whole_foreground_group(data_dir, sig):
    """A terminal's Ctrl-C / Ctrl-\\ / hangup signal every process of the
    foreground group at once — the root and its children alike. The root
    handles it once; nothing dies without its teardown, no traceback."""
    t = Tree(data_dir, new_group=True)
    t.start("w1", "sleep 300")
    t.start("w2", "echo up; exec cat")
    everything = t.pids()
    assert os.getpgid(t.pid) == t.pid
    os.killpg(t.pid, sig)
    assert t.proc.wait(1 + 2 + 2) == 0
    t.out.close()
    wait_gone(everything, 1.0)
    out = t.output()
    assert "stopped 2 workers (w1, w2)" in out and "pulse stopped" in out
    assert "Traceback" not in out
    assert {r["id"]: r["state"] for r in ls()} == {"pulse": "killed", "w1": "killed", "w2": "killed"}


def test_a_stopped_worker_gets_sigcont_first(tree):
    tree.start("frozen", "echo freezing; kill -STOP $$; while :; do sleep 0.1; done")
    pid = next(r for r in ls() if r["id"] == "frozen")["pid"]
    wait_until(lambda: psutil.Process(pid).status() == psutil.STATUS_STOPPED, 10, "SIGSTOPped")
    t0 = time.monotonic()
    run("kill", "frozen", check=True)
    assert time.monotonic() - t0 < 1.0  # CONT let the HUP in: no grace spent, no SIGKILL
    st = sessions.read_status(tree.d, "frozen")
    assert (st["state"], st["exit_code"]) == ("killed", 129)


def test_a_second_ctrl_c_skips_the_grace(data_dir):
    t = Tree(data_dir, env=dict(os.environ, LOOOP_SHUTDOWN_GRACE="30"))
    t.start("stubborn", STUBBORN)
    run("expect", "stubborn", "stubborn up", "--timeout", "10s", check=True)
    everything = t.pids()
    t0 = time.monotonic()
    os.kill(t.pid, signal.SIGINT)
    wait_until(lambda: "root_stop" in open(os.path.join(data_dir, "events.jsonl")).read(), 5,
               "the first Ctrl-C to be taken")
    os.kill(t.pid, signal.SIGINT)  # impatient: no more grace
    assert t.stop(timeout=5) == 0
    wait_gone(everything, 2)
    assert time.monotonic() - t0 < 4  # not the 30 s grace
    assert sessions.read_status(data_dir, "stubborn")["state"] == "killed"


def test_a_new_root_sweeps_what_a_sigkilled_group_left(data_dir):
    """SIGKILL of the root and its children at once: nobody runs a stop
    ladder, and commands that ignore the PTY's hangup or left its session
    survive. The next root of this data dir finds and kills them. (A plain
    `kill -9 -PGID` no longer does that: the children lead their own groups
    and clean up — tests/faults/test_fault_group_kill.py.)"""
    t = Tree(data_dir, new_group=True)
    everything, esc = three_workers(t)
    stubborn = next(r for r in ls() if r["id"] == "stubborn")["pid"]
    for p in [c.pid for c in psutil.Process(t.pid).children()] + [t.pid]:
        os.kill(p, signal.SIGKILL)  # children first: none may see the root die and clean up
    t.stop()
    wait_until(lambda: not alive(t.pid), 5)
    assert alive(stubborn) and alive(esc)  # the scenario: survivors nobody stopped
    t2 = Tree(data_dir)
    wait_gone([stubborn, esc], 3, "leftovers of the dead tree")
    assert "leftover processes of a previous looop" in t2.output()
    rows = {r["id"]: r for r in ls()}
    assert all(rows[s]["state"] == "dead" for s in ("plain", "stubborn", "escapee"))
    assert rows["pulse"]["alive"]
    assert t2.stop() == 0


def test_a_worker_child_killed_outright_is_recorded_dead_and_swept(tree):
    tree.start("victim", "setsid sleep 302 & echo escapee=$!; trap '' HUP TERM; while :; do sleep 0.1; done")
    esc = escapee_pid("victim")
    row = next(r for r in ls() if r["id"] == "victim")
    os.kill(row["child_pid"], signal.SIGKILL)  # no last words from the child
    # its command and the setsid'd grandchild came back to the root (a subreaper)
    wait_gone([row["child_pid"], row["pid"], esc], 3, "the dead child's processes")
    row = wait_until(lambda: (r := next(r for r in ls() if r["id"] == "victim"))["state"] == "dead" and r,
                     5, "victim recorded dead")
    assert row["alive"] is False
    assert tree.proc.poll() is None and tree.pulse_running()
    r = run("wait", "victim", "--timeout", "5s")
    assert r.returncode == 1 and "without an exit code" in r.stderr
    evs = [json.loads(ln) for ln in open(os.path.join(tree.d, "events.jsonl"))]
    assert any(e["event"] == "worker_exited" and e["id"] == "victim" and e["state"] == "dead"
               for e in evs)
