"""The rough edges a new user hits (issue 14), each through real processes:
the pulse stream, attach without a terminal, --version, bad-input messages,
and the smaller verb details."""
from __future__ import annotations

import json
import os
import signal

import pytest

from conftest import Tree, ls, run, wait_until
from fakes import bump_world, force_decide, isolated_home, read, setup_fake

assert isolated_home  # autouse fixture, imported so pytest finds it


def fast_env(**extra: str) -> dict[str, str]:
    return {**os.environ, "LOOOP_INTERVAL": "0.2", **extra}


def pulse_log() -> str:
    return run("log", "pulse").stdout


def test_the_pulse_stream_says_when_a_worker_starts_and_exits(data_dir, tmp_path):
    d = data_dir
    fake = setup_fake(d, str(tmp_path / "ctl"))
    t = Tree(d, env=fast_env())
    try:
        fake.queue({"action": "start_worker", "id": "w1", "prompt": "echo hi; sleep 0.3; exit 3"})
        bump_world(d)
        wait_until(lambda: "worker w1 exited (exit 3)" in pulse_log(), 20, "`log pulse` to say w1 exited")
        text = pulse_log()
        assert "worker w1 started (pid " in text
        assert text.index("worker w1 started") < text.index("worker w1 exited")
        out = t.output()
        assert out.count("worker w1 exited") == 1  # the root's terminal: once, through the pulse
    finally:
        assert t.stop(signal.SIGTERM) == 0


def test_a_notification_with_its_own_journal_keeps_its_message(data_dir, tmp_path):
    d = data_dir
    fake = setup_fake(d, str(tmp_path / "ctl"))
    fake.queue({"action": "send_notification", "message": "the build is red", "journal": "told the human"})
    force_decide(d)
    r = run("tick")
    assert r.returncode == 0, r.stderr
    assert "the build is red" in read(d, "journal.md") and "told the human" in read(d, "journal.md")
    decided = [json.loads(ln) for ln in open(os.path.join(d, "events.jsonl")) if '"decided"' in ln]
    assert "the build is red" in decided[-1]["journal"]
