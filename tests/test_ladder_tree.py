"""The recovery ladder (SPEC §16) on real trees with the fake agent TUI
(tests/fakes/agent_tui.py): stuck → nudge → inbox → restart(resume) →
failed; limited → parked → resumed at the named time; the hourly restart
cap over policy and ladder restarts; a corrupt ladder state file.

Short knobs: LOOOP_WORKER_STUCK=3 (also each rung's wait), beats every
0.4 s, LOOOP_LIMIT_MARGIN=2 (the +2 min margin, shortened)."""
from __future__ import annotations

import json
import os
import sys
import time

import pytest

from conftest import Tree, ls, run, wait_until
from fakes import isolated_home, setup_fake

assert isolated_home  # autouse fixture, imported so pytest finds it
TUI = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fakes", "agent_tui.py")
STATES = {"ready": ["^│ > "], "asking": ["Do you want to proceed"], "limited": ["usage limit"],
          "working": ["esc to interrupt"]}
NUDGE = "poke-from-the-ladder"
WAIT = 3.0


def setup(d: str, tmp: str, script: str, **runner) -> tuple[str, str]:
    """The fake decider as the tick runner; the fake TUI (running `script`
    first, logging every key) as the worker, and its resume command."""
    keylog, scr = os.path.join(tmp, "keys"), os.path.join(tmp, "script")
    with open(scr, "w") as f:
        f.write(script)
    tui = f"{sys.executable} {TUI} --script {scr} --keylog {keylog}"
    setup_fake(d, os.path.join(tmp, "ctl"), interactive=f"{tui} {{{{prompt_file}}}}",
               notify_command=f"cat >> {tmp}/notified; echo >> {tmp}/notified")
    with open(os.path.join(d, "looop.json")) as f:
        cfg = json.load(f)
    cfg["runners"]["fake"].update({"states": STATES, "settle": "0.3s", "nudge": NUDGE,
                                   "resume": f"echo RESUMED-WITH $(basename {{{{prompt_file}}}}); exec {tui} "
                                             "{{prompt_file}}", **runner})
    with open(os.path.join(d, "looop.json"), "w") as f:
        json.dump(cfg, f)
    return keylog, scr


def tree(d: str, **env: str) -> Tree:
    return Tree(d, env={**os.environ, "LOOOP_INTERVAL": "0.4", "LOOOP_WORKER_STUCK": str(WAIT),
                        "LOOOP_INBOX_POLL": "0.3", **env})


def notified(tmp: str) -> list[tuple[str, str, str]]:
    """(kind, id, text) of each notify_command run."""
    try:
        with open(os.path.join(tmp, "notified")) as f:
            return [(i["kind"], i["id"], i["text"]) for i in map(json.loads, filter(str.strip, f))]
    except FileNotFoundError:
        return []


def events(d: str, name: str, sid: str | None = None) -> list[dict]:
    try:
        with open(os.path.join(d, "events.jsonl")) as f:
            evs = [json.loads(ln) for ln in f if ln.strip()]
    except FileNotFoundError:
        return []
    return [e for e in evs if e["event"] == name and (sid is None or e.get("id") == sid)]


def rungs(d: str, sid: str) -> list[str]:
    return [e["step"] for e in events(d, "ladder_step", sid)]


def keys(path: str) -> str:
    try:
        with open(path, "rb") as f:
            return f.read().decode("utf-8", "replace")
    except FileNotFoundError:
        return ""


def row(sid: str) -> dict:
    return next(r for r in ls() if r["id"] == sid)


def inbox() -> list[dict]:
    return json.loads(run("inbox", "--json", check=True).stdout)


def journal(d: str) -> str:
    with open(os.path.join(d, "journal.md")) as f:
        return f.read()


def timeline(d: str, sid: str) -> list[str]:
    """The ladder's events as `+secs event detail` from the worker's first start (for the report)."""
    with open(os.path.join(d, "events.jsonl")) as f:
        evs = [json.loads(ln) for ln in f if ln.strip()]
    mine = [e for e in evs if e.get("id") == sid and e["event"] in (
        "worker_started", "worker_state", "ladder_step", "ladder_refused", "restart_refused",
        "worker_exited", "worker_failed")]
    return [f"{e['ts']} {e['event']} " + " ".join(f"{k}={e[k]}" for k in ("step", "from", "to", "restart", "state")
                                                  if k in e) for e in mine]


