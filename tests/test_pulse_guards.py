"""The pulse's guards (SPEC §16) through real beats (`looop tick`, and a live
pulse where the guard is about sleeping), each shown by counting the
scripted fake decider's calls."""
from __future__ import annotations

import json
import os
import time

import pytest

from conftest import Tree, run, wait_until
from fakes import bump_world, force_decide, isolated_home, read, sensor, setup_fake

from looop.pulse import guards

assert isolated_home  # autouse fixture, imported so pytest finds it


@pytest.fixture
def fake(data_dir, tmp_path):
    return setup_fake(data_dir, str(tmp_path / "ctl"))


def tick(*args: str, timeout: float = 30, **env: str):
    return run("tick", *args, timeout=timeout, env={**os.environ, **env})


def test_decide_budget_counts_failed_attempts(data_dir, fake):
    fake.mode("exit1")
    outs = [tick(LOOOP_MAX_DECIDES_PER_HOUR="3") for _ in range(5)]
    assert len(fake.calls()) == 3  # the 4th and 5th beats made no call
    assert all(r.returncode == 1 for r in outs[:3])
    for r in outs[3:]:
        assert "decide budget spent (3 runner calls in the last hour, LOOOP_MAX_DECIDES_PER_HOUR=3)" \
            in r.stdout
    fake.mode("decide")
    assert tick(LOOOP_MAX_DECIDES_PER_HOUR="4").returncode == 0 and len(fake.calls()) == 4


def test_noop_ttl_decides_an_unchanged_world_again(data_dir, fake):
    assert tick(LOOOP_NOOP_TTL="30").returncode == 0  # queue empty: a noop
    # (30 s, not 1: a loaded box once took over a second between two ticks)
    assert tick(LOOOP_NOOP_TTL="30").returncode == 0
    assert len(fake.calls()) == 1  # unchanged world, young noop: skipped
    time.sleep(1.1)  # the noop is now older than the TTL
    r = tick(LOOOP_NOOP_TTL="1")
    assert "LOOOP_NOOP_TTL" in r.stdout and len(fake.calls()) == 2
    assert tick(LOOOP_NOOP_TTL="3600").returncode == 0 and len(fake.calls()) == 2


def test_flapping_sensor_is_named_in_the_prompt_and_warned_once(data_dir, fake):
    d = data_dir
    sensor(d, "counter", f'n=$(cat {d}/n 2>/dev/null || echo 0); echo $((n+1)) > {d}/n; '
                         'echo "{\\"signal\\": $n}"')
    sensor(d, "steady", 'echo \'{"signal": "same"}\'')
    outs = [tick().stdout for _ in range(guards.FLAP_BEATS + 2)]
    assert len(fake.calls()) == guards.FLAP_BEATS + 2  # each change woke the decider
    warned = [i for i, o in enumerate(outs) if "sensor counter is flapping" in o]
    assert warned == [guards.FLAP_BEATS]  # the 6th beat: changed on beats 2..6; warned once
    p = fake.prompt()
    assert "=== FLAPPING SENSORS ===\n- counter:" in p and "steady" not in p.split("FLAPPING")[1]


def test_run_shell_output_tail_is_in_the_next_prompt(data_dir, fake):
    fake.queue({"action": "run_shell", "cmd": "echo first-line; seq 1 3000", "reason": "look"})
    assert tick().returncode == 0
    assert tick().returncode == 0  # the output is news: this beat decides, with it in the prompt
    assert len(fake.calls()) == 2
    p = fake.prompt()
    sec = p.split("=== LAST SHELL OUTPUT ===\n")[1]
    assert sec.startswith("$ echo first-line; seq 1 3000  (exit 0, run ")
    body = sec.split("earlier bytes cut …]\n")[1].split("\n\n===")[0]
    assert body.endswith("] 3000\n") and "first-line" not in body
    assert len(body.encode()) <= guards.SHELL_TAIL
    assert tick().returncode == 0 and len(fake.calls()) == 2  # shown once, then the world is quiet


