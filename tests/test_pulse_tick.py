"""Real beats through `looop tick`: the fake runner's decisions executed,
the world hash skipping unchanged worlds, sensors under deadline and cap,
malformed decisions, a hung runner, dry runs and NDJSON output."""
from __future__ import annotations

import json
import os
import time

import psutil
import pytest

from conftest import run, wait_until
from fakes import isolated_home, force_decide, read, sensor, setup_fake

assert isolated_home  # autouse fixture, imported so pytest finds it


@pytest.fixture
def fake(data_dir, tmp_path):
    return setup_fake(data_dir, str(tmp_path / "ctl"))


def tick(*args: str, env: dict | None = None, timeout: float = 30):
    return run("tick", *args, timeout=timeout, env=None if env is None else {**os.environ, **env})


def journal_lines(d):
    return read(d, "journal.md").splitlines() if os.path.exists(os.path.join(d, "journal.md")) else []


def test_file_actions_through_real_beats(data_dir, fake):
    d = data_dir
    steps = [
        ({"action": "noop", "reason": "quiet", "journal": "nothing to do"}, "nothing to do"),
        ({"action": "write_goal", "id": "ship", "body": "ship it"}, "wrote goal ship"),
        ({"action": "write_sensor", "name": "gh", "script": 'echo \'{"signal": 1}\''}, "wrote sensor gh"),
        ({"action": "write_playbook", "body": "# v1"}, "rewrote the PLAYBOOK"),
        ({"action": "write_playbook", "body": "# v2", "journal": "playbook v2"}, "playbook v2"),
        ({"action": "run_shell", "cmd": "echo $LOOOP_DATA_DIR > reports/where.txt", "reason": "r"},
         "ran: echo"),
        ({"action": "archive_goal", "id": "ship"}, "archived goal ship"),
        ({"action": "send_notification", "message": "hello human"}, "notification: hello human"),
    ]
    for i, (decision, journaled) in enumerate(steps):
        fake.queue(decision)
        force_decide(d)
        r = tick()
        assert r.returncode == 0, r.stdout + r.stderr
        assert f"✓ {decision['action']} · " in r.stdout
        assert journaled in journal_lines(d)[-1]
        assert len(fake.calls()) == i + 1
        assert len(read(d, ".last-tick-hash").strip()) == 64
        assert not os.path.exists(os.path.join(d, ".decision.json"))
    assert "hello human" in r.stdout
    assert not os.path.exists(os.path.join(d, "goals", "ship.md"))
    assert read(d, "goals", "archive", "ship.md") == "ship it\n"
    assert os.stat(os.path.join(d, "sensors", "gh.sh")).st_mode & 0o777 == 0o700  # owner-only
    assert read(d, "PLAYBOOK.md") == "# v2\n"
    hist = os.listdir(os.path.join(d, "playbook.d"))
    assert sorted(read(d, "playbook.d", h) for h in hist) == ["# v1\n"]
    assert read(d, "reports", "where.txt").strip() == d
    assert len(journal_lines(d)) == len(steps)
    # every run archived: prompt + output; tick.log is the latest output
    runs = sorted(os.listdir(os.path.join(d, "runs")))
    assert len(runs) == len(steps)
    assert "=== PLAYBOOK ===" in read(d, "runs", runs[-1], "prompt.md")
    assert "fake runner: decided" in read(d, "runs", runs[-1], "output.log")
    assert read(d, "tick.log") == read(d, "runs", runs[-1], "output.log")
    env = fake.calls()[-1]["env"]
    assert env["LOOOP_COST_KIND"] == "tick" and env["LOOOP_COST_ID"] == runs[-1]
    assert env["LOOOP_COST_RUNNER"] == "fake" and env["LOOOP_DATA_DIR"] == d
    assert "LOOOP_PULSE_FD" not in env and fake.calls()[-1]["cwd"] == d
    events = [json.loads(ln)["event"] for ln in open(os.path.join(d, "events.jsonl"))]
    for e in ("tick_start", "sense_done", "decide_start", "decided"):
        assert e in events


