"""Fresh-eyes QA, session 3: defects a new user hit following the README,
each reproduced with real processes before its fix."""
from __future__ import annotations

import json
import os
import signal
import subprocess

from conftest import BIN, Tree, ls, run, wait_until
from fakes import isolated_home
from test_rules_runner import env, journal, row, rules_dir

assert isolated_home  # autouse fixture, imported so pytest finds it


def test_a_goal_with_bad_frontmatter_is_skipped_out_loud_and_does_not_block_the_others(data_dir):
    # Reproduction: goals/badfm.md with `restart: bogus` (sorted first) made
    # every beat fail ("decision failed: start_worker: bad restart type"),
    # so goals/uptime.md never started; `every: 10x` was silently a one-shot.
    d = data_dir
    rules_dir(d, {"a-restart": "---\nrun: echo hi\nrestart: bogus\n---\n",
                  "b-every": "---\nrun: echo hi\nevery: 10x\n---\n",
                  "c-max": "---\nrun: echo hi\nrestart: transient\nmax_restarts: 0/1m\n---\n",
                  "uptime": "---\nrun: echo up; sleep 100\n---\n"})
    t = Tree(d, env=env("5"))
    try:
        wait_until(lambda: (x := row("uptime")) and x["alive"], 60, "uptime to start despite bad goals")
        j = journal(d)
        assert "goals/a-restart.md: bad restart type 'bogus'" in j, j
        assert "goals/b-every.md: bad every '10x'" in j, j
        assert "goals/c-max.md: bad max restarts '0/1m'" in j, j
        for gid in ("a-restart", "b-every", "c-max"):
            assert row(gid) is None, gid  # nothing started for a goal it cannot read
    finally:
        assert t.stop(signal.SIGTERM) == 0


def test_the_cadence_line_says_a_due_wait_in_human_seconds():
    # Reproduction: a schedule due in 38.86 s printed
    # "next beat in 38.8603s (due)" in the pulse's stream.
    from looop.pulse import loop
    assert [loop.say_secs(s) for s in (38.8603, 60, 0.25, 4.96, 9.99, 900.0, 2.0)] == \
        ["39s", "60s", "0.2s", "5s", "10s", "900s", "2s"]


def test_max_restarts_without_a_restarting_type_is_refused_not_ignored(tree):
    # Reproduction: `start-session r1 'exit 3' rules --max-restarts 3/10m`
    # said "started r1" and the worker, temporary, was never restarted.
    for extra in ((), ("--restart", "temporary")):
        r = run("start-session", "r1", "exit 3", "rules", "--max-restarts", "3/10m", *extra)
        assert r.returncode == 1, r
        assert r.stderr.strip() == ("looop start-session: --max-restarts needs --restart transient "
                                    "or permanent (a temporary worker is never restarted)"), r.stderr
        assert r.stdout == ""
    assert [x["id"] for x in ls() if x["role"] == "worker"] == []
    r = run("start-session", "r2", "sleep 100", "rules", "--restart", "transient", "--max-restarts", "3/10m")
    assert r.returncode == 0, r.stderr


def test_a_negative_line_count_is_refused_like_journal_tail(tree):
    # Reproduction: `looop log sh --tail -2` printed nothing and exited 0 and
    # `looop logs --lines -3` followed as if 0, while `journal --tail -1` says
    # "--tail must be >= 0".
    tree.start("w", "echo one; echo two; sleep 100")
    r = run("log", "w", "--tail", "-2")
    assert (r.returncode, r.stderr.strip(), r.stdout) == (1, "looop log: --tail must be >= 0", "")
    r = run("logs", "--lines", "-3", timeout=10)
    assert (r.returncode, r.stderr.strip(), r.stdout) == (1, "looop logs: --lines must be >= 0", "")


