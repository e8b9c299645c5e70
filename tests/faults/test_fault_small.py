"""Item 11, the smaller ones: a SIGSTOPped worker shows `stopped`; temp
files of writers that died mid-write are removed at start; a malformed claim
is warned about once, not every beat. (SIGXFSZ: test_fault_log_and_modes.)"""
from __future__ import annotations

import os
import signal
import subprocess

import pytest

from conftest import Tree, wait_until
from fakes import setup_fake
from faultkit import fast_env, row

pytestmark = pytest.mark.faults


def test_a_sigstopped_worker_shows_stopped(tree):
    w = tree.start("agent", "exec cat")
    os.kill(w["pid"], signal.SIGSTOP)
    try:
        wait_until(lambda: row("agent")["state"] == "stopped", 5, "ls to say stopped")
    finally:
        os.kill(w["pid"], signal.SIGCONT)
    wait_until(lambda: row("agent")["state"] == "running", 5, "running again after SIGCONT")


def test_leftover_tmp_files_are_removed_and_a_bad_claim_warned_once(data_dir, tmp_path):
    d = data_dir
    setup_fake(d, str(tmp_path / "ctl"))
    dead = subprocess.Popen(["true"])
    dead.wait()  # its pid: a writer that is gone
    os.makedirs(os.path.join(d, "sessions", "old"))
    stale = [os.path.join(d, f".looop.json.{dead.pid}.tmp"),
             os.path.join(d, "sessions", "old", f".status.json.{dead.pid}.tmp")]
    live = os.path.join(d, f".journal.md.{os.getpid()}.tmp")  # a live writer's: kept
    for p in stale + [live]:
        with open(p, "w") as f:
            f.write("half")
    os.makedirs(os.path.join(d, "claims"))
    with open(os.path.join(d, "claims", "junk.json"), "w") as f:
        f.write("not json")
    t = Tree(d, env=fast_env())
    try:
        assert not any(os.path.exists(p) for p in stale) and os.path.exists(live)
        beats = lambda: t.output().count("next beat in")  # noqa: E731
        wait_until(lambda: beats() >= 4, 15, "four beats")
        assert t.output().count("claims/junk.json is not a claim object") == 1, t.output()
    finally:
        t.stop()
