"""Session verbs round-trip against real interactive programs in real PTYs:
send, key, expect, wait, wait-idle, shot, resize, restart, kill, flag,
unflag, log, watch, prune (SPEC §7). One tree for the module."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time

import psutil
import pytest

from conftest import BIN, alive, ls, run, wait_gone, wait_until

from looop.store import sessions

BASH = "PS1='$ ' exec bash --norc --noprofile -i"
# a tiny REPL: reads a line, evaluates it, prints the result
REPL = f"""exec {sys.executable} -u -c '
import sys
while True:
    sys.stdout.write("py> "); sys.stdout.flush()
    line = sys.stdin.readline()
    if not line:
        break
    try:
        print(repr(eval(line)))
    except Exception as e:
        print("error:", type(e).__name__)
'"""


@pytest.fixture
def t(module_tree):
    return module_tree


def ok(*args: str, timeout: float = 30) -> str:
    return run(*args, check=True, timeout=timeout).stdout


def row(sid: str) -> dict:
    return next(r for r in ls() if r["id"] == sid)


def test_bash_send_expect_key_wait(t):
    t.start("sh", BASH)
    assert ok("expect", "sh", r"^\$ $", "--screen", "--timeout", "10s").strip() == "$"
    ok("send", "sh", "echo $((6*7))")
    assert ok("expect", "sh", r"^42$", "--timeout", "10s").strip() == "42"
    # key: C-c interrupts a foreground sleep
    ok("send", "sh", "sleep 77")
    sleeper = wait_until(lambda: next((p for p in psutil.Process(row("sh")["pid"]).children()
                                       if p.name() == "sleep"), None), 10, "sleep 77")
    ok("key", "sh", "C-c")
    wait_gone([sleeper.pid], 5)
    # key: history (Up) + Enter runs the last command again
    ok("send", "sh", "echo hist-$((20+1))")
    ok("expect", "sh", "hist-21", "--timeout", "10s")
    end = sessions.log_end(t.d, "sh")
    ok("key", "sh", "Up", "Enter")
    r = json.loads(ok("expect", "sh", r"^hist-(\d+)$", "--since", str(end), "--json",
                      "--timeout", "10s"))
    assert r["groups"] == ["21"] and r["offset"] > end
    # expect --from-now ignores what is already there
    r = run("expect", "sh", "hist-21", "--from-now", "--timeout", "300ms")
    assert r.returncode == 124 and "no match" in r.stderr
    # wait: the session's exit code
    r = run("wait", "sh", "--timeout", "200ms")
    assert r.returncode == 124 and r.stderr.startswith("looop wait: ")
    ok("send", "sh", "exit 3")
    assert run("wait", "sh", "--timeout", "10s").returncode == 3
    assert row("sh")["state"] == "exited" and row("sh")["exit_code"] == 3
    # a finished session: send refuses, expect on old output still works
    r = run("send", "sh", "echo late")
    assert r.returncode == 1 and "not running" in r.stderr
    assert ok("expect", "sh", "hist-21").strip() == "hist-21"
    r = run("expect", "sh", "never-printed", "--timeout", "5s")
    assert r.returncode == 1 and "ended without a match" in r.stderr


def test_python_repl_round_trip_and_send_json(t):
    t.start("repl", REPL)
    ok("expect", "repl", r"py> $", "--screen", "--timeout", "10s")
    reply = json.loads(ok("send", "repl", "6*7", "--json"))
    assert reply["ok"] is True
    ok("expect", "repl", "^42$", "--timeout", "10s")
    ok("send", "repl", "-n", "'a'", "+")  # -n: no Enter yet
    ok("send", "repl", "-n", " 'b'")
    time.sleep(0.2)  # (give a wrong Enter time to show; there must be none)
    assert "'ab'" not in run("log", "repl").stdout
    ok("key", "repl", "Enter")
    ok("expect", "repl", "^'ab'$", "--timeout", "10s")
    ok("key", "repl", "C-d")  # EOF: the REPL ends by itself
    assert run("wait", "repl", "--timeout", "10s").returncode == 0


