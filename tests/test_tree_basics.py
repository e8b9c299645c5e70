"""The tree end to end: workers visible in ls and ps, teardown by signal."""
from __future__ import annotations

import re
import signal
import subprocess

import psutil
import pytest

from conftest import Tree, ls, run, wait_until


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