def test_prompt_budget_cuts_the_largest_section_visibly(data_dir, fake):
    d = data_dir
    os.makedirs(os.path.join(d, "goals"), exist_ok=True)
    with open(os.path.join(d, "goals", "huge.md"), "w") as f:
        f.write("start of the huge goal\n" + "lorem ipsum\n" * 20000)
    with open(os.path.join(d, "PLAYBOOK.md"), "w") as f:
        f.write("keep the playbook\n")
    r = tick("--dry-run", LOOOP_PROMPT_MAX_BYTES="20000")
    prompt = r.stdout[r.stdout.index("You are the decider"):].rsplit("\n", 2)[0]
    assert len(prompt.encode()) <= 20000
    assert "bytes cut by looop: the prompt is over LOOOP_PROMPT_MAX_BYTES (20000)" in prompt
    assert "start of the huge goal" in prompt and "keep the playbook" in prompt
    assert "=== RECENT JOURNAL ===" in prompt
    assert tick(LOOOP_PROMPT_MAX_BYTES="20000").returncode == 0
    assert len(fake.prompt().encode()) <= 20000 and len(fake.calls()) == 1


def test_sensor_interval_skips_it_while_its_reading_is_fresh(data_dir, fake):
    d = data_dir
    sensor(d, "slow", f"# looop:interval=1h\necho run >> {d}/slow-runs; echo '{{\"signal\": 1}}'")
    sensor(d, "fast", f"echo run >> {d}/fast-runs; echo '{{\"signal\": 1}}'")
    for _ in range(3):
        force_decide(d)
        assert tick().returncode == 0
    assert read(d, "slow-runs").count("run") == 1 and read(d, "fast-runs").count("run") == 3
    assert len(fake.calls()) == 3
    assert '--- sensor-slow.json\n{"signal": 1}' in fake.prompt()  # the kept reading is shown


def test_schedules_wake_the_decider_once_and_stay_due_until_dropped(data_dir, fake):
    d = data_dir
    assert tick().returncode == 0 and len(fake.calls()) == 1
    r = run("schedule", "write", "standup", "--in", "1h", "--note", "post the summary")
    assert r.returncode == 0
    assert tick().returncode == 0 and len(fake.calls()) == 2  # a new schedule is news
    assert "- standup: at " in fake.prompt() and "not due yet — post the summary" in fake.prompt()
    assert tick().returncode == 0 and len(fake.calls()) == 2
    path = os.path.join(d, "schedules", "standup.json")
    rec = json.load(open(path))
    rec["at"] = time.time() - 1  # its time came
    json.dump(rec, open(path, "w"))
    assert tick().returncode == 0 and len(fake.calls()) == 3
    assert "DUE (stays due until you drop it with drop_schedule)" in fake.prompt()
    assert tick().returncode == 0 and len(fake.calls()) == 3  # still due, but not news
    fake.queue({"action": "drop_schedule", "name": "standup"})
    force_decide(d)
    assert tick().returncode == 0 and not os.path.exists(path)
    listed = json.loads(run("schedule", "list", "--json").stdout)
    assert listed == []


def test_schedule_bad_input(data_dir, fake):
    d = data_dir
    r = run("schedule", "write", "a/b", "--in", "1h")
    assert r.returncode == 1 and r.stderr.startswith("looop schedule: invalid schedule name 'a/b'")
    r = run("schedule", "write", "often", "--every", "10s")
    assert r.returncode == 1 and r.stderr.strip() == "looop schedule: --every must be at least 60s (got 10s)"
    os.makedirs(os.path.join(d, "schedules"), exist_ok=True)
    open(os.path.join(d, "schedules", "junk.json"), "w").write("{not json")
    listed = json.loads(run("schedule", "list", "--json").stdout)
    assert listed[0]["name"] == "junk" and "unreadable" in listed[0]["error"]
    assert tick().returncode == 0  # never a crash
    assert "- junk: unreadable" in fake.prompt()
    assert run("schedule", "rm", "junk").returncode == 0


