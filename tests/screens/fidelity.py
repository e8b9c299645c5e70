"""Driving one program identically in tmux and in a looop worker, and
comparing what each shows (the fidelity suite's harness; see
test_screen_fidelity.py for the programs).

Both get the same command line, environment (TERM=xterm-256color, C.UTF-8,
the test's empty HOME), working directory and size; both are driven with
the same keys (tmux send-keys / looop key, send -n). A screen is compared
once both have settled: each unchanged over two captures 250 ms apart.
"""
from __future__ import annotations

import json
import re
import shlex
import subprocess
import time
from dataclasses import dataclass, field
from typing import Callable

Screen = tuple[list[str], tuple[int, int]]

import pytest

from conftest import run

SETTLE = 0.2
LOOOP_KEYS = {"Escape": "Esc", "Enter": "Enter", "Up": "Up", "Down": "Down", "Space": "Space",
              "BSpace": "Backspace", "Tab": "Tab", "q": "q", "i": "i", "C-c": "C-c", "C-x": "C-x"}


@dataclass
class Step:
    """Type `keys` (tmux key names; "text:..." types literally), then wait
    until `until` (a regex) shows on both screens and they settle."""
    keys: tuple[str, ...] = ()
    until: str = ""


@dataclass
class Program:
    name: str
    argv: str                        # shell words, run with `exec` after the size gate
    steps: tuple[Step, ...]
    needs: str = ""                  # the binary that must exist
    volatile: str = ""               # regex: lines that may differ (clocks, pids, load)
    cursor: bool = True              # compare the cursor too
    setup: Callable[[str], None] | None = None  # prepares the shared cwd
    notes: str = ""


@dataclass
class Result:
    lines: int = 0
    same: int = 0
    compared: int = 0
    diffs: list[str] = field(default_factory=list)
    cursor_same: bool = True


class Tmux:
    def __init__(self, sock: str):
        self.sock, self.conf = sock, "/dev/null"

    def __call__(self, *args: str) -> str:
        return subprocess.run(["tmux", "-L", self.sock, "-f", self.conf, *args], capture_output=True,
                              text=True, timeout=10, check=True).stdout

    def start(self, cols: int, rows: int, cmd: str, conf: str) -> None:
        """Options come from a config file, before the pane exists: set
        after it, they resize the window under the starting program."""
        with open(conf, "w") as f:
            f.write(f"set -g status off\nset -g remain-on-exit on\nset -g default-size {cols}x{rows}\n"
                    "set -g default-terminal xterm-256color\nset -g escape-time 10\n")
        self.conf = conf
        self("new-session", "-d", "-s", "p", "-x", str(cols), "-y", str(rows), cmd)

    def screen(self) -> tuple[list[str], tuple[int, int]]:
        text = plain(self("capture-pane", "-p", "-e", "-t", "p"))
        x, y = self("display-message", "-p", "-t", "p", "#{cursor_x} #{cursor_y}").split()
        return text.split("\n"), (int(x), int(y))

    def keys(self, keys: tuple[str, ...]) -> None:
        for k in keys:
            if k.startswith("text:"):
                self("send-keys", "-t", "p", "-l", k[5:])
            else:
                self("send-keys", "-t", "p", k)

    def kill(self) -> None:
        from conftest import kill_tmux
        kill_tmux("-L", self.sock)


_SGR = re.compile(r"\x1b\[[0-9;:]*m")
# DEC special graphics, as tmux draws them: capture-pane -p prints the raw
# letters of line-drawing cells; -e marks them with SO … SI
_ACS = dict(zip("`abcdefghijklmnopqrstuvwxyz{|}~",
                "◆▒␉␌␍␊°±␤␋┘┐┌└┼⎺⎻─⎼⎽├┤┴┬│≤≥π≠£·"))


def plain(captured: str) -> str:
    """`capture-pane -p -e` text → what the pane shows: SGR dropped, the
    line-drawing cells translated."""
    out, acs = [], False
    for part in re.split(r"(\x0e|\x0f)", _SGR.sub("", captured)):
        if part == "\x0e":
            acs = True
        elif part == "\x0f":
            acs = False
        else:
            out.append("".join(_ACS.get(c, c) for c in part) if acs else part)
    return "".join(out)


def looop_screen(sid: str) -> tuple[list[str], tuple[int, int]]:
    r = run("shot", sid, "--json", check=True)
    snap = json.loads(r.stdout)
    return snap["lines"], (snap["cursor"]["x"], snap["cursor"]["y"])


def looop_keys(sid: str, keys: tuple[str, ...]) -> None:
    """The same keys through `looop send -n` / `looop key` (a run of named
    keys in one call)."""
    named: list[str] = []
    for k in keys + ("text:",):
        if k.startswith("text:"):
            if named:
                run("key", sid, *named, check=True)
                named = []
            if k[5:]:
                run("send", sid, "-n", k[5:], check=True)
        else:
            named.append(LOOOP_KEYS.get(k, k))


def norm(lines: list[str], rows: int) -> list[str]:
    out = [ln.rstrip(" ") for ln in lines[:rows]]
    return out + [""] * (rows - len(out))


def settle_both(tmux: "Tmux", d: str, sid: str, until: str, rows: int, timeout: float
                ) -> tuple[Screen, Screen]:
    """Both screens once `until` shows on each and each is unchanged over
    two captures SETTLE apart. looop's is polled over the control socket
    (no process per poll); the one compared is then read with `looop shot`."""
    from looop.tree import control
    rx = re.compile(until, re.M) if until else None
    deadline = time.monotonic() + timeout
    prev: tuple | None = None

    def ours() -> Screen:
        snap = control.call(d, "shot", id=sid)["screen"]
        return norm(snap["lines"], rows), (snap["cursor"]["x"], snap["cursor"]["y"])

    while True:
        a = tmux.screen()
        now = ((norm(a[0], rows), a[1]), ours())
        ready = rx is None or all(rx.search("\n".join(x[0])) for x in now)
        if ready and now == prev:
            b = looop_screen(sid)
            return now[0], (norm(b[0], rows), b[1])
        if time.monotonic() >= deadline:
            shown = "\n---\n".join("\n".join(x[0]) for x in now)
            pytest.fail(f"{until!r} never settled on both screens within {timeout}s "
                        f"(tmux, then looop):\n{shown}")
        prev = now
        time.sleep(SETTLE)


def command(prog: Program, cols: int, rows: int, home: str) -> str:
    """The shell command both terminals run: wait for the size, then exec."""
    env = (f"env -u TMUX -u LOOOP_SESSION_ID -u LINES -u COLUMNS TERM=xterm-256color LANG=C.UTF-8 LC_ALL=C.UTF-8 "
           f"HOME={shlex.quote(home)} ")
    return (f"while [ \"$(stty size)\" != '{rows} {cols}' ]; do sleep 0.02; done; "
            f"exec {env}{prog.argv}")


def compare(a: tuple[list[str], tuple[int, int]], b: tuple[list[str], tuple[int, int]],
            prog: Program) -> Result:
    vol = re.compile(prog.volatile) if prog.volatile else None
    r = Result(lines=len(a[0]))
    for y, (la, lb) in enumerate(zip(a[0], b[0])):
        if vol is not None and (vol.search(la) or vol.search(lb)):
            continue
        r.compared += 1
        if la == lb:
            r.same += 1
        else:
            r.diffs.append(f"row {y}: tmux {la!r}\n        looop {lb!r}")
    r.cursor_same = a[1] == b[1] or not prog.cursor
    return r