def test_an_empty_answer_is_refused_and_the_ask_stays_pending(tree, data_dir):
    # Reproduction: `looop answer sh-1 - </dev/null` said "answered sh-1" and
    # the worker's ask returned an empty string (the first answer wins, so a
    # slip could not be corrected); an empty *question* is refused.
    tree.start("w", 'a=$("$LOOOP_BIN" ask "color?"); echo "got [$a]"; sleep 100')

    def pending() -> list:
        return [i for i in json.loads(run("inbox", "--json", check=True).stdout) if i["kind"] == "ask"]
    wait_until(pending, 20, "the ask in the inbox")
    for args, stdin in ((("w-1", "-"), ""), (("w-1", "-"), "\n"), (("w-1", ""), None), (("w-1", " "), None)):
        r = run("answer", *args, input=stdin)
        assert (r.returncode, r.stderr.strip(), r.stdout) == (
            1, "looop answer: the answer is empty (nothing answered)", ""), (args, r)
    assert [i["id"] for i in pending()] == ["w-1"]
    assert run("answer", "w-1", "blue").returncode == 0
    wait_until(lambda: "got [blue]" in run("log", "w").stdout, 20, "the worker to get the answer")


def test_doctor_names_a_setting_that_does_not_parse_and_is_ignored(data_dir):
    # Reproduction: looop.json {"max_daily_usd": "5$", "interval": "fast"} and
    # LOOOP_MAX_WORKERS=many: doctor said "config parses" and all ok, while the
    # spend breaker was silently off and the others fell back to defaults.
    os.makedirs(data_dir, exist_ok=True)
    with open(os.path.join(data_dir, "looop.json"), "w") as f:
        json.dump({"default": "rules", "max_daily_usd": "5$", "interval": "fast", "warn_daily_usd": 2}, f)
    r = run("doctor", "--json", env={**os.environ, "LOOOP_MAX_WORKERS": "many"})
    got = {x["check"]: x for x in json.loads(r.stdout)}
    assert got["settings"]["level"] == "warn", got
    msg = got["settings"]["msg"]
    for part in ("looop.json max_daily_usd '5$' is not a number", "looop.json interval 'fast' is not a number",
                 "LOOOP_MAX_WORKERS 'many' is not a number"):
        assert part in msg, msg
    assert "warn_daily_usd" not in msg
    assert r.returncode == 0, r  # a warning: looop still runs (on defaults)
    r = run("doctor", "--json")  # the environment fixed: the config is still wrong
    assert "LOOOP_MAX_WORKERS" not in next(x for x in json.loads(r.stdout) if x["check"] == "settings")["msg"]


def test_the_sensor_summary_says_why_each_sensor_failed(data_dir):
    # Reproduction: sensors printing `not json` and `[1,2]` gave
    # "2/4 sensors ok · failed: arr, bad": the reason was only in
    # snapshots/*.err or the prompt, not in the line a user reads.
    sensors = os.path.join(data_dir, "sensors")
    os.makedirs(sensors)
    for name, body in (("arr", "echo '[1,2]'"), ("bad", "echo not json"), ("ex", "echo '{}'; exit 3"),
                       ("good", "echo '{\"signal\": 1}'")):
        with open(os.path.join(sensors, name + ".sh"), "w") as f:
            f.write("#!/bin/bash\n" + body + "\n")
        os.chmod(os.path.join(sensors, name + ".sh"), 0o755)
    r = run("tick", "--dry-run", "--json")
    sense = next(json.loads(ln) for ln in r.stdout.splitlines()
                 if ln.startswith("{") and json.loads(ln).get("event") == "sense")
    assert sense["msg"].startswith("1/4 sensors ok · failed: arr (not one JSON object), "
                                   "bad (not one JSON object), ex (exit 3) ("), sense


