"""`looop attach` to an ssh worker and to a Slurm worker, driven in tmux as a
person would: type into the remote shell, see its output, resize the pane
(the remote `stty size` follows), detach with Ctrl-\\ Ctrl-\\ — the worker
and its engine side keep running."""
from __future__ import annotations

import getpass
import json
import os
import shutil

import pytest

from conftest import ls, run, wait_until
from test_backend_slurm import jobs
from test_backend_ssh import HOSTS, SSH_CONFIG, marked
from test_tree_attach import Tmux

ENGINES = {
    "ssh": (bool(SSH_CONFIG and HOSTS), "no sshd (LOOOP_TEST_SSH unset: run .ci/engines.sh start)",
            {"kind": "ssh", "hosts": HOSTS[:1], "options": ["-F", SSH_CONFIG]}),
    "slurm": (bool(os.environ.get("LOOOP_TEST_SLURM")), "no Slurm (LOOOP_TEST_SLURM unset)",
              {"kind": "slurm", "partition": "debug", "time": "10"}),
}
pytestmark = pytest.mark.skipif(not shutil.which("tmux"), reason="needs tmux")

# a shell that proves where it runs: the engine sets the user (ssh) or the job id (Slurm)
SHELL = "export PS1='remote$ '; exec bash --norc --noprofile -i"


def far(d: str, engine: str) -> None:
    """Runner `far` on `engine` (skip the test when the engine is not up)."""
    up, why, backend = ENGINES[engine]
    if not up:
        pytest.skip(why)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "looop.json"), "w") as f:
        json.dump({"default": "rules",
                   "runners": {"far": {"interactive": "bash {{prompt_file}}", "tick": '"$LOOOP_BIN" _rules',
                                       "backend": backend}}}, f)


@pytest.fixture
def tmux(data_dir):
    t = Tmux()
    yield t
    t.kill()  # before data_dir's leak check: the attach clients die with it


@pytest.mark.parametrize("engine", ["ssh", "slurm"])
def test_attach_to_a_remote_worker_type_resize_detach(data_dir, tmux, engine):
    far(data_dir, engine)
    from conftest import Tree
    t = Tree(data_dir)
    try:
        run("start-session", "sh1", SHELL, "far", check=True, timeout=60)
        assert run("expect", "sh1", r"remote\$", "--timeout", "30s", timeout=45).returncode == 0
        row = next(r for r in ls() if r["id"] == "sh1")
        assert row["remote"]["engine"] == engine
        w = tmux.attach("sh1")
        probe = "echo $LOOOP_SESSION_ID-$((6*7))-$(id -un)-${SLURM_JOB_ID:-nojob}"
        # ssh: the host's test user, no job; Slurm: this user, in its job
        want = ("sh1-42-looopci-nojob" if engine == "ssh"
                else f"sh1-42-{getpass.getuser()}-{row['remote']['id']}")

        def typed() -> bool:
            # keys typed before attach puts the terminal in raw mode are flushed: type until it answers
            tmux("send-keys", "-t", w, probe, "Enter")
            try:
                tmux.wait_screen(w, want, 1.5)
                return True
            except BaseException:
                return False
        wait_until(typed, 20, f"{want!r} from the remote shell on the attached screen")
        tmux("resize-window", "-t", w, "-x", "90", "-y", "20")
        tmux("send-keys", "-t", w, "clear; stty size", "Enter")
        tmux.wait_screen(w, "20 90", 10)
        tmux("send-keys", "-t", w, "-H", "1c", "1c")  # Ctrl-\ Ctrl-\
        screen = tmux.wait_screen(w, "attach-exit=0")
        assert "[detached]" in screen
        row = next(r for r in ls() if r["id"] == "sh1")
        assert row["alive"] and row["state"] == "running", row
        if engine == "ssh":
            assert marked(data_dir, "sh1"), "the remote shell should outlive the detach"
        else:
            assert jobs(data_dir) == [row["remote"]["id"]]
        run("send", "sh1", "echo still-$((2+3))", check=True)  # the worker still answers
        assert run("expect", "sh1", "still-5", "--timeout", "10s", timeout=20).returncode == 0
        assert run("kill", "sh1", timeout=30).returncode == 0
        wait_until(lambda: not marked(data_dir) and not (engine == "slurm" and jobs(data_dir)), 10,
                   "the engine side gone after kill")
    finally:
        t.stop()