def test_worker_moves_need_a_running_looop(data_dir, fake):
    fake.queue({"action": "start_worker", "id": "w", "prompt": "p"})
    r = tick()
    assert r.returncode == 1
    assert "start_worker: needs a running looop" in r.stdout
    assert not os.path.exists(os.path.join(data_dir, ".last-tick-hash"))


def test_run_shell_deny_list_and_failures(data_dir, fake):
    fake.queue({"action": "run_shell", "cmd": "sudo touch reports/x", "reason": "r"})
    r = tick()
    assert r.returncode == 1 and "deny-list tripwire (sudo)" in r.stdout
    fake.queue({"action": "run_shell", "cmd": "exit 3", "reason": "r"})
    r = tick()
    assert r.returncode == 1 and "run_shell exited 3" in r.stdout
    assert "rejected" not in journal_lines(data_dir)[-1] and "failed run_shell" in journal_lines(data_dir)[-1]


def test_unchanged_world_makes_no_runner_call(data_dir, fake):
    d = data_dir
    os.makedirs(os.path.join(d, "ctl-s"))
    sensor(d, "s", f'printf \'{{"signal": %s, "detail": "%s"}}\' "$(cat {d}/ctl-s/sig)" "$(cat {d}/ctl-s/detail)"')
    put = lambda k, v: open(os.path.join(d, "ctl-s", k), "w").write(v)  # noqa: E731
    put("sig", "1")
    put("detail", "a")
    assert tick().returncode == 0 and len(fake.calls()) == 1
    r = tick()
    assert "world unchanged — no AI call" in r.stdout and len(fake.calls()) == 1
    put("detail", "b")
    r = tick()
    assert "world unchanged" in r.stdout and len(fake.calls()) == 1
    assert '"detail": "b"' in read(d, "snapshots", "sensor-s.json")
    put("sig", "2")
    r = tick()
    assert "world unchanged" not in r.stdout and len(fake.calls()) == 2
    assert '"signal": 2' in fake.prompt()


def test_sensors_cut_capped_and_failed_are_named(data_dir, fake):
    d = data_dir
    sensor(d, "hang", "echo started >&2; sleep 60")
    sensor(d, "big", "head -c 1048576 /dev/zero | tr '\\0' x")
    sensor(d, "bad", "echo '{\"signal\": 1}'; exit 1")
    sensor(d, "good", "echo '{\"signal\": 1}'")
    t0 = time.monotonic()
    r = tick("--json", env={"LOOOP_SENSOR_TIMEOUT": "1"})
    assert time.monotonic() - t0 < 8
    sense_line = next(json.loads(ln) for ln in r.stdout.splitlines() if json.loads(ln)["event"] == "sense")
    assert sense_line["msg"].startswith("1/4 sensors ok · failed: bad (exit 1), big (output over 8192 bytes), "
                                        "hang (timed out) (")
    big = json.loads(read(d, "snapshots", "sensor-big.json"))
    assert big == {"signal": {"error": "sensor output too large", "cap": 8192},
                   "error": "sensor output too large", "bytes": big["bytes"], "cap": 8192}
    assert big["bytes"] > 8192
    assert "timed out (exit 124)" in read(d, "snapshots", "sensor-hang.err")
    assert "started" in read(d, "snapshots", "sensor-hang.err")
    assert not os.path.exists(os.path.join(d, "snapshots", "sensor-good.err"))
    assert "--- sensor-big.json" in fake.prompt()


def test_ten_slow_sensors_run_concurrently(data_dir, fake):
    for i in range(10):
        sensor(data_dir, f"s{i}", f"sleep 1; echo '{{\"n\": {i}}}'")
    r = tick("--json")
    sense_line = next(json.loads(ln) for ln in r.stdout.splitlines() if json.loads(ln)["event"] == "sense")
    assert sense_line["msg"].startswith("10 sensors ok")
    assert 0.9 <= sense_line["secs"] < 4, sense_line  # about 1 s, not 10 (slack for a loaded box)


BAD = [
    (b"this is not json", "decision is not JSON"),
    (b'{"action": "launch_missiles"}', "unknown action 'launch_missiles'"),
    (b'{"action": "write_goal", "id": "../x", "body": "pwned"}', "invalid goal id '../x'"),
    (b'{"action": "write_goal", "id": "x"}', "missing field 'body'"),
    (b'{"action": "write_goal", "id": "x", "body": 42}', "'body' must be a string"),
]