def test_corrupt_guard_state_is_conservative_and_rewritten(data_dir, fake):
    d = data_dir
    open(os.path.join(d, ".guards.json"), "w").write("garbage{")
    r = tick(LOOOP_MAX_DECIDES_PER_HOUR="5")
    assert r.returncode == 0 and "was unreadable" in r.stdout
    assert "decide budget spent" in r.stdout and fake.calls() == []  # as if spent
    st = json.load(open(os.path.join(d, ".guards.json")))
    assert st["v"] == 1 and len(st["decides"]) == 5  # rewritten whole
    open(os.path.join(d, ".next-interval"), "w").write("\x00\x01")
    from looop.pulse import loop
    assert loop._load_failures(d) == loop.CORRUPT_FAILURES


def test_spend_warning_once_a_day_and_cost_by_session(data_dir, fake, tmp_path):
    d = data_dir
    cfg = json.load(open(os.path.join(d, "looop.json")))
    cfg["warn_daily_usd"] = 0.01
    json.dump(cfg, open(os.path.join(d, "looop.json"), "w"))
    run("_cost", "session", "w1", "claude", "0.5", check=True)
    run("_cost", "session", "w2", "claude", "0.25", check=True)
    open(os.path.join(fake.ctl, "cost"), "w").write("0.125")
    outs = []
    for _ in range(3):
        force_decide(d)
        outs.append(tick().stdout)
    assert len(fake.calls()) == 3  # a soft threshold: beats go on
    assert sum("spend warning: " in o for o in outs) == 1
    from looop.store import guardstate
    b = guardstate.budget(d)
    assert b and b["limit"] == 0.01 and b["spent"] >= 0.75
    r = run("cost", "--by", "session", check=True).stdout
    lines = [ln.split() for ln in r.splitlines()[1:]]
    assert lines[0] == ["w1", "$0.5"] and ["(ticks)", "$0.375"] in lines and ["w2", "$0.25"] in lines
    s = json.loads(run("cost", "--json", check=True).stdout)
    assert s["by_session"] == {"w1": 0.5, "w2": 0.25, "(ticks)": 0.375}


def test_worker_cap_refuses_a_start_with_a_clear_line(data_dir, tmp_path):
    setup_fake(data_dir, str(tmp_path / "ctl"))
    t = Tree(data_dir, env={**os.environ, "LOOOP_MAX_WORKERS": "2"})
    try:
        for sid in ("c1", "c2"):
            run("start-session", sid, "exec sleep 300", "--command", "bash {{prompt_file}}", check=True)
        r = run("start-session", "c3", "exec sleep 300", "--command", "bash {{prompt_file}}")
        assert r.returncode == 1
        assert r.stderr.strip() == ("looop start-session: worker cap reached: 2 live workers "
                                    "(LOOOP_MAX_WORKERS=2) — kill one, or raise the cap")
        run("kill", "c1", check=True)
        run("start-session", "c3", "exec sleep 300", "--command", "bash {{prompt_file}}", check=True)
    finally:
        t.stop()


def test_a_policy_edit_cuts_the_failure_backoff(data_dir, tmp_path):
    fake = setup_fake(data_dir, str(tmp_path / "ctl"))
    fake.mode("exit1")
    t = Tree(data_dir, env={**os.environ, "LOOOP_INTERVAL": "15"})  # one failure: a 30 s backoff
    try:
        wait_until(lambda: len(fake.calls()) >= 1, 30, "the first (failing) call")
        wait_until(lambda: "next beat in 30s (backoff)" in t.output(), 30, "the backoff sleep")
        fake.mode("decide")
        edited = time.time()
        bump_world(data_dir)
        wait_until(lambda: len(fake.calls()) >= 2, 20, "a call soon after the edit, not after 30 s")
        assert fake.calls()[1]["t"] - edited < 20
        assert "backoff cut" in t.output()
    finally:
        t.stop()


