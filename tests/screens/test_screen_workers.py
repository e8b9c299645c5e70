"""Screens of real workers in real PTYs, on both engines (issue 10): the
crash sequences can't hurt a worker, vim survives attach and resize,
terminal queries are answered, keys follow DECCKM, `send` brackets pastes,
finished sessions replay at their size, bad sizes and lost logs get one line."""
from __future__ import annotations

import json
import os
import shutil
import signal
import sys

import pytest

from conftest import Tree, assert_no_leftovers, ls, run, use_profile, wait_until

from looop.screen import ghostty
from looop.store import sessions

PROBE = r'''
import os, sys, tty
tty.setraw(0)
what = sys.argv[1]
if what == "cpr":
    os.write(1, b"abc\x1b[6n")
    buf = b""
    while not buf.endswith(b"R"):
        buf += os.read(0, 64)
    os.write(1, b"\r\nCPR " + buf[2:] + b"\r\n")
else:
    os.write(1, b"\x1b[?" + what.encode() + b"READY\r\n")
    buf = b""
    while not buf.endswith(b"."):
        buf += os.read(0, 1024)
    os.write(1, b"GOT " + repr(buf).encode() + b"\r\n")
os.read(0, 1)
'''


@pytest.fixture(scope="module", params=["ghostty", "pyte"])
def t(request, tmp_path_factory):
    if request.param == "ghostty" and not ghostty.available():
        pytest.skip("libghostty-vt (pyghostty) not installed here")
    base = tmp_path_factory.mktemp(request.param)
    d = str(base / "data")
    with pytest.MonkeyPatch.context() as mp:
        use_profile(mp, d)
        mp.setenv("LOOOP_SCREEN_ENGINE", request.param)
        probe = base / "probe.py"
        probe.write_text(PROBE)
        tree = Tree(d)
        tree.engine, tree.probe = request.param, f"exec {sys.executable} {probe}"
        yield tree
        if tree.proc.poll() is None:
            tree.stop(signal.SIGTERM)
        else:
            tree.out.close()
    assert_no_leftovers(d)


def ok(*args: str, timeout: float = 30) -> str:
    return run(*args, timeout=timeout, check=True).stdout


def shot(sid: str) -> dict:
    return json.loads(ok("shot", sid, "--json"))


def live(sid: str) -> bool:
    return any(r["id"] == sid and r["alive"] for r in ls())


CRASH = r"\e[?4m\e[1;5A\e[?6n\e[?1049r\e[2;3;4H\e[?1;2K\e[1;2c\e[?1;2r\ePq#0\e\\\e_Gx\e\\"


def test_crash_sequences_leave_the_worker_and_its_screen_working(t):
    t.start("crash", f"printf '{CRASH}\\e[H\\e[2Jbefore\\n'; read x; echo after-$x; exec cat")
    ok("expect", "crash", "before", "--screen", "--timeout", "10s")
    snap = shot("crash")
    assert snap["engine"] == t.engine and isinstance(snap["errors"], int)
    assert snap["lines"][0].startswith("before")
    ok("send", "crash", "one")
    ok("expect", "crash", "after-one", "--screen", "--timeout", "10s")  # later output still renders
    for _ in range(3):  # shots don't re-raise, don't wedge
        assert "after-one" in ok("shot", "crash")
    assert live("crash")
    ok("kill", "crash")


def test_queries_are_answered_from_the_live_screen(t):
    t.start("cpr", f"{t.probe} cpr")
    ok("expect", "cpr", r"CPR \d+;\d+R", "--timeout", "10s")
    assert "CPR 1;4R" in ok("log", "cpr")  # after "abc": row 1, column 4
    ok("kill", "cpr")


@pytest.mark.parametrize("mode,up", [("1h", b"\x1bOA"), ("1l", b"\x1b[A")])
def test_cursor_keys_follow_decckm(t, mode, up):
    sid = "keys" + mode[0] + mode[1]
    t.start(sid, f"{t.probe} {mode}")
    ok("expect", sid, "READY", "--timeout", "10s")
    ok("key", sid, "Up", "i", "Left", ".")
    left = up[:-1] + b"D"
    ok("expect", sid, "GOT", "--timeout", "10s")
    assert f"GOT {(up + b'i' + left + b'.')!r}" in ok("log", sid)
    ok("kill", sid)


@pytest.mark.parametrize("mode,paste", [("2004h", True), ("2004l", False)])
def test_send_brackets_multiline_text_when_asked(t, mode, paste):
    sid = "paste" + mode[-1]
    t.start(sid, f"{t.probe} {mode}")
    ok("expect", sid, "READY", "--timeout", "10s")
    ok("send", sid, "-n", "one\ntwo")
    ok("send", sid, "-n", "three")  # one line: never bracketed
    ok("key", sid, ".")
    ok("expect", sid, "GOT", "--timeout", "10s")
    body = b"\x1b[200~one\ntwo\x1b[201~" if paste else b"one\ntwo"
    assert f"GOT {(body + b'three.')!r}" in ok("log", sid)
    ok("kill", sid)