def test_malformed_decisions_fail_execute_nothing_and_are_retried(data_dir, fake):
    d = data_dir
    fake.queue({"action": "noop", "reason": "baseline"})
    assert tick().returncode == 0
    before = read(d, ".last-tick-hash")
    open(os.path.join(d, "goals", "new.md"), "w").write("changed world\n")
    for i, (raw, problem) in enumerate(BAD):
        fake.queue(raw)
        r = tick()
        assert r.returncode == 1
        failed = [ln for ln in r.stdout.splitlines() if "✗ decision failed: " in ln]
        assert failed and problem in failed[0], r.stdout
        assert "replay: runs/" in r.stdout
        assert len(fake.calls()) == 2 + i  # the next beat retried: same world, new call
        assert read(d, ".last-tick-hash") == before
        assert sorted(os.listdir(os.path.join(d, "goals"))) == ["archive", "new.md"]
        assert not os.path.exists(os.path.join(d, ".decision.json"))
        assert "rejected decision: " in journal_lines(d)[-1]
    assert not os.path.exists(os.path.join(os.path.dirname(d), "x.md"))


def test_no_decision_and_runner_exit(data_dir, fake):
    fake.mode("none")
    r = tick()
    assert r.returncode == 1 and "⚡ ran" in r.stdout and "but emitted no decision" in r.stdout
    fake.mode("exit1")
    r = tick()
    assert r.returncode == 1 and "runner exited 1" in r.stdout
    assert "failing on purpose" in read(data_dir, "tick.log")


def test_hung_runner_is_killed_with_its_whole_group(data_dir, fake):
    fake.mode("hang")
    t0 = time.monotonic()
    r = tick(env={"LOOOP_TICK_TIMEOUT": "1.5"})
    assert time.monotonic() - t0 < 10
    assert r.returncode == 1 and "timed out after" in r.stdout
    pids = [int(p) for p in open(os.path.join(fake.ctl, "hang.pids")).read().split()]
    wait_until(lambda: not any(psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE
                               for p in pids), 3, "the runner's group to be gone")


def test_dry_run_calls_no_runner(data_dir, fake):
    sensor(data_dir, "s", "echo '{\"signal\": 5}'")
    r = tick("--dry-run")
    assert r.returncode == 0
    assert "=== PLAYBOOK ===" in r.stdout and "=== SENSOR READINGS ===" in r.stdout
    assert "world hash " in r.stdout and "no runner called" in r.stdout
    assert fake.calls() == [] and not os.path.exists(os.path.join(data_dir, ".last-tick-hash"))
    r = tick("--dry-run", "--json")
    obj = json.loads(r.stdout.splitlines()[-1])
    assert len(obj["hash"]) == 64 and "=== GOALS ===" in obj["prompt"]


def test_json_lines_only(data_dir, tmp_path):
    fake = setup_fake(data_dir, str(tmp_path / "ctl"))
    os.unlink(os.path.join(data_dir, ".seeded"))  # the seed lines too
    sensor(data_dir, "s", "echo '{\"signal\": 1}'")
    fake.queue({"action": "send_notification", "message": "\x1b[31mred\x1b[0m alert"})
    r = tick("--json", env={"LOOOP_COLOR": "1"})
    assert r.returncode == 0
    lines = r.stdout.splitlines()
    assert len(lines) >= 4
    objs = [json.loads(ln) for ln in lines]
    assert "\x1b" not in r.stdout
    assert {"seed", "sense", "tick.start", "tick.decided"} <= {o["event"] for o in objs}
    for o in objs:
        assert {"ts", "level", "event", "msg"} <= set(o)
    r = tick("--json")
    assert [json.loads(ln)["event"] for ln in r.stdout.splitlines()] == ["sense", "tick.skip"]


