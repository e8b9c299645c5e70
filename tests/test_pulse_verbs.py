"""The pulse's verbs on their own: journal, cost, _cost, _fmt, status with no
tree, and their one-line errors."""
from __future__ import annotations

import json
import os

from conftest import run
from fakes import isolated_home

assert isolated_home  # autouse fixture, imported so pytest finds it


def test_journal_and_cost_with_nothing_yet(data_dir):
    r = run("journal")
    assert r.returncode == 0 and "no journal yet" in r.stdout
    r = run("cost")
    assert r.returncode == 0 and "no cost ledger yet" in r.stdout
    r = run("cost", "--json")
    assert json.loads(r.stdout)["total_usd"] == 0


def test_cost_report_and_summaries(data_dir):
    os.makedirs(data_dir)
    assert run("_cost", "session", "w1", "claude", "0.5").returncode == 0
    assert run("_cost", "tick", "r1", "pi", "0.01234567").returncode == 0
    assert run("_cost", "tick", "r2", "pi", "0").returncode == 0  # not recorded
    r = run("_cost", "tick", "r2", "pi", "lots")
    assert r.returncode == 1 and r.stderr.startswith("looop _cost: ") and len(r.stderr.splitlines()) == 1
    r = run("_cost", "tick", "../x", "pi", "1")
    assert r.returncode == 1 and "invalid id" in r.stderr
    r = run("cost", "all")
    assert "all time: $0.5123 over 2 calls" in r.stdout
    assert "by kind: session $0.5, tick $0.0123" in r.stdout
    s = json.loads(run("cost", "today", "--json").stdout)
    assert s["total_usd"] == 0.512346 and s["by_runner"] == {"claude": 0.5, "pi": 0.012346}


def test_fmt_turns_pi_events_into_lines_and_cost_rows(data_dir):
    os.makedirs(data_dir)
    events = [
        {"type": "agent_start"},
        {"type": "message_end", "message": {"role": "user", "content": [{"type": "text", "text": "prompt"}]}},
        {"type": "message_end", "message": {"role": "assistant", "content": [
            {"type": "text", "text": "Looking at goals."}, {"type": "toolCall", "name": "write"}],
            "usage": {"cost": {"total": 0.002}}}},
        {"type": "message_end", "message": {"role": "assistant", "content": [], "usage": {"cost": {"total": "NaN"}}}},
    ]
    stream = "\n".join(json.dumps(e) for e in events) + "\nplain line\n"
    env = {**os.environ, "LOOOP_COST_KIND": "tick", "LOOOP_COST_ID": "run9", "LOOOP_COST_RUNNER": "pi"}
    r = run("_fmt", input=stream, env=env)
    assert r.returncode == 0
    assert r.stdout.splitlines() == ["Looking at goals.", "→ write", "plain line", "cost $0.002"]
    rows = [json.loads(ln) for ln in open(os.path.join(data_dir, "cost.jsonl"))]
    assert [(x["kind"], x["id"], x["runner"], x["cost_usd"]) for x in rows] == [("tick", "run9", "pi", 0.002)]


def test_status_without_a_tree_and_journal_tail(data_dir):
    os.makedirs(data_dir)
    with open(os.path.join(data_dir, "journal.md"), "w") as f:
        f.write("".join(f"- 2026-01-01 00:0{i} move {i}\n" for i in range(5)))
    assert run("journal", "--tail", "2").stdout.splitlines() == [
        "- 2026-01-01 00:03 move 3", "- 2026-01-01 00:04 move 4"]
    s = json.loads(run("status", "--json").stdout)
    assert s["pulse"] == {"running": False, "pid": None, "interval_s": 3600.0}
    assert s["root"] == {"pid": None} and s["workers"] == [] and s["last_tick"]["at"] is None
    r = run("status")
    assert "not running — start it with `looop`" in r.stdout


def test_bad_config_is_one_clear_line(data_dir):
    os.makedirs(data_dir)
    with open(os.path.join(data_dir, "looop.json"), "w") as f:
        f.write('{"default": "rules",}')
    r = run("tick")
    assert r.returncode == 1
    assert f"config {data_dir}/looop.json does not parse" in r.stderr + r.stdout
    assert open(os.path.join(data_dir, "looop.json")).read() == '{"default": "rules",}'
    for verb in ("tick", "status", "journal", "cost", "_rules", "_fmt", "_cost"):
        r = run(verb, "--help")
        assert r.returncode == 0 and f"looop {verb}" in r.stdout
    r = run("tick", "--bogus")
    assert r.returncode == 1 and r.stderr.startswith("looop tick: ")


def test_runner_without_a_tick_command(data_dir):
    os.makedirs(data_dir)
    with open(os.path.join(data_dir, "looop.json"), "w") as f:
        json.dump({"default": "mine", "runners": {"mine": {"interactive": "x {{prompt_file}}"}}}, f)
    r = run("tick")
    assert r.returncode == 1 and "runner 'mine' has no 'tick' command" in r.stdout


def test_fmt_says_once_when_cost_cannot_be_recorded(data_dir):
    """A ledger that cannot take a row (cost.jsonl is a directory) is said
    once, on the run's own output, and the stream goes on (issue 14)."""
    os.makedirs(os.path.join(data_dir, "cost.jsonl"))
    spent = [{"type": "message_end", "message": {"role": "assistant", "content": [
        {"type": "text", "text": f"step {i}"}], "usage": {"cost": {"total": 0.01}}}} for i in range(3)]
    stream = "\n".join(json.dumps(e) for e in spent) + "\n"
    r = run("_fmt", input=stream)
    assert r.returncode == 0, r.stderr
    said = [ln for ln in (r.stdout + r.stderr).splitlines() if "not recorded" in ln]
    assert len(said) == 1, r.stdout + r.stderr
    assert "cost.jsonl" in said[0] and said[0].startswith("looop _fmt: ")
    assert [ln for ln in r.stdout.splitlines() if ln.startswith("step")] == ["step 0", "step 1", "step 2"]
    assert "$0.03" in r.stdout  # what was spent is still said
    assert os.path.isdir(os.path.join(data_dir, "cost.jsonl"))