def test_wait_idle(t):
    t.start("ticker", "for i in $(seq 8); do echo tick $i; sleep 0.15; done; exec cat")
    t0 = time.monotonic()
    ok("wait-idle", "ticker", "--settle", "500ms", "--timeout", "20s")
    assert "tick 8" in ok("log", "ticker")
    assert time.monotonic() - t0 >= 0.5
    t.start("chatty", "while :; do echo chat; sleep 0.05; done")
    t0 = time.monotonic()
    r = run("wait-idle", "chatty", "--settle", "1s", "--timeout", "700ms")
    assert r.returncode == 124 and "still producing output" in r.stderr
    assert 0.6 < time.monotonic() - t0 < 5
    ok("kill", "chatty")
    ok("kill", "ticker")


def test_a_timeout_given_in_bare_seconds_is_said_with_its_unit(t):
    """`--timeout 1` is one second; the message said `within 1`."""
    t.start("slow", "exec sleep 60")
    r = run("expect", "slow", "never", "--timeout", "1")
    assert (r.returncode, r.stderr) == (124, "looop expect: no match for 'never' within 1s\n")
    r = run("wait", "slow", "--timeout", "0.5")
    assert (r.returncode, r.stderr) == (124, "looop wait: slow still running after 0.5s\n")
    r = run("wait", "slow", "--timeout", "500ms")
    assert (r.returncode, r.stderr) == (124, "looop wait: slow still running after 500ms\n")
    ok("kill", "slow")


def test_ls_all_on_a_narrow_terminal_keeps_the_data_dir_column(t):
    """`ls --all` cuts its lines at the terminal's width; the DATA DIR
    column, the only one that says which profile a row is, came after CMD
    and was the first thing cut by any long command."""
    from looop.cli.ls import table
    from looop.registry import rows
    t.start("longcmd", "sleep 60; : " + "x" * 200)
    wait_until(lambda: any(r["id"] == "longcmd" and r["alive"] for r in ls()), 10, "longcmd live")
    lines = table(rows(t.d, everywhere=True), 160).splitlines()
    assert "DATA DIR" in lines[0] and lines[0].index("DATA DIR") < lines[0].index("CMD"), lines[0]
    ours = [ln.split()[0] for ln in lines[1:] if t.d + " " in ln]  # other profiles may be live too
    assert "pulse" in ours and "longcmd" in ours, lines
    ok("kill", "longcmd")


def test_shot_plain_ansi_json_trim(t):
    t.start("paint", r"printf '\e[31mRED\e[0m plain   \n\e[44m  \e[0m blue bg\nsecond\n'; exec cat")
    ok("expect", "paint", "second", "--timeout", "10s")
    plain = ok("shot", "paint")
    assert plain.split("\n")[0].startswith("RED plain") and len(plain.split("\n")[0]) == 120
    assert ok("shot", "paint", "--format", "plain") == plain
    trimmed = ok("shot", "paint", "--trim")
    assert trimmed == "RED plain\n   blue bg\nsecond\n"
    ansi = ok("shot", "paint", "--ansi")
    assert "\x1b[31mRED\x1b[0m" in ansi
    at = ok("shot", "paint", "--ansi", "--trim")
    lines = at.rstrip("\n").split("\n")
    assert len(lines) == 3
    assert lines[0] == "\x1b[31mRED\x1b[0m plain"  # trailing blanks gone
    assert "\x1b[44m  \x1b[0m" in lines[1]  # colored blanks stay
    snap = json.loads(ok("shot", "paint", "--json"))
    assert (snap["cols"], snap["rows"]) == (120, 40)
    assert snap["cursor"] == {"x": 0, "y": 3}
    assert len(snap["lines"]) == 40 and len(snap["cells"]) == 40
    assert snap["cells"][0][0]["text"] == "RED" and snap["cells"][0][0]["fg"] == "red"
    tj = json.loads(ok("shot", "paint", "--json", "--trim"))
    assert tj["lines"] == ["RED plain", "   blue bg", "second"] and len(tj["cells"]) == 3
    ok("kill", "paint")
    # a finished session is replayed at the size it ran at (SPEC §15), not 80x24
    fin = json.loads(ok("shot", "paint", "--json"))
    assert (fin["cols"], fin["rows"]) == (120, 40) and fin["lines"][0].startswith("RED plain")