@pytest.mark.timeout(120)
def test_stuck_nudge_inbox_restart_failed(data_dir, tmp_path):
    d = data_dir
    keylog, scr = setup(d, str(tmp_path), "hang\n")
    t = tree(d)
    try:
        run("start-session", "w", "the brief", "fake", check=True)
        # the same frozen agent under an explicit --command: looop does not know it, leaves it alone
        other = str(tmp_path / "keys-c")
        run("start-session", "c", "x", "--command", f"{sys.executable} {TUI} --script {scr} --keylog {other} "
            "{{prompt_file}}", check=True)
        # 1. stuck → the nudge, typed once (+ Enter), reaches the frozen agent
        wait_until(lambda: rungs(d, "w"), 30, "the first rung")
        assert rungs(d, "w") == ["nudge"]
        wait_until(lambda: NUDGE in keys(keylog) and "\r" in keys(keylog), 10, "the nudge typed into w")
        # 2. the nudge did not help → the inbox item says so
        wait_until(lambda: rungs(d, "w")[-1:] == ["raise"], 30, "the raise rung")
        item = wait_until(lambda: next((i for i in inbox() if i["kind"] == "stuck" and i["id"] == "w"
                                        and i["text"].startswith("nudge did not help")), None), 10,
                          "a stuck item saying the nudge did not help")
        assert item["command"].endswith("looop attach w")
        # 3. restart with the runner's resume command
        wait_until(lambda: rungs(d, "w")[-1:] == ["restart"], 30, "the restart rung")
        wait_until(lambda: "RESUMED-WITH w.md" in run("log", "w").stdout, 15, "the resume command ran")
        assert any(e.get("restart") for e in events(d, "worker_started", "w"))
        # 4. stuck again after the restart → failed (stopped; nothing restarts it)
        wait_until(lambda: row("w")["state"] == "failed", 30, "w failed")
        r = row("w")
        assert not r["alive"] and r["failed_reason"] == "stuck after a nudge and a restart (recovery ladder)"
        assert rungs(d, "w") == ["nudge", "raise", "restart", "fail"]
        assert keys(keylog).count(NUDGE) == 1  # once, in the whole episode
        at = [e["at"] for e in events(d, "ladder_step", "w")]
        assert all(b - a >= WAIT for a, b in zip(at, at[1:])), at  # one rung per wait, never two per beat
        j = journal(d)
        assert j.index("ladder: w is stuck — typed the nudge") < j.index("still stuck after the nudge") \
            < j.index("ladder: w still stuck — restarting it") < j.index("stuck again after a restart")
        f = next(i for i in inbox() if i["id"] == "w")
        assert f["kind"] == "failed" and "recovery ladder" in f["text"]
        prompt = os.path.join(str(tmp_path), "ctl", "last-prompt.md")
        wait_until(lambda: "- w [failed" in open(prompt).read(), 10, "the decider shown w failed")
        assert "ladder: w stuck again after a restart — stopped, state failed" in open(prompt).read()
        assert len(events(d, "worker_failed", "w")) == 1
        out = t.output()
        assert "ladder: w is stuck — typed the nudge 'poke-from-the-ladder'" in out
        time.sleep(WAIT + 1)  # a rung past `fail` would be due by now
        assert rungs(d, "w") == ["nudge", "raise", "restart", "fail"] and row("w")["state"] == "failed"
        # the notifier heard of each: stuck, raised (a new item), failed
        wait_until(lambda: [n[0] for n in notified(str(tmp_path)) if n[1] == "w"][-1:] == ["failed"], 10,
                   "the failed item notified")
        ws = [n for n in notified(str(tmp_path)) if n[1] == "w"]
        assert [k for k, _, _ in ws[:2]] == ["stuck", "stuck"] and ws[-1][0] == "failed", ws
        assert not ws[0][2].startswith("nudge did not help") and ws[1][2].startswith("nudge did not help")
        # the restarted run's stuck item is a new one too, if the notifier saw it before the last rung
        assert all(tx.startswith("nudge did not help (restarted with resume, still stuck)") for _, _, tx in ws[2:-1]), ws
        c = row("c")
        assert c["alive"] and c["activity"]["state"] == "stuck" and rungs(d, "c") == [] and keys(other) == ""
        print("\nTIMELINE stuck\n" + "\n".join(timeline(d, "w")))
    finally:
        t.stop()