def test_claims_reaped_budget_breaker_runs_pruned(data_dir, fake):
    d = data_dir
    os.makedirs(os.path.join(d, "claims"))
    for name, body in (("stale", '{"session": "gone", "what": "PR 7"}'), ("bad", "{not json")):
        with open(os.path.join(d, "claims", name + ".json"), "w") as f:
            f.write(body)
    for _ in range(3):
        force_decide(d)
        assert tick(env={"LOOOP_RUNS_KEEP": "2"}).returncode == 0
    assert len(os.listdir(os.path.join(d, "runs"))) == 2
    assert sorted(os.listdir(os.path.join(d, "claims"))) == ["bad.json"]
    assert "- bad: (unreadable claim file)" in fake.prompt()
    events = [json.loads(ln) for ln in open(os.path.join(d, "events.jsonl"))]
    assert any(e["event"] == "claim_reaped" and e["claim"] == "stale" for e in events)
    # spend breaker: today's ledger at the cap → no decide step
    with open(os.path.join(d, "looop.json")) as f:
        cfg = json.load(f)
    with open(os.path.join(d, "looop.json"), "w") as f:
        json.dump({**cfg, "max_daily_usd": 0.5}, f)
    with open(os.path.join(fake.ctl, "cost"), "w") as f:
        f.write("0.25")
    for _ in range(2):  # the runner meters itself: the decided line shows its cost
        force_decide(d)
        r = tick()
        assert r.returncode == 0 and "✓ noop · " in r.stdout and r.stdout.rstrip().endswith("· $0.25")
    force_decide(d)
    n = len(fake.calls())
    r = tick()
    assert "budget reached ($0.5 of $0.5 today)" in r.stdout and len(fake.calls()) == n
    assert run("cost", "--json").stdout.count('"tick":0.5') == 1


def test_prompt_file_substitution_and_clean_signals(data_dir, tmp_path):
    from fakes import FAKE
    import sys
    d = data_dir
    fake = setup_fake(d, str(tmp_path / "ctl"))
    with open(os.path.join(d, "looop.json")) as f:
        cfg = json.load(f)
    cfg["runners"]["fake"]["tick"] = f"cp {{{{prompt_file}}}} {fake.ctl}/via-file.md; {sys.executable} {FAKE} {fake.ctl}"
    with open(os.path.join(d, "looop.json"), "w") as f:
        json.dump(cfg, f)
    # what a command started by a sensor inherits: no signal ignored (SIGPIPE, SIGINT…)
    sensor(d, "sig", "grep SigIgn /proc/self/status > reports/sigign; echo '{}'")
    assert tick().returncode == 0
    assert "=== RECENT JOURNAL ===" in read(fake.ctl, "via-file.md")
    assert fake.prompt() == ""  # nothing on stdin when {{prompt_file}} is used
    assert read(d, "reports", "sigign").split() == ["SigIgn:", "0000000000000000"]


def test_a_sensor_leaving_a_background_child_does_not_hold_the_beat(data_dir, fake):
    sensor(data_dir, "bg", "sleep 30 & echo '{\"signal\": 1}'")
    t0 = time.monotonic()
    r = tick("--json")
    assert time.monotonic() - t0 < 10
    sense_line = next(json.loads(ln) for ln in r.stdout.splitlines() if json.loads(ln)["event"] == "sense")
    assert sense_line["msg"].startswith("1 sensors ok") and sense_line["secs"] < 4  # not the 60 s timeout
    assert json.loads(read(data_dir, "snapshots", "sensor-bg.json")) == {"signal": 1}


def test_ctrl_c_during_a_tick_leaves_no_runner(data_dir, fake):
    import signal
    import subprocess
    from conftest import BIN
    fake.mode("hang")
    p = subprocess.Popen([BIN, "tick"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    pids_file = os.path.join(fake.ctl, "hang.pids")
    wait_until(lambda: os.path.exists(pids_file) and read(fake.ctl, "hang.pids").strip(), 15, "the runner")
    pids = [int(x) for x in read(fake.ctl, "hang.pids").split()]
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=10)
    assert p.returncode == 130 and b"Traceback" not in err
    wait_until(lambda: not any(psutil.pid_exists(x) and psutil.Process(x).status() != psutil.STATUS_ZOMBIE
                               for x in pids), 3, "the runner's group to be gone")