def test_resize_reaches_the_program(t):
    t.start("sized", "trap 'echo size=$(stty size)' WINCH; echo ready; while :; do sleep 0.05; done")
    ok("expect", "sized", "ready", "--timeout", "10s")
    ok("resize", "sized", "100x30")
    ok("expect", "sized", "size=30 100", "--timeout", "10s")
    snap = json.loads(ok("shot", "sized", "--json"))
    assert (snap["cols"], snap["rows"]) == (100, 30)
    st = sessions.read_status(t.d, "sized")
    assert (st["cols"], st["rows"]) == (100, 30)
    r = run("resize", "sized", "100by30")
    assert r.returncode == 1 and "COLSxROWS" in r.stderr
    r = run("resize", "sized", "0x5")
    assert r.returncode == 1 and "out of range" in r.stderr
    ok("kill", "sized")


def test_restart_live_session(t):
    t.start("cat1", "echo gen-$$; exec cat")
    ok("expect", "cat1", "gen-", "--timeout", "10s")
    old = row("cat1")
    out = ok("restart", "cat1")
    new = wait_until(lambda: (r := row("cat1"))["pid"] != old["pid"] and r["alive"] and r, 10)
    assert f"pid {new['pid']}" in out
    assert new["child_pid"] == old["child_pid"]  # same session, same supervising child
    wait_gone([old["pid"]], 3)
    assert sessions.log_end(t.d, "cat1") > 0
    wait_until(lambda: ok("log", "cat1").count("gen-") == 2, 10, "second generation output")
    ok("send", "cat1", "after-restart")
    # expect right after a send starts past its echo (SPEC §15): cat's copy of the line
    ok("expect", "cat1", "^after-restart$", "--timeout", "10s")
    assert "after-restart\nafter-restart" in ok("log", "cat1")  # the echo, then cat's copy
    with open(os.path.join(t.d, "events.jsonl")) as f:
        evs = [json.loads(ln) for ln in f if '"cat1"' in ln]
    starts = [e for e in evs if e["event"] == "worker_started"]
    assert [e["restart"] for e in starts] == [False, True]
    assert [e["pid"] for e in starts] == [old["pid"], new["pid"]]
    ok("kill", "cat1")


def test_a_restarted_session_does_not_inherit_the_old_stop_deadline(t):
    """A restart walks the stop ladder for the old command only: the new one
    must still run once the old grace (LOOOP_SHUTDOWN_GRACE=1 here) and the
    final wait have passed (guards the ladder's reset, tree/stopping.py)."""
    from looop.tree.stopping import FINAL
    t.start("gen2", "echo gen-$$; exec cat")
    ok("expect", "gen2", "gen-", "--timeout", "10s")
    old = row("gen2")
    ok("restart", "gen2")
    new = wait_until(lambda: (r := row("gen2"))["pid"] != old["pid"] and r["alive"] and r, 10)
    watch_until = time.monotonic() + 1 + FINAL + 1.0  # past both old deadlines
    while time.monotonic() < watch_until:
        assert alive(new["pid"]), f"the restarted command died: {row('gen2')}"
        time.sleep(0.05)
    assert row("gen2")["state"] == "running"
    ok("kill", "gen2")