def test_bad_sizes_are_refused_and_nothing_is_resized(t):
    t.start("sz", "echo ready; exec cat")
    ok("expect", "sz", "ready", "--timeout", "10s")
    for bad in ("1x1", "10000x10000", "0x5"):
        r = run("resize", "sz", bad)
        assert r.returncode == 1 and r.stderr.startswith("looop resize: ") and "out of range" in r.stderr
        assert len(r.stderr.strip().splitlines()) == 1
    st = sessions.read_status(t.d, "sz")
    assert (st["cols"], st["rows"]) == (120, 40)
    assert (shot("sz")["cols"], shot("sz")["rows"]) == (120, 40)
    ok("kill", "sz")


def test_finished_session_replays_at_its_size_and_a_lost_log_is_one_line(t):
    t.start("fin", "printf 'wide\\n'; read x; echo done-$x")
    ok("expect", "fin", "wide", "--timeout", "10s")
    ok("resize", "fin", "100x30")
    ok("send", "fin", "go")
    assert run("wait", "fin", "--timeout", "10s").returncode == 0
    snap = shot("fin")
    assert (snap["cols"], snap["rows"]) == (100, 30) and snap["engine"] == t.engine
    assert any(ln.startswith("done-go") for ln in snap["lines"])
    os.unlink(sessions.log_path(t.d, "fin"))
    r = run("shot", "fin")
    assert r.returncode == 1 and r.stderr.startswith("looop shot: ") and "no recorded output" in r.stderr
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_a_live_worker_whose_log_was_deleted_still_has_its_screen(t):
    t.start("nolog", "echo first; read x; echo second-$x; exec cat")
    ok("expect", "nolog", "first", "--timeout", "10s")
    os.unlink(sessions.log_path(t.d, "nolog"))
    ok("send", "nolog", "x")
    wait_until(lambda: "second-x" in ok("shot", "nolog"), 10, "the screen without a log")
    assert live("nolog")
    ok("kill", "nolog")


@pytest.mark.skipif(not shutil.which("vim"), reason="needs vim")
def test_vim_survives_resize_and_attach(t):
    """Issue 10: attaching to a vim worker killed it (the emulator raised
    inside the resize, before the PTY was resized)."""
    t.start("vim", "exec vim -u NONE -N -i NONE +'set noswapfile'")
    wait_until(lambda: "~" in ok("shot", "vim"), 15, "vim's screen")
    ok("resize", "vim", "90x20")
    wait_until(lambda: (s := shot("vim"))["cols"] == 90 and s["lines"][18].startswith("~"), 10,
               "vim redrawn at 90x20")
    ok("key", "vim", "i")
    ok("send", "vim", "-n", "hello from looop")
    ok("key", "vim", "Esc")
    ok("expect", "vim", "hello from looop", "--screen", "--timeout", "10s")
    if shutil.which("tmux"):
        from test_tree_attach import Tmux
        tmux = Tmux()
        try:
            w = tmux.attach("vim")
            wait_until(lambda: sessions.read_status(t.d, "vim")["cols"] == 100, 10, "attach's resize")
            tmux.wait_screen(w, "hello from looop")
            tmux("send-keys", "-t", w, "-H", "1c", "1c")
            tmux.wait_screen(w, "attach-exit=0")
        finally:
            tmux.kill()
    assert live("vim") and shot("vim")["cols"] == 100
    ok("key", "vim", "Esc", ":", "q", "!", "Enter")
    assert run("wait", "vim", "--timeout", "10s").returncode == 0
    snap = shot("vim")  # vim left the alternate screen: the replay shows the shell's page again
    assert not snap["modes"]["alt_screen"] and not any("hello from looop" in ln for ln in snap["lines"])


def test_garbage_and_a_one_megabyte_line_leave_the_screen_readable(t):
    t.start("junk", "head -c 200000 /dev/urandom; printf '\\e[0m\\e(B\\ec'; "
                    "head -c 1000000 /dev/zero | tr '\\0' x; printf '\\nEND-OF-JUNK\\n'; exec cat")
    ok("expect", "junk", "END-OF-JUNK", "--timeout", "30s")
    wait_until(lambda: "END-OF-JUNK" in ok("shot", "junk"), 20, "the screen after the junk")
    snap = shot("junk")
    assert snap["engine"] == t.engine and len(snap["lines"]) == 40
    assert live("junk")
    ok("kill", "junk")
