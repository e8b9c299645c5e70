"""Item 1: a full data dir. The root, the pulse and every worker stay up; one
`data dir full: …` line on the pulse stream, `log_error` in ls; the pulse
beats again once there is space; the restart line names the command's code."""
from __future__ import annotations

import os
import signal
import time

import pytest

from conftest import Tree, alive, run, wait_until
from fakes import setup_fake
from faultkit import fast_env, free_bytes, row, tmpfs_data_dir  # noqa: F401 (fixture)

pytestmark = pytest.mark.faults


def test_a_full_disk_keeps_the_tree_up_and_it_beats_again(tmpfs_data_dir, tmp_path):
    d = tmpfs_data_dir
    setup_fake(d, str(tmp_path / "ctl"))
    t = Tree(d, env=fast_env())
    try:
        pulse = t.pulse_running()
        t.start("quiet", "exec sleep 600")
        t.start("flood", "exec yes")
        wait_until(lambda: free_bytes(d) == 0, 15, "the tmpfs to fill")
        wait_until(lambda: "data dir full: " in t.output(), 10, "the data dir full line")
        fl = wait_until(lambda: (r := row("flood")) and r.get("log_error") and r, 10,
                        "log_error of the flooding worker in ls")
        assert "No space left" in fl["log_error"]
        end = time.monotonic() + 3  # a while on a full disk: nothing goes down
        while time.monotonic() < end:
            assert t.proc.poll() is None, t.output()
            p, q, f = row("pulse"), row("quiet"), row("flood")
            assert p["alive"] and p["child_pid"] == pulse["child_pid"] and alive(p["pid"]), p
            assert q["alive"] and f["alive"], (q, f)
            time.sleep(0.1)
        assert "restarting" not in t.output()
        run("kill", "flood", check=True)
        for name in ("output.log", "output.log.1"):
            try:
                os.unlink(os.path.join(d, "sessions", "flood", name))
            except FileNotFoundError:
                pass
        wait_until(lambda: "data dir has space again" in t.output(), 10, "the space-again line")
        beats = t.output().count("next beat in")
        wait_until(lambda: t.output().count("next beat in") >= beats + 2, 10, "two more beats")
        assert t.output().count("data dir full: ") == 1, t.output()
        assert row("quiet")["alive"]
        print(f"full disk: tree up 3 s, pulse child {pulse['child_pid']} kept; "
              f"{t.output().count('next beat in') - beats} beats after freeing space")
    finally:
        code = t.stop(signal.SIGTERM)
    assert code == 0, t.output()


def test_the_restart_line_names_the_commands_exit_code(tree):
    p = tree.pulse_running()
    os.kill(p["pid"], signal.SIGKILL)  # the pulse command itself, not its child
    wait_until(lambda: "restarting" in tree.output(), 10, "the restart line")
    assert "pulse exited (code 137) — restarting" in tree.output(), tree.output()