def test_restart_finished_session_appends_to_its_log(t):
    run("start-session", "once", "echo run-$$-done", "--command", "bash {{prompt_file}}", check=True)
    assert run("wait", "once", "--timeout", "10s").returncode == 0
    end1 = sessions.log_end(t.d, "once")
    first = sessions.read_status(t.d, "once")
    ok("restart", "once")
    assert run("wait", "once", "--timeout", "10s").returncode == 0
    text = ok("log", "once")
    assert text.count("-done") == 2
    assert sessions.log_end(t.d, "once") > end1
    data, _ = sessions.read_log(t.d, "once", end1)
    assert b"-done" in data  # offsets kept their meaning across the restart
    second = sessions.read_status(t.d, "once")
    assert second["pid"] != first["pid"] and second["state"] == "exited"


def test_kill_flag_unflag(t):
    t.start("flg", "exec cat")
    ok("flag", "flg", "which", "branch?")
    r = row("flg")
    assert (r["flagged"], r["note"]) == (True, "which branch?")
    ps = subprocess.run(["ps", "-eww", "-o", "args"], capture_output=True, text=True).stdout
    assert re.search(rf"looop: worker flg \[running ⚑ asking \d+\] {re.escape(t.d)}", ps), ps
    assert sessions.read_status(t.d, "flg")["note"] == "which branch?"
    assert "⚑ which branch?" in ok("ls")
    ok("unflag", "looop-flg")  # a legacy `looop-` prefix names the same session
    assert ok("log", "looop-flg") == ok("log", "flg")
    r = row("flg")
    assert (r["flagged"], r["note"]) == (False, None)
    ok("flag", "flg")
    assert row("flg")["flagged"] is True and row("flg")["note"] is None
    pid = row("flg")["pid"]
    assert ok("kill", "flg").strip() == "flg killed"
    assert not alive(pid)
    r = row("flg")
    assert (r["state"], r["alive"], r["exit_code"]) == ("killed", False, 129)
    assert run("wait", "flg").returncode == 129
    r = run("kill", "flg")
    assert r.returncode == 1 and "not running" in r.stderr
    r = run("flag", "flg")
    assert r.returncode == 1 and "not running" in r.stderr


def test_log_variants(t):
    run("start-session", "logs", "x", "--command",
        r"printf 'alpha 1\n\e[32mbeta\e[0m 2\ngamma 3\n'; : {{prompt_file}}", check=True)
    assert run("wait", "logs", "--timeout", "10s").returncode == 0
    assert ok("log", "logs") == "alpha 1\nbeta 2\ngamma 3\n"
    raw = subprocess.run([BIN, "log", "logs", "--raw"], capture_output=True).stdout
    assert raw == b"alpha 1\r\n\x1b[32mbeta\x1b[0m 2\r\ngamma 3\r\n"
    assert ok("log", "logs", "--tail", "1") == "gamma 3\n"
    assert ok("log", "logs", "--tail", "2", "--grep", "^[ag]") == "alpha 1\ngamma 3\n"
    j = json.loads(ok("log", "logs", "--json"))
    assert j == {"text": "alpha 1\nbeta 2\ngamma 3\n", "offset": len(raw), "done": True}
    since = raw.index(b"gamma")
    assert ok("log", "logs", "--since", str(since)) == "gamma 3\n"
    j = json.loads(ok("log", "logs", "--since", str(len(raw)), "--json"))
    assert j == {"text": "", "offset": len(raw), "done": True}
    r = run("log", "logs", "--grep", "(")
    assert r.returncode == 1 and r.stderr.startswith("looop log: bad --grep")
    assert "pulse up" in ok("log", "pulse")  # the pulse is observable like a session


