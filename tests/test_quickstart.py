"""The README's quick start, as a new user meets it: a clean HOME, a real
terminal (tmux on a private socket), `.venv/bin/looop`, then Ctrl-C.

The install half of the quick-start line (`python3 -m venv .venv && pip
install -e .`) needs the package index, so here `.venv` is this test run's own
virtualenv (the same install, made by `.ci/run` or by hand); the command typed
into the terminal is the README's last step, verbatim.
"""
from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
import uuid

import pytest

from conftest import BIN, tree_processes
from conftest import wait_until as _wait
from test_readme import LLM_CLIS, blocks, kill_tmux

QUICK_START = "python3 -m venv .venv && .venv/bin/pip install -q -e . && .venv/bin/looop"
TEST_COMMAND = "python3 -m venv .venv && .venv/bin/pip install -q -e '.[test]' && .venv/bin/python -m pytest -q"
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def example_session(d: str) -> tuple[list[re.Pattern], list[re.Pattern]]:
    """The README's example session as patterns (time, pids, numbers, the
    data dir abstracted): the lines up to the first `next beat` (the rest
    needs a minute), and the lines after ^C."""
    text = next(b for b in blocks() if b.lang == "text" and b.code.startswith("$ looop\n")).code
    first, after = [], []
    target = first
    for ln in text.splitlines()[1:]:
        if ln == "^C":
            target = after
            continue
        msg = re.escape(ln.split("] ", 1)[1]).replace(re.escape("~/.local/state/looop"), re.escape(d))
        target.append(re.compile(re.sub(r"\d+", r"\\d+", msg)))
    cut = next(i for i, p in enumerate(first) if "next\\ beat" in p.pattern)
    return first[:cut + 1], after


def test_quick_start_commands_are_unchanged_and_ci_runs_the_test_command():
    quick = [b.code.strip() for b in blocks() if b.lang == "sh"][:2]
    assert quick == [QUICK_START, TEST_COMMAND]
    with open(os.path.join(ROOT, ".ci", "run"), encoding="utf-8") as f:
        assert TEST_COMMAND in f.read().splitlines()


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")
def test_quick_start_in_a_clean_home_inside_tmux(tmp_path):
    home, project = tmp_path / "home", tmp_path / "project"
    home.mkdir()
    project.mkdir()
    (project / ".venv").symlink_to(sys.prefix)  # the venv the first two steps would build
    assert os.path.samefile(project / ".venv" / "bin" / "looop", BIN)
    d = str(home / ".local" / "state" / "looop")
    path = "/usr/bin:/bin"  # a new user: no venv activated, no LLM CLI
    if any(shutil.which(c, path=path) for c in LLM_CLIS):
        pytest.skip("an LLM CLI is installed in /usr/bin: looop would not pick the rules runner")
    env = {"HOME": str(home), "PATH": path, "TERM": "xterm-256color", "LANG": "C.UTF-8",
           "USER": os.environ.get("USER", "user"), "SHELL": "/bin/bash"}
    rc = tmp_path / "rc"
    rc.write_text("".join(f"export {k}={shlex.quote(v)}\n" for k, v in env.items()) + "PS1='qs$ '\n")
    sock = f"looop-qs-{uuid.uuid4().hex[:8]}"

    def tmux(*args: str) -> str:
        return subprocess.run(["tmux", "-L", sock, *args], capture_output=True, text=True,
                              timeout=10, check=True).stdout

    def pane(escapes: bool = False) -> str:
        return tmux("capture-pane", "-p", "-J", "-S", "-500", *(["-e"] if escapes else []))

    def wait_until(cond, timeout, what):
        try:
            return _wait(cond, timeout, what)
        except BaseException:
            print("--- tmux pane\n" + pane())
            raise

    try:
        # env -i: nothing of the test's environment (LOOOP_*, NO_COLOR, TMUX) leaks in
        tmux("-f", "/dev/null", "new-session", "-d", "-x", "160", "-y", "50", "-c", str(project),
             f"env -i bash --noprofile --rcfile {rc} -i")
        wait_until(lambda: "qs$" in pane(), 10, "the shell prompt")
        tmux("send-keys", QUICK_START.rsplit(" && ", 1)[1], "Enter")
        wait_until(lambda: "runner: rules" in pane(), 15, "looop to pick the rules runner")
        wait_until(lambda: "pulse up" in pane(), 15, "the pulse to come up")
        for goal in ("setup.md", "playbook-daily.md"):
            wait_until(lambda g=goal: f"seeded {d}/goals/{g}" in pane(), 5, f"goal {goal} to be seeded")
            assert os.path.isfile(os.path.join(d, "goals", goal))
        wait_until(lambda: "deciding with rules" in pane(), 15, "the first beat to ask the rules runner")
        wait_until(lambda: "✓ noop" in pane(), 15, "its decision (no goal has `run:`)")
        start_lines, stop_lines = example_session(d)
        for pat in start_lines:  # the README's example session is what a user sees
            wait_until(lambda p=pat: p.search(pane()), 5, f"README example line /{pat.pattern}/")
        rows = json.loads(subprocess.run([BIN, "ls", "--json"], capture_output=True, text=True,
                                         env=env, timeout=20, check=True).stdout)
        assert rows and rows[0]["id"] == "pulse" and rows[0]["alive"]
        assert "\x1b[" in pane(escapes=True), "a terminal gets colors"
        pids = [p.pid for p in tree_processes(d)]
        assert len(pids) >= 3  # root, pulse child, the pulse command
        began = time.monotonic()
        tmux("send-keys", "C-c")
        wait_until(lambda: "pulse stopped" in pane(), 10, "looop to stop on Ctrl-C")
        wait_until(lambda: pane().rstrip().endswith("qs$"), 5, "the prompt back")
        for pat in stop_lines:
            assert pat.search(pane()), f"README example line /{pat.pattern}/ not on screen"
        assert "^C" in pane().splitlines(), "the terminal's ^C on a line of its own, as in README"
        assert "Traceback" not in pane()
        wait_until(lambda: not tree_processes(d), 3, "every process of the tree to be gone")
        assert time.monotonic() - began < 8
    finally:
        kill_tmux(sock)
        for p in tree_processes(d):
            p.kill()
