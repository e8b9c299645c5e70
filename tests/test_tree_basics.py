"""The tree end to end: workers visible in ls and ps, teardown by signal."""
from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess

import psutil
import pytest

from conftest import Tree, ls, run, wait_until
from looop.store import paths


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_three_workers_then_signal_tears_everything_down(data_dir, sig):
    t = Tree(data_dir)
    for sid in ("a", "b", "c"):
        t.start(sid, "echo started $LOOOP_SESSION_ID; sleep 300")
    rows = ls()
    assert [r["id"] for r in rows][:1] == ["pulse"]
    assert {r["id"] for r in rows if r["alive"]} == {"pulse", "a", "b", "c"}
    ps = subprocess.run(["ps", "-eww", "-o", "args"], capture_output=True, text=True).stdout
    for sid in ("a", "b", "c"):
        # [<state> <activity> <since>]: the activity is in the title (SPEC §15)
        assert re.search(rf"looop: worker {sid} \[running [a-z]+ \d+\] {re.escape(data_dir)}", ps), ps
    assert f"looop: pulse [running] {data_dir}" in ps
    assert f"looop: root [running] {data_dir}" in ps
    commands = [r["pid"] for r in rows if r["role"] == "worker"]
    everything = t.pids()
    assert set(commands) <= set(everything)
    code = t.stop(sig, timeout=1 + 2 + 5)
    assert code == 0
    wait_until(lambda: not any(psutil.pid_exists(p) for p in everything), 3, "every pid gone")
    out = t.output()
    assert "stopped 3 workers (a, b, c)" in out
    assert "pulse stopped" in out


def test_second_root_refuses_with_pid(tree):
    r = run("run")
    assert r.returncode == 1
    assert f"already running (pid {tree.pid})" in r.stderr
    assert "looop watch pulse" in r.stderr


def test_a_data_dir_with_spaces_and_many_quick_workers(tmp_path, monkeypatch):
    """Titles keep a data dir with spaces intact (it is last in the title), and
    every worker's final status is the one its child reported, even when many
    end at once (the link's last words are read before the sentinel's)."""
    from conftest import assert_no_leftovers, use_profile
    d = use_profile(monkeypatch, str(tmp_path / "my data  dir"))
    t = Tree(d)
    try:
        for i in range(8):
            run("start-session", f"q{i}", "x", "--command", f"exit {10 + i}; : {{{{prompt_file}}}}",
                check=True)
        for i in range(8):
            assert run("wait", f"q{i}", "--timeout", "20s").returncode == 10 + i
        rows = {r["id"]: r for r in ls()}
        assert rows["pulse"]["alive"] and rows["pulse"]["state"] == "running"
        for i in range(8):
            assert (rows[f"q{i}"]["state"], rows[f"q{i}"]["exit_code"]) == ("exited", 10 + i)
        ps = subprocess.run(["ps", "-eww", "-o", "args"], capture_output=True, text=True).stdout
        assert f"looop: pulse [running] {d}" in ps
    finally:
        assert t.stop() == 0
    assert_no_leftovers(d)


def _held(pid: int) -> set[str]:
    """The kernel objects `pid` holds an fd on: a PTY by its index (master
    and slave alike), an anon inode (epoll, inotify) per fd (they all read
    the same), else the link text (socket:[ino], pipe:[ino], a path)."""
    held = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            what = os.readlink(f"/proc/{pid}/fd/{fd}")
            if what == "/dev/ptmx":  # (a kernel before tty-index in fdinfo: one per fd)
                with open(f"/proc/{pid}/fdinfo/{fd}") as f:
                    what = next((f"pty {ln.split()[1]}" for ln in f if ln.startswith("tty-index:")),
                                f"{what} #{fd} of {pid}")
            elif what.startswith("/dev/pts/"):
                what = "pty " + what[len("/dev/pts/"):]
            elif what.startswith("anon_inode:"):
                what = f"{what} #{fd} of {pid}"
        except OSError:
            continue  # closed meanwhile
        held.add(what)
    return held


def test_no_child_holds_another_sessions_fds(tree):
    """SPEC §1/§12: a child holds its own PTY and link, nothing of a sibling
    nor the root's (else a root death gives no EOF, a PTY outlives its
    session, the lock looks held). Checked with two connections open in the
    root while workers fork: an idle one, and the one that starts them."""
    idle = socket.socket(socket.AF_UNIX)
    idle.connect(paths.socket_path(tree.d))
    starter = socket.socket(socket.AF_UNIX)
    starter.connect(paths.socket_path(tree.d))
    for s in (idle, starter):
        s.settimeout(10)
        s.sendall(b'{"op": "ping"}\n')
        assert b'"ok":true' in s.recv(4096).replace(b" ", b"")  # accepted: the root holds it
    ids = ["a", "b", "c", "d"]
    starter.sendall(b"".join(json.dumps({"op": "start", "id": sid, "prompt": "exec sleep 300",
                                         "command": "bash {{prompt_file}}"}).encode() + b"\n"
                             for sid in ids[:3]))
    tree.start(ids[3], "exec sleep 300")  # through the CLI, a third connection
    rows = wait_until(lambda: (lambda r: r if all(r.get(s, {}).get("pid") for s in ids) else None)(
        {r["id"]: r for r in ls() if r["alive"]}), 10, "every worker running")
    rows = {sid: rows[sid] for sid in ["pulse", *ids]}
    root = _held(tree.pid)
    stdio = {os.readlink(f"/proc/{tree.pid}/fd/{fd}") for fd in (0, 1, 2)} | {"/dev/null"}
    per = {sid: {"child": _held(r["child_pid"]) - stdio, "command": _held(r["pid"]) - stdio}
           for sid, r in rows.items()}
    lock = os.path.join(tree.d, ".lock")
    for sid, held in per.items():
        mine = held["child"] | held["command"]
        assert lock not in mine, (sid, sorted(mine))
        # the child shares with the root only multiprocessing's two sentinel pipes
        # (and the pulse child nothing else: its link socket to the pulse is a pair)
        shared = held["child"] & root
        assert all(o.startswith("pipe:") for o in shared) and len(shared) <= 2, (sid, sorted(shared))
        assert any(o.startswith(("pty ", "/dev/ptmx")) for o in held["child"]), (sid, sorted(held["child"]))
        for other, theirs in per.items():
            if other != sid:
                foreign = mine & (theirs["child"] | theirs["command"])
                assert not foreign, (sid, other, sorted(foreign))
    idle.close()
    starter.close()
