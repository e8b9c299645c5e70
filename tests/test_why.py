"""`looop why` (SPEC §16) on real beats: after a sensor change it names the
sensor with its old and new signal — the same list the prompt's WHAT
CHANGED gave the decider — with the decision, the gate and the outcome."""
from __future__ import annotations

import json
import os

import pytest

from conftest import run
from fakes import isolated_home, read, sensor, setup_fake

from looop.pulse import why

assert isolated_home  # autouse fixture, imported so pytest finds it


@pytest.fixture
def fake(data_dir, tmp_path):
    return setup_fake(data_dir, str(tmp_path / "ctl"))


def test_why_names_the_changed_sensor_with_old_and_new_signal(data_dir, fake):
    d = data_dir
    sensor(d, "ci", 'echo \'{"signal": "green", "detail": "x"}\'')
    sensor(d, "other", 'echo \'{"signal": 1}\'')
    assert run("tick").returncode == 0
    sensor(d, "ci", 'echo \'{"signal": "red", "detail": "y"}\'')
    fake.queue({"action": "run_shell", "cmd": "echo fixing", "reason": "ci is red", "journal": "look at ci"})
    assert run("tick").returncode == 0 and len(fake.calls()) == 2
    assert '=== WHAT CHANGED ===\nsensor ci: "green" → "red"\n' in fake.prompt()
    rec = json.loads(run("why", "--json", check=True).stdout)
    assert rec["changes"] == [{"kind": "sensor", "name": "ci", "old": '"green"', "new": '"red"'}]
    assert rec["decision"]["action"] == "run_shell" and rec["decision"]["cmd"] == "echo fixing"
    assert rec["gate"]["tripwire"] == "passed" and rec["gate"]["validation"] == "ok"
    assert rec["gate"]["decide_budget"] == "2/120 runner calls this hour"
    assert rec["executed"]["summary"] == "ran: echo fixing" and rec["outcome"]["kind"] == "ok"
    last = read(d, "journal.md").splitlines()[-1]
    assert last.endswith(f" · run {rec['run']}") and "look at ci" in last
    text = run("why", rec["run"], check=True).stdout
    assert 'sensor ci: "green" → "red"' in text and "tripwire passed" in text
    assert "outcome: ok" in text
    ev = [json.loads(ln) for ln in open(os.path.join(d, "events.jsonl"))]
    assert any(e["event"] == "decided" and e["run"] == rec["run"] for e in ev)


def test_why_shows_a_refused_move_and_bad_input(data_dir, fake):
    d = data_dir
    r = run("why")
    assert r.returncode == 1 and r.stderr.strip() == "looop why: no decided beat recorded yet"
    fake.queue({"action": "run_shell", "cmd": "sudo rm -rf /", "reason": "no"})
    assert run("tick").returncode == 1
    rec = json.loads(run("why", "last", "--json", check=True).stdout)
    assert rec["gate"]["tripwire"].startswith("refused (") and rec["outcome"]["kind"] == "failed"
    assert {c["kind"] for c in rec["changes"]} <= {"playbook", "goal", "sensor", "worker", "schedule"}
    r = run("why", "../etc")
    assert r.returncode == 1 and "invalid run id" in r.stderr
    r = run("why", "20000101-000000-00000")
    assert r.returncode == 1 and "no record for run '20000101-000000-00000'" in r.stderr
    assert os.path.isdir(os.path.join(d, "runs"))


def test_diff_is_by_name_old_to_new():
    a = why.snapshot("pb", [("g1", "x")], [("s", b'"a"')], [{"id": "w", "state": "running", "alive": True,
                                                           "activity": {"state": "working"}}], [])
    b = why.snapshot("pb", [("g1", "y"), ("g2", "z")], [("s", b'"b"')],
                     [{"id": "w", "state": "exited", "exit_code": 1, "alive": False}], [("n", "due")])
    lines = [why.change_line(c) for c in why.diff(a, b)]
    assert lines == ["goal g1: edited", "goal g2: added", 'schedule n: (none) → due',
                     'sensor s: "a" → "b"', "worker w: running (working) → exited exit 1"]
