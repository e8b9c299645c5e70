"""`looop attach` driven from a real terminal: tmux on a private socket
(SPEC §7): replay, typed input, resize, Ctrl-\\ Ctrl-\\, `detach`, exit code."""
from __future__ import annotations

import itertools
import json
import os
import shutil
import subprocess
import time

import pytest

from conftest import BIN, kill_tmux, ls, run, wait_until

from looop.store import sessions

pytestmark = pytest.mark.skipif(not shutil.which("tmux"), reason="needs tmux")
_n = itertools.count()


class Tmux:
    """A private tmux server (-L) whose windows run `looop attach`."""

    def __init__(self) -> None:
        self.sock = f"looop-test-{os.getpid()}-{next(_n)}"
        self.windows = 0

    def __call__(self, *args: str) -> str:
        return subprocess.run(["tmux", "-L", self.sock, "-f", "/dev/null", *args],
                              capture_output=True, text=True, timeout=10, check=True).stdout

    def attach(self, sid: str) -> str:
        """A new window running `looop attach <sid>`, then its exit code."""
        self.windows += 1
        cmd = f"{BIN} attach {sid}; echo attach-exit=$?; sleep 60"
        if self.windows == 1:
            self("new-session", "-d", "-s", "s", "-x", "100", "-y", "30", cmd)
        else:
            self("new-window", "-t", f"s:{self.windows - 1}", cmd)
        self("set-option", "-t", "s", "remain-on-exit", "on")
        return f"s:{self.windows - 1}"

    def screen(self, target: str) -> str:
        return self("capture-pane", "-p", "-t", target)

    def wait_screen(self, target: str, text: str, timeout: float = 10) -> str:
        return wait_until(lambda: text in (s := self.screen(target)) and s, timeout,
                          f"{text!r} on the tmux screen")

    def kill(self) -> None:
        kill_tmux("-L", self.sock)


@pytest.fixture
def tmux(data_dir):
    t = Tmux()
    yield t
    t.kill()  # before data_dir's leak check: the attach clients die with it


def alive_row(sid: str) -> dict | None:
    return next((r for r in ls() if r["id"] == sid and r["alive"]), None)


def test_attach_replay_input_resize_detach(tree, tmux):
    tree.start("at", "echo replay-me; cat; exit 3")
    run("expect", "at", "replay-me", "--timeout", "10s", check=True)
    w = tmux.attach("at")
    tmux.wait_screen(w, "replay-me")  # recent output replayed
    # the attached terminal's size reached the PTY at once
    wait_until(lambda: (st := sessions.read_status(tree.d, "at"))["cols"] == 100 and st["rows"] == 30,
               10, "the PTY sized like the pane")
    # typed input reaches the worker (the tty echoes it, cat repeats it)
    tmux("send-keys", "-t", w, "typed-in", "Enter")
    wait_until(lambda: run("log", "at").stdout.count("typed-in") == 2, 10, "typed input in the log")
    tmux.wait_screen(w, "typed-in")
    # resize is forwarded
    tmux("resize-window", "-t", w, "-x", "90", "-y", "20")
    wait_until(lambda: json.loads(run("shot", "at", "--json", check=True).stdout)["cols"] == 90,
               10, "the resize forwarded")
    assert json.loads(run("shot", "at", "--json", check=True).stdout)["rows"] == 20
    # Ctrl-\ Ctrl-\ detaches; the worker keeps running
    tmux("send-keys", "-t", w, "-H", "1c", "1c")
    screen = tmux.wait_screen(w, "attach-exit=0")
    assert "[detached]" in screen
    assert alive_row("at")["state"] == "running"
    # `looop detach` force-detaches another terminal
    w2 = tmux.attach("at")
    tmux.wait_screen(w2, "typed-in")
    r = run("detach", "at", check=True)
    assert r.stdout.strip() == "detached 1 terminal(s) from at"
    tmux.wait_screen(w2, "attach-exit=0")
    assert alive_row("at") is not None
    assert "detached 0 terminal(s)" in run("detach", "at", check=True).stdout
    # the session ending while attached: attach exits with its code
    w3 = tmux.attach("at")
    tmux.wait_screen(w3, "typed-in")
    tmux("send-keys", "-t", w3, "C-d")  # EOF to cat; the script exits 3
    screen = tmux.wait_screen(w3, "attach-exit=3")
    assert "[session exited with code 3]" in screen
    assert run("wait", "at", "--timeout", "5s").returncode == 3


def test_attach_refusals(tree, tmux):
    r = run("attach", "nope")
    assert r.returncode == 1 and "no session 'nope'" in r.stderr
    run("start-session", "fin", "true", "--command", "bash {{prompt_file}}", check=True)
    assert run("wait", "fin", "--timeout", "10s").returncode == 0
    r = run("attach", "fin")
    assert r.returncode == 1 and "not running" in r.stderr


def test_attach_delivers_every_byte_to_a_slow_nonblocking_stdout(tree):
    """A terminal that takes only part of a write (here: a non-blocking pipe
    read slowly) still gets every byte, in order."""
    tree.start("flood", "echo waiting; read go; head -c 2000000 /dev/zero | tr '\\0' z; echo; echo END; exec cat")
    run("expect", "flood", "waiting", "--timeout", "10s", check=True)
    r, w = os.pipe()
    os.set_blocking(w, False)
    tty_in, tty_keep = os.openpty()  # attach needs a terminal on stdin; the output side is the pipe
    p = subprocess.Popen([BIN, "attach", "flood"], stdin=tty_keep, stdout=w,
                         stderr=subprocess.PIPE)
    os.close(w)
    os.close(tty_keep)
    try:
        got = bytearray()
        deadline = time.monotonic() + 30
        while b"waiting" not in got and time.monotonic() < deadline:  # the replay: attached
            time.sleep(0.01)
            try:
                got += os.read(r, 16384)
            except BlockingIOError:
                pass
        run("send", "flood", "go", check=True)
        while b"END" not in got and time.monotonic() < deadline:
            time.sleep(0.01)  # a slow reader: the pipe fills up, writes come back short
            got += os.read(r, 16384)
        assert b"END" in got
        assert got.count(b"z") == 2_000_000
        assert p.poll() is None
        assert run("detach", "flood", check=True).stdout.startswith("detached 1 ")
        while chunk := os.read(r, 65536):
            got += chunk
        assert p.wait(10) == 0
        assert b"Traceback" not in p.stderr.read()
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        os.close(r)
        os.close(tty_in)