def test_log_follow_and_watch_until_exit(t):
    run("start-session", "slow", "x", "--command",
        r"for i in 1 2 3; do printf 'step %s \e[1mbold\e[0m\n' $i; sleep 0.2; done; : {{prompt_file}}",
        check=True)
    f = subprocess.Popen([BIN, "log", "slow", "-f"], stdout=subprocess.PIPE)
    w = subprocess.Popen([BIN, "watch", "slow"], stdout=subprocess.PIPE)
    out_f, _ = f.communicate(timeout=15)
    out_w, _ = w.communicate(timeout=15)
    assert f.returncode == 0 and w.returncode == 0
    assert out_f == b"step 1 bold\nstep 2 bold\nstep 3 bold\n"
    assert out_w == b"".join(b"step %d \x1b[1mbold\x1b[0m\r\n" % i for i in (1, 2, 3))


def test_prune_keeps_live_sessions(t):
    run("start-session", "gone1", "true", "--command", "bash {{prompt_file}}", check=True)
    assert run("wait", "gone1", "--timeout", "10s").returncode == 0
    t.start("keep1", "exec cat")
    out = ok("prune")
    assert "gone1" in out and "keep1" not in out
    ids = {r["id"] for r in ls()}
    assert "keep1" in ids and "gone1" not in ids and "pulse" in ids
    assert not os.path.exists(os.path.join(t.d, "sessions", "gone1"))
    ok("kill", "keep1")


def test_pid_reuse_a_stale_status_is_not_a_live_session(t):
    """status.json says running with a child pid that now belongs to someone
    else (here: this test process): never taken for the session."""
    d = os.path.join(t.d, "sessions", "ghost")
    os.makedirs(d)
    sessions.write_status(t.d, "ghost", {"id": "ghost", "state": "running", "pid": os.getpid(),
                                         "child_pid": os.getpid(), "exit_code": None})
    sessions.write_meta(t.d, "ghost", {"id": "ghost", "role": "worker", "command": "x"})
    r = row("ghost")
    assert (r["alive"], r["state"], r["pid"]) == (False, "dead", None)
    t0 = time.monotonic()
    r = run("wait", "ghost", "--timeout", "10s")
    assert r.returncode == 1 and "without an exit code" in r.stderr
    assert time.monotonic() - t0 < 5
    r = run("kill", "ghost")
    assert r.returncode == 1 and "not running" in r.stderr
    assert alive(os.getpid())


def test_ls_watch_redraws_until_interrupted(t):
    import signal
    # SIGINT at its default even if this test runs as a background job (which
    # inherits SIGINT ignored, and Python then keeps ignoring it)
    p = subprocess.Popen([BIN, "ls", "--watch", "--interval", "100ms"], stdout=subprocess.PIPE,
                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    got = b""
    try:
        os.set_blocking(p.stdout.fileno(), False)
        deadline = time.monotonic() + 10
        while got.count(b"\npulse ") < 3 and time.monotonic() < deadline:
            chunk = p.stdout.read()
            got += chunk or b""
            if not chunk:
                time.sleep(0.02)
        assert got.count(b"\npulse ") >= 3  # three frames, each with its header and the pulse
        p.send_signal(signal.SIGINT)
        os.set_blocking(p.stdout.fileno(), True)
        p.communicate(timeout=10)  # (keep draining: a full pipe would block its exit)
        assert p.returncode == 0
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


def test_prune_without_a_tree_and_watch_pulse(data_dir):
    from conftest import Tree
    t = Tree(data_dir)
    t.start("w", "exec cat")
    w = subprocess.Popen([BIN, "watch", "pulse"], stdout=subprocess.PIPE)
    shot = run("shot", "pulse", "--trim", check=True).stdout.splitlines()
    # the pulse's lines end in a bare LF (ONLCR off): still one line per row
    assert shot and all(ln.startswith("[") for ln in shot), shot
    assert t.stop() == 0
    out, _ = w.communicate(timeout=10)  # `watch pulse` ends when the pulse does
    assert w.returncode == 0 and b"pulse up" in out
    r = run("prune", check=True)
    assert r.stdout.strip() == "pruned 1 sessions (w)"
    assert [x["id"] for x in ls()] == ["pulse"]