@pytest.mark.timeout(120)
def test_limited_parked_then_resumed_at_the_named_time(data_dir, tmp_path):
    d = data_dir
    keylog, _ = setup(d, str(tmp_path), "limit 8\n")  # "· try again in 8 seconds"
    t = tree(d, LOOOP_LIMIT_MARGIN="2")
    try:
        run("start-session", "l", "the brief", "fake", check=True)
        wait_until(lambda: rungs(d, "l") == ["park"], 30, "l parked")
        r = row("l")
        until = r["activity"]["until"]
        from looop.pulse.ladder import epoch, hhmmss
        t_until = epoch(until)
        assert r["parked"] == {"until": until, "resume_at": t_until + 2}
        assert f"(parked → {hhmmss(t_until + 2)})" in run("ls", check=True).stdout
        assert f"parked → {hhmmss(t_until + 2)}" in run("status", check=True).stdout
        item = next(i for i in inbox() if i["id"] == "l")
        assert item["kind"] == "limited" and item["text"].endswith(
            f"(until {until}) — parked: looop resumes it at {hhmmss(t_until + 2)}")
        assert f"ladder: l hit a usage limit (until {until}) — parked, resuming it at" in journal(d)
        # parked: nothing typed, nothing restarted, until T + margin
        while time.time() < t_until + 1.5:
            assert keys(keylog) == "" and rungs(d, "l") == ["park"], "touched while parked"
            time.sleep(0.2)
        wait_until(lambda: rungs(d, "l") == ["park", "resume"], 15, "l resumed")
        resumed = events(d, "ladder_step", "l")[-1]["at"]
        assert t_until + 2 <= resumed < t_until + 2 + 3, (until, resumed)  # at T + margin, within a beat or so
        # (the step is recorded once the keys are sent; the agent reads them a moment later)
        wait_until(lambda: keys(keylog).endswith("\r"), 10, "the nudge's Enter read by l")
        assert keys(keylog) == NUDGE + "\r"  # the runner's nudge text, typed once
        wait_until(lambda: (row("l").get("activity") or {}).get("state") == "ready", 15, "l ready again")
        assert f"resumed: {NUDGE}" in run("shot", "l").stdout
        wait_until(lambda: "parked" not in row("l"), 10, "the episode over")
        assert not events(d, "worker_started", "l")[1:]  # never restarted
        print("\nTIMELINE limited\n" + "\n".join(timeline(d, "l")))
    finally:
        t.stop()


@pytest.mark.timeout(120)
def test_hourly_restart_cap_covers_policy_and_ladder_restarts(data_dir, tmp_path):
    d = data_dir
    keylog, _ = setup(d, str(tmp_path), "hang\n")
    t = tree(d, LOOOP_MAX_RESTARTS_PER_HOUR="1")
    try:
        marker = tmp_path / "once"
        # a policy restart takes the hour's only slot
        run("start-session", "p", f"[ -e {marker} ] && exec sleep 300; touch {marker}; exit 1", "--command",
            "bash {{prompt_file}}", "--restart", "transient", check=False)
        wait_until(lambda: len(events(d, "supervisor_restart", "p")) == 1 and row("p")["alive"], 20,
                   "p restarted once")
        # a ladder restart is then refused: said, journaled, in the inbox — the worker stays up
        run("start-session", "w", "the brief", "fake", check=True)
        wait_until(lambda: events(d, "restart_refused", "w"), 40, "the ladder's restart refused")
        why = "restart cap reached: 1 automatic restarts in the last hour (LOOOP_MAX_RESTARTS_PER_HOUR=1)"
        assert events(d, "restart_refused", "w")[0]["reason"] == why
        wait_until(lambda: events(d, "ladder_refused", "w"), 10, "the pulse saw the refusal")
        assert f"restart of w refused: {why}" in journal(d)
        assert f"ladder: restart of w refused: {why}" in journal(d)
        assert f"restart of w refused: {why}" in t.output()
        item = wait_until(lambda: next((i for i in inbox() if i["id"] == "w" and "restart refused" in i["text"]),
                                       None), 10, "the refusal in the inbox")
        assert item["kind"] == "stuck" and item["text"].endswith(f"— restart refused: {why}")
        assert row("w")["alive"] and not [e for e in events(d, "worker_started", "w") if e.get("restart")]
        assert rungs(d, "w") == ["nudge", "raise"]  # the refused rung is not counted as taken
        # a policy restart past the cap: failed, with the reason, never silently
        run("kill", "p", check=True)
        marker.unlink()
        run("start-session", "p2", "exit 1", "--command", "bash {{prompt_file}}", "--restart", "transient")
        wait_until(lambda: row("p2")["state"] == "failed", 20, "p2 failed at the cap")
        assert row("p2")["failed_reason"] == why
        assert f"restart of p2 refused: {why}" in journal(d)
        assert any(i["kind"] == "failed" and i["id"] == "p2" and why in i["text"] for i in inbox())
        assert not events(d, "supervisor_restart", "p2")
    finally:
        t.stop()