def test_a_workers_flag_or_question_cannot_put_escapes_on_the_humans_terminal(tree):
    # Reproduction: `looop flag shell $'line1\nline2\e[31mred'` (a worker can
    # run it) made `looop inbox` print ESC [31m raw into the human's terminal.
    tree.start("w", "sleep 100")
    assert run("flag", "w", "line1\nline2\x1b[31mred\x07\x1b]0;title\x07 end").returncode == 0
    env = {**os.environ, "LOOOP_SESSION_ID": "w"}
    asker = subprocess.Popen([BIN, "ask", "color\x1b[2J?\x9b1m"], env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: "ask" in run("inbox").stdout, 20, "the ask in the inbox")
        table = run("inbox", check=True).stdout
        items = json.loads(run("inbox", "--json", check=True).stdout)
        texts = {i["kind"]: i["text"] for i in items}
        assert texts["flag"] == "line1 line2red end", texts
        assert texts["ask"] == "color?", texts
        # ls, status and the prompt show the same note: stored printable
        worker = next(x for x in ls() if x["id"] == "w")
        assert worker["note"] == "line1 line2red end", worker
        for out in (table, json.dumps(items, ensure_ascii=False), run("ls", check=True).stdout,
                    run("ls", "--wide", check=True).stdout, run("status", check=True).stdout):
            assert not any(c in out for c in "\x1b\x07\x9b"), repr(out)
    finally:
        asker.kill()
        asker.wait(10)


def test_start_session_takes_its_runner_after_the_options_too(tree, tmp_path):
    # Reproduction: `looop start-session e5 'sleep 5' --cwd /tmp rules` (the
    # README's "start-session <id> … --cwd DIR --env K=V" order, runner last)
    # said "unrecognized arguments: rules".
    r = run("start-session", "w", "pwd; echo A=$A; sleep 100", "--cwd", str(tmp_path), "--env", "A=1", "rules")
    assert r.returncode == 0, r.stderr
    wait_until(lambda: "A=1" in run("log", "w").stdout, 20, "the worker's output")
    assert str(tmp_path) in run("log", "w").stdout
    r = run("start-session", "v", "sleep 100", "--cwd", str(tmp_path), "nosuchrunner")
    assert (r.returncode, r.stderr.strip()) == (
        1, "looop start-session: unknown runner 'nosuchrunner' (known: claude, codex, pi, rules)"), r


def test_why_says_a_record_is_unreadable_rather_than_missing(data_dir):
    # Reproduction: with runs/<id>/why.json overwritten by garbage,
    # `looop why` said "no decided beat recorded yet" and `looop why <id>`
    # "no record for run … (kept: the newest LOOOP_RUNS_KEEP runs)".
    assert run("tick").returncode == 0
    rid = os.listdir(os.path.join(data_dir, "runs"))[0]
    with open(os.path.join(data_dir, "runs", rid, "why.json"), "w") as f:
        f.write("garbage\n")
    want = f"looop why: the record of run {rid} does not parse: {data_dir}/runs/{rid}/why.json"
    for args in ((), (rid,), ("--json", "last")):
        r = run("why", *args)
        assert (r.returncode, r.stderr.strip(), r.stdout) == (1, want, ""), (args, r)


def test_the_spend_warning_item_names_the_profile_like_every_other_item(data_dir):
    # Reproduction: in a profile other than the default, `looop inbox` said
    # `→ looop cost --by session` for the warn_daily_usd item — run as shown,
    # it reports the default profile's spend; other items carry LOOOP_DATA_DIR=.
    os.makedirs(data_dir, exist_ok=True)
    with open(os.path.join(data_dir, "looop.json"), "w") as f:
        json.dump({"default": "rules", "warn_daily_usd": 1}, f)
    assert run("_cost", "session", "w1", "rules", "1.5").returncode == 0
    assert run("tick").returncode == 0
    items = json.loads(run("inbox", "--json", check=True).stdout)
    warn = next(i for i in items if i["id"].startswith("spend-warn-"))
    assert warn["command"].startswith(f"LOOOP_DATA_DIR={data_dir} looop cost --by session"), warn


def test_kill_and_restart_name_the_session_without_the_legacy_prefix(tree):
    # Reproduction: `looop kill looop-e2` printed "looop-e2 killed" (the
    # session is e2; ls, status and the journal say e2).
    tree.start("w", "sleep 100")
    r = run("restart", "looop-w")
    assert r.returncode == 0 and r.stdout.startswith("restarted w (pid "), r
    r = run("kill", "looop-w")
    assert (r.returncode, r.stdout) == (0, "w killed\n"), r