def test_guard_functions_as_tables():
    assert guards.decide_budget([], 100.0, 2) == ([], None)
    kept, nxt = guards.decide_budget([0.0, 50.0, 90.0], 3630.0, 2)  # 0.0 is over an hour old
    assert kept == [50.0, 90.0] and nxt == 50.0 + guards.HOUR
    assert guards.decide_budget([1.0] * 9, 2.0, 0)[1] is None  # 0 = no cap
    mem: dict = {}
    seen = []
    for i in range(7):
        mem, flap, new = guards.flapping(mem, [("s", str(i).encode()), ("q", b"1")])
        seen.append((flap, new))
    assert [f for f, _ in seen] == [[]] * 5 + [["s"], ["s"]] and [n for _, n in seen][5:] == [["s"], []]
    mem, flap, new = guards.flapping(mem, [("s", b"6")])  # unchanged: the streak ends
    assert flap == [] and mem["s"]["streak"] == 0
    assert guards.noop_expired({"action": "noop", "at": 0.0}, 10.0, 10.0)
    assert not guards.noop_expired({"action": "noop", "at": 0.0}, 9.0, 10.0)
    assert not guards.noop_expired({"action": "run_shell", "at": 0.0}, 99.0, 10.0)
    assert not guards.noop_expired(None, 99.0, 10.0)
    from looop.pulse.prompt import fit
    parts = ["contract " * 10, "=== A ===\n" + "a" * 500, "=== B ===\n" + "b" * 2000]
    out = fit(parts, 1200)
    assert sum(len(p) for p in out) + 2 <= 1200 and out[0] == parts[0] and out[1] == parts[1]
    assert out[2].startswith("=== B ===\nbbb") and "bytes cut by looop" in out[2]


def test_spend_warning_on_a_live_tree_is_one_inbox_item_a_day(data_dir, tmp_path):
    """warn_daily_usd with a running pulse: cost rows written by `looop _cost`
    (as a worker's agent would) raise one `budget` inbox item, notified once,
    and one warn line in the pulse stream, however many beats follow."""
    d = data_dir
    fake = setup_fake(d, str(tmp_path / "ctl"), warn_daily_usd=0.5,
                      notify_command=f"cat >> {tmp_path}/notified; echo >> {tmp_path}/notified")
    t = Tree(d, env={**os.environ, "LOOOP_INTERVAL": "0.3", "LOOOP_INBOX_POLL": "0.3"})
    try:
        run("_cost", "session", "w1", "claude", "0.25", check=True)
        seen = len(events_named(d, "world_unchanged"))
        wait_until(lambda: len(events_named(d, "world_unchanged")) >= seen + 2, 15, "two beats under it")
        assert "spend warning" not in t.output() and not budget_items()
        run("_cost", "session", "w1", "claude", "0.5", check=True)  # $0.75 today: past $0.50
        item = wait_until(lambda: (b := budget_items()) and b[0], 15, "the budget item")
        from looop.store import cost
        assert item == {"kind": "budget", "id": f"spend-warn-{cost.today()}", "session": None,
                        "age_s": item["age_s"], "command": item["command"],
                        "text": "spend warning: $0.75 of warn_daily_usd $0.5 today "
                                "(a soft threshold: the loop goes on)"}
        run("_cost", "session", "w2", "claude", "1", check=True)  # more spend, more beats
        seen = len(events_named(d, "world_unchanged"))
        wait_until(lambda: len(events_named(d, "world_unchanged")) >= seen + 3, 15, "three more beats")
        wait_until(lambda: os.path.exists(tmp_path / "notified"), 10, "the notification")
        time.sleep(1)  # a second notification would have come within a poll or two
        assert t.output().count("spend warning: $0.75 of warn_daily_usd $0.5 today") == 1
        assert len(events_named(d, "spend_warning")) == 1 and len(budget_items()) == 1
        notes = [json.loads(ln) for ln in read(str(tmp_path), "notified").splitlines() if ln.strip()]
        assert [n["id"] for n in notes] == [item["id"]]
        from looop.store import guardstate
        assert guardstate.budget(d)["day"] == cost.today()
        assert fake.calls() is not None and t.proc.poll() is None
    finally:
        t.stop()


def events_named(d: str, name: str) -> list[dict]:
    try:
        with open(os.path.join(d, "events.jsonl")) as f:
            return [e for e in map(json.loads, f) if e["event"] == name]
    except FileNotFoundError:
        return []


def budget_items() -> list[dict]:
    return [i for i in json.loads(run("inbox", "--json", check=True).stdout) if i["kind"] == "budget"]