@pytest.mark.timeout(120)
def test_corrupt_ladder_state_is_conservative_and_rewritten(data_dir, tmp_path):
    d = data_dir
    keylog, _ = setup(d, str(tmp_path), "work 2\nhang\n")
    # the script hangs at once: stuck after LOOOP_WORKER_STUCK. 6 s (not 3)
    # so the corrupt file lands before the first rung even on a loaded box
    # (a nudge taken before it would make the rungs [nudge, …], not [raise])
    t = tree(d, LOOOP_WORKER_STUCK="6")
    try:
        run("start-session", "w", "the brief", "fake", check=True)
        # a beat that began after the start sees w (it reads its rows before the ladder file)
        began = len(events(d, "tick_start"))
        wait_until(lambda: len(events(d, "tick_start")) > began, 10, "a beat since w started")
        with open(os.path.join(d, ".ladder.json"), "w") as f:
            f.write("{not json")
        wait_until(lambda: ".ladder.json was unreadable" in t.output(), 10, "the corrupt file said")
        wait_until(lambda: rungs(d, "w"), 30, "the first rung")
        assert rungs(d, "w") == ["raise"]  # read as already nudged: nothing typed twice
        assert NUDGE not in keys(keylog)
        st = json.load(open(os.path.join(d, ".ladder.json")))
        assert st["v"] == 1 and st["workers"]["w"]["step"] == "raise"
        assert len(events(d, "ladder_corrupt")) == 1
        assert t.proc.poll() is None
    finally:
        t.stop()


@pytest.mark.timeout(120)
def test_limited_without_a_reset_time_waits_limited_retry(data_dir, tmp_path):
    d = data_dir
    keylog, _ = setup(d, str(tmp_path), "limit none\n", limited_retry="4s")
    t = tree(d, LOOOP_LIMIT_MARGIN="2")
    try:
        run("start-session", "l", "the brief", "fake", check=True)
        wait_until(lambda: rungs(d, "l") == ["park"], 30, "l parked")
        parked = events(d, "ladder_step", "l")[0]
        assert "until" not in row("l")["activity"] and "(no reset time named)" in parked["text"]
        assert row("l")["parked"]["resume_at"] == pytest.approx(parked["at"] + 4, abs=0.01)
        wait_until(lambda: rungs(d, "l") == ["park", "resume"], 15, "l resumed")
        assert events(d, "ladder_step", "l")[1]["at"] >= parked["at"] + 4
        wait_until(lambda: keys(keylog).endswith("\r"), 10, "the nudge's Enter read by l")
        assert keys(keylog) == NUDGE + "\r"
    finally:
        t.stop()


def test_doctor_names_bad_ladder_keys(data_dir, tmp_path):
    setup(data_dir, str(tmp_path), "hang\n", nudge="", limited_retry="soon", ladder="yes")
    r = run("doctor")
    line = next(ln for ln in r.stdout.splitlines() if " ladder" in ln)
    assert r.returncode == 1 and line.startswith("✗")
    assert ("runner 'fake': 'nudge' must be a non-empty string; runner 'fake': 'ladder' must be true or "
            "false; runner 'fake': 'limited_retry' 'soon' is not a positive duration") in line
