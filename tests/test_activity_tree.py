"""Activity of live workers through real trees (SPEC §15): the fake agent TUI
(tests/fakes/agent_tui.py) driven through every state, and the bad input."""
from __future__ import annotations

import json
import os

from conftest import run


def write_config(d: str, cfg: dict) -> None:
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "looop.json"), "w") as f:
        json.dump(cfg, f)


def test_doctor_names_runner_state_and_index_of_a_bad_regex(data_dir):
    write_config(data_dir, {"default": "rules", "runners": {
        "fake": {"tick": "true", "interactive": "x {{prompt_file}}",
                 "states": {"ready": ["ok", "(unclosed"]}}}})
    r = run("doctor")
    assert r.returncode == 1
    line = next(ln for ln in r.stdout.splitlines() if " states" in ln)
    assert line.startswith("✗") and "runner 'fake': states.ready[1] '(unclosed' is not a valid regex" in line
    write_config(data_dir, {"default": "rules", "runners": {
        "fake": {"tick": "true", "interactive": "x {{prompt_file}}", "states": {"idle": ["x"]}}}})
    line = next(ln for ln in run("doctor").stdout.splitlines() if " states" in ln)
    assert "unknown state 'idle'" in line
    write_config(data_dir, {"default": "rules"})
    r = run("doctor")
    line = next(ln for ln in r.stdout.splitlines() if " states" in ln)
    assert line.startswith("✓") and "activity patterns compile" in line


# -- the fake agent TUI through every state ------------------------------------

import sys  # noqa: E402

from conftest import Tree, ls, wait_until  # noqa: E402
from fakes import isolated_home, setup_fake  # noqa: E402

assert isolated_home  # autouse fixture, imported so pytest finds it
TUI = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fakes", "agent_tui.py")
STATES = {"ready": ["^│ > "], "asking": ["Do you want to proceed"], "limited": ["usage limit"],
          "working": ["esc to interrupt"]}


def tui_runner(d: str, ctl: str, **extra) -> "object":
    """The fake decider as the tick runner, the fake TUI as the worker, with
    the test's patterns (not the real presets) and a short settle."""
    fake = setup_fake(d, ctl, interactive=f"{sys.executable} {TUI} {{{{prompt_file}}}}")
    with open(os.path.join(d, "looop.json")) as f:
        cfg = json.load(f)
    cfg["runners"]["fake"].update(states=STATES, settle="0.3s", **extra)
    write_config(d, cfg)
    return fake


def activity(sid: str) -> dict:
    return next((r.get("activity") or {}) for r in ls() if r["id"] == sid)


def wait_activity(sid: str, state: str, timeout: float = 15) -> dict:
    return wait_until(lambda: (a := activity(sid)).get("state") == state and a, timeout,
                      f"{sid} to be {state} (now {activity(sid)})")


def events(d: str, name: str) -> list[dict]:
    try:
        with open(os.path.join(d, "events.jsonl")) as f:
            return [e for e in map(json.loads, f) if e["event"] == name]
    except FileNotFoundError:
        return []


def test_fake_tui_through_every_state(data_dir, tmp_path):
    d = data_dir
    fake = tui_runner(d, str(tmp_path / "ctl"))
    t = Tree(d, env={**os.environ, "LOOOP_INTERVAL": "0.3", "LOOOP_WORKER_STUCK": "2"})
    try:
        _every_state(d, t, fake)
    finally:
        t.stop()


def _every_state(d: str, t: Tree, fake) -> None:
    run("start-session", "w1", "the brief", "fake", check=True)
    a = wait_activity("w1", "ready")
    assert a["evidence"] == {"source": "screen", "pattern": "ready[0]", "line": 6, "text": "│ >"}
    assert a["since"].endswith("Z") and a["quiet_s"] >= 0

    def settled_calls() -> int:
        """Runner calls once the pulse has seen the world unchanged twice since now."""
        seen = len(events(d, "world_unchanged"))
        wait_until(lambda: len(events(d, "world_unchanged")) >= seen + 2, 15, "two unchanged beats")
        return len(fake.calls())

    calls = settled_calls()

    def step(keys: list[str], state: str, transitions: int = 1, **ev) -> dict:
        """Type, wait for `state`, and count one decider call per transition."""
        nonlocal calls
        if keys:
            run(*keys, check=True)
        a = wait_activity("w1", state)
        for k, v in ev.items():
            assert a["evidence"].get(k) == v, a
        now = settled_calls()
        assert now == calls + transitions, f"decider calls on the way to {state}: {now - calls}"
        calls = now
        return a

    a = step(["send", "w1", "ask"], "asking", source="screen", pattern="asking[0]",
             text="Do you want to proceed? (y/n)")
    wait_until(lambda: f"? w1: asking — Do you want to proceed? (y/n) — LOOOP_DATA_DIR={d} looop attach w1"
               in t.output(), 10, "NEEDS YOU to list the asking worker")
    step(["send", "-n", "w1", "y"], "ready", source="screen")
    a = step(["send", "w1", "limit"], "limited", source="screen", pattern="limited[0]")
    assert a["until"].endswith("T15:00:00Z") or a["until"]  # local 3pm, in UTC
    wait_until(lambda: "? w1: limited until" in t.output(), 10, "NEEDS YOU to list the limited worker")
    step(["send", "w1", "work", "3"], "working")
    step([], "ready", source="screen")
    # a frozen spinner: working on the screen, then stuck after LOOOP_WORKER_STUCK
    step(["send", "w1", "hang"], "stuck", transitions=2, source="screen", pattern="working[0]")
    wait_until(lambda: "? w1: stuck — " in t.output(), 10, "NEEDS YOU to list the stuck worker")
    a = step(["_event", "w1", "ready", "Stop", "hook"], "ready", source="event", text="Stop hook")
    prompt = fake.prompt()
    assert "- w1 [running · ready, quiet " in prompt and "    evidence: event: Stop hook" in prompt
    seq = [(e["from"], e["to"]) for e in events(d, "worker_state") if e["id"] == "w1"]
    assert seq[0] == ("starting", "ready")
    for want in [("ready", "asking"), ("asking", "ready"), ("ready", "limited"), ("limited", "working"),
                 ("working", "ready"), ("stuck", "ready")]:
        assert want in seq, (want, seq)
    assert seq.index(("ready", "asking")) < seq.index(("ready", "limited")) < seq.index(("stuck", "ready"))
    assert any(to == "stuck" for _, to in seq)


def test_event_bad_input(tree, data_dir, tmp_path):
    tui_runner(data_dir, str(tmp_path / "ctl"))
    r = run("_event", "nobody", "ready")
    assert r.returncode == 1 and "looop _event: no session 'nobody'" in r.stderr
    run("start-session", "w2", "b", "fake", check=True)
    wait_activity("w2", "ready")
    r = run("_event", "w2", "thinking")
    assert r.returncode == 1
    assert r.stderr.strip() == ("looop _event: unknown state 'thinking' "
                                "(known: working, ready, asking, limited, stuck)")
    assert activity("w2")["state"] == "ready"


def test_a_bad_regex_refuses_the_start_and_loses_nothing(tree, data_dir, tmp_path):
    tui_runner(data_dir, str(tmp_path / "ctl"))
    with open(os.path.join(data_dir, "looop.json")) as f:
        cfg = json.load(f)
    cfg["runners"]["fake"]["states"] = {"asking": ["[y/n"]}
    write_config(data_dir, cfg)
    r = run("start-session", "w3", "b", "fake")
    assert r.returncode == 1
    assert "looop start-session: runner 'fake': states.asking[0] '[y/n' is not a valid regex" in r.stderr
    assert not any(x["id"] == "w3" for x in ls())


def test_a_pending_ask_is_the_strongest_evidence(tree, data_dir):
    tree.start("w4", 'answer=$("$LOOOP_BIN" ask "which branch?"); echo "got $answer"; exec sleep 300')
    a = wait_activity("w4", "asking")
    assert a["evidence"] == {"source": "ask", "text": "which branch?"}
    run("answer", "w4-1", "main", check=True)
    wait_until(lambda: "got main" in run("log", "w4").stdout, 10, "the answer delivered")
    a = wait_activity("w4", "ready")
    assert a["evidence"]["source"] == "timing"


# -- steering that checks it landed ---------------------------------------------

def test_send_verify_wait_until_and_expect_past_the_echo(tree, data_dir, tmp_path):
    tui_runner(data_dir, str(tmp_path / "ctl"))
    run("start-session", "s1", "b", "fake", check=True)
    assert run("wait", "s1", "--until", "ready", "--timeout", "15s").returncode == 0
    r = run("send", "s1", "--verify", "--json", "ping", "42", check=True)
    assert json.loads(r.stdout) == {"ok": True, "delivered": True, "echoed": True, "activity_after": "ready"}
    # the fake drew it bracketed (mode 2004) and answered; expect finds the answer...
    run("expect", "s1", r"answered: ping", "--timeout", "10s", check=True)
    # ...on the screen too, where the input box no longer holds the text
    assert run("expect", "s1", "ping 42", "--screen", "--timeout", "5s", check=True).returncode == 0
    # wait --until a state, and its timeout
    run("send", "s1", "work", "3", check=True)
    assert run("wait", "s1", "--until", "working", "--timeout", "10s").returncode == 0
    r = run("wait", "s1", "--until", "asking", "--timeout", "300ms")
    assert r.returncode == 124 and "looop wait: s1 is working, not asking, after 300ms" in r.stderr
    assert run("wait", "s1", "--until", "ready", "--timeout", "15s").returncode == 0
    # a program that ignores its input: not accepted, one line, exit 1
    run("send", "s1", "deaf", check=True)
    r = run("send", "s1", "--verify", "--timeout", "1s", "hello?")
    assert r.returncode == 1
    assert r.stderr.strip() == "looop send: input not accepted by s1 (screen unchanged after 1s)"
    r = run("wait", "s1", "--until", "thinking")
    assert r.returncode == 1 and r.stderr.strip() == (
        "looop wait: unknown --until 'thinking' (one of: ready, asking, working, limited, stuck, exit)")


def test_expect_right_after_send_skips_the_echo(tree, data_dir):
    tree.start("e1", "exec sleep 300")          # the tty echoes; nothing answers
    run("send", "e1", "marker-123", check=True)
    r = run("expect", "e1", "marker-123", "--timeout", "500ms")
    assert r.returncode == 124, r.stdout          # only the echo holds it
    r = run("expect", "e1", "marker-123", "--screen", "--timeout", "500ms")
    assert r.returncode == 124, r.stdout
    tree.start("e2", 'while read -r l; do echo "re:$l"; done')
    run("send", "e2", "abc", check=True)
    assert run("expect", "e2", "^re:abc", "--timeout", "10s", check=True).stdout.strip() == "re:abc"
    assert run("expect", "e2", "abc", "--timeout", "10s", check=True).returncode == 0  # the answer has it


def test_claude_preset_wires_its_hooks_to_looop_event(data_dir, tmp_path, monkeypatch):
    """A stand-in `claude` on PATH runs the preset's --settings hooks the way
    Claude Code would (a shell command, the worker's environment): the
    permission_prompt Notification makes the worker asking, Stop ready."""
    home = os.environ["HOME"]                   # the test's empty HOME: workers run `bash -l`,
    bin_dir = os.path.join(home, "bin")         # whose profile sets PATH afresh
    os.makedirs(bin_dir)
    with open(os.path.join(home, ".profile"), "w") as f:
        f.write(f'PATH="{bin_dir}:$PATH"\n')
    from pathlib import Path
    fake = Path(bin_dir) / "claude"
    fake.write_text(f"""#!{sys.executable}
import json, subprocess, sys, time
hooks = json.loads(sys.argv[sys.argv.index("--settings") + 1])["hooks"]
def fire(event, matcher=None):
    for group in hooks[event]:
        if matcher in (None, group.get("matcher")):
            for h in group["hooks"]:
                subprocess.run(["sh", "-c", h["command"]], check=True)
print("fake claude up", flush=True)
fire("Notification", "permission_prompt")
sys.stdin.readline()
fire("Stop")
time.sleep(300)
""")
    fake.chmod(0o755)
    write_config(data_dir, {"default": "rules"})
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")  # start-session checks it
    t = Tree(data_dir)
    try:
        run("start-session", "c1", "the brief", "claude", check=True)
        a = wait_activity("c1", "asking")
        assert a["evidence"] == {"source": "event", "text": "permission_prompt"}
        run("send", "c1", "y", check=True)
        a = wait_activity("c1", "ready")
        assert a["evidence"] == {"source": "event", "text": "Stop"}
    finally:
        t.stop()


def test_a_silent_worker_leaves_starting_then_gets_stuck(data_dir):
    """A worker that prints nothing: `starting` for LOOOP_WORKER_STARTING,
    then `working` (nothing drawn, so no prompt to be ready at), then
    `stuck` once quiet since its start for LOOOP_WORKER_STUCK — without a
    single byte of output to trigger a look."""
    t = Tree(data_dir, env={**os.environ, "LOOOP_WORKER_STARTING": "1.5", "LOOOP_WORKER_STUCK": "6"})
    try:
        t.start("q1", "exec sleep 1000")
        a = wait_activity("q1", "working", timeout=10)
        assert a["evidence"]["source"] == "timing" and "no output since its start" in a["evidence"]["text"]
        a = wait_activity("q1", "stuck", timeout=15)
        assert a["evidence"]["source"] == "timing"
        assert run("log", "q1").stdout == ""                  # it really printed nothing
        seq = [(e["from"], e["to"]) for e in events(data_dir, "worker_state") if e["id"] == "q1"]
        assert seq == [("starting", "working"), ("working", "stuck")], seq
    finally:
        t.stop()


def test_a_quiet_workers_ask_answer_and_flag_show_without_output(data_dir):
    """`looop ask`, `looop answer`, `flag` and `unflag` nudge the worker's
    child: its activity moves at once, though the worker prints nothing
    (stderr of the ask discarded, the answer captured) — no output, and
    with LOOOP_WORKER_STARTING long, no deadline that would look anyway."""
    d = data_dir
    t = Tree(d, env={**os.environ, "LOOOP_WORKER_STARTING": "600"})
    try:
        t.start("k1", 'a=$("$LOOOP_BIN" ask "q?" 2>/dev/null); exec sleep 300')
        wait_until(lambda: os.path.exists(os.path.join(d, "asks", "k1-1.json")), 10, "the ask file")
        a = wait_activity("k1", "asking", timeout=10)
        assert a["evidence"] == {"source": "ask", "text": "q?"}
        run("answer", "k1-1", "yes", check=True)
        wait_until(lambda: activity("k1")["state"] != "asking", 10, "k1 to leave asking")
        assert activity("k1")["state"] == "starting"   # still nothing printed, well within STARTING
        run("flag", "k1", "look", check=True)
        assert wait_activity("k1", "asking", timeout=10)["evidence"] == {"source": "flag", "text": "look"}
        run("unflag", "k1", check=True)
        wait_activity("k1", "starting", timeout=10)
        assert run("log", "k1").stdout == ""
        seq = [(e["from"], e["to"]) for e in events(d, "worker_state") if e["id"] == "k1"]
        assert seq == [("starting", "asking"), ("asking", "starting")] * 2, seq
    finally:
        t.stop()


def test_the_deciders_answer_moves_a_quiet_worker_out_of_asking(data_dir, tmp_path):
    """`answer_ask` by the decider nudges the worker over the pulse's link,
    as `looop answer` does over the control socket."""
    from fakes import bump_world
    d = data_dir
    fake = setup_fake(d, str(tmp_path / "ctl"))
    with open(os.path.join(d, "PLAYBOOK.md"), "w") as f:
        f.write("- answer_ask: allowed\n")
    t = Tree(d, env={**os.environ, "LOOOP_INTERVAL": "0.3", "LOOOP_WORKER_STARTING": "600"})
    try:
        t.start("k2", 'a=$("$LOOOP_BIN" ask "deploy?" 2>/dev/null); exec sleep 300')
        wait_activity("k2", "asking", timeout=10)
        fake.queue({"action": "answer_ask", "id": "k2-1", "answer": "yes"})
        bump_world(d)
        wait_until(lambda: os.path.exists(os.path.join(d, "answers", "k2-1.json")), 15, "the answer")
        wait_until(lambda: activity("k2")["state"] != "asking", 10, "k2 to leave asking")
        assert activity("k2")["state"] == "starting" and run("log", "k2").stdout == ""
    finally:
        t.stop()


def test_inbox_and_notify_once_per_activity_item(data_dir, tmp_path):
    """The fake TUI asking, limited, then stuck: each an inbox item with the
    command that answers it (`looop attach`), each notified exactly once —
    a later flag, notified too, proves the checks in between sent nothing
    again while the stuck item stayed."""
    d = data_dir
    got = str(tmp_path / "notified")
    tui_runner(d, str(tmp_path / "ctl"))
    cfg = json.load(open(os.path.join(d, "looop.json")))
    cfg["notify_command"] = f'read -r item; echo "$item" >> {got}'
    write_config(d, cfg)
    t = Tree(d, env={**os.environ, "LOOOP_INBOX_POLL": "0.2", "LOOOP_WORKER_STUCK": "2"})

    def notified() -> list[dict]:
        try:
            with open(got) as f:
                return [json.loads(ln) for ln in f]
        except FileNotFoundError:
            return []

    def inbox_item(kind: str) -> dict:
        return wait_until(lambda: next((i for i in json.loads(run("inbox", "--json", check=True).stdout)
                                        if i["kind"] == kind), None), 15, f"a {kind} item in the inbox")
    try:
        run("start-session", "n1", "b", "fake", check=True)
        wait_activity("n1", "ready")
        attach = f"LOOOP_DATA_DIR={d} looop attach n1"
        run("send", "n1", "ask", check=True)
        it = inbox_item("asking")
        assert (it["id"], it["session"], it["text"], it["command"]) == \
            ("n1", "n1", "Do you want to proceed? (y/n)", attach)
        wait_until(lambda: len(notified()) == 1, 10, "the asking item notified")
        run("send", "-n", "n1", "y", check=True)
        wait_activity("n1", "ready")
        run("send", "n1", "limit", check=True)
        it = inbox_item("limited")
        assert it["command"] == attach and it["text"].startswith("You've hit your usage limit · resets 3pm (until ")
        wait_until(lambda: len(notified()) == 2, 10, "the limited item notified")
        run("send", "n1", "work", "1", check=True)
        wait_activity("n1", "ready")
        run("send", "n1", "hang", check=True)
        it = inbox_item("stuck")
        assert it["command"] == attach and "frozen" in it["text"]
        wait_until(lambda: len(notified()) == 3, 10, "the stuck item notified")
        run("flag", "n1", "still there?", check=True)
        wait_until(lambda: len(notified()) == 4, 10, "the flag notified")
        assert [(n["kind"], n["id"]) for n in notified()] == \
            [("asking", "n1"), ("limited", "n1"), ("stuck", "n1"), ("flag", "n1")]
    finally:
        t.stop()


def test_a_steer_the_worker_ignores_is_journaled_as_failed(data_dir, tmp_path):
    """steer_session goes the verified way: a program that takes no input
    makes the move fail, in the journal, with the one-line reason."""
    from fakes import bump_world, read
    d = data_dir
    fake = tui_runner(d, str(tmp_path / "ctl"))
    t = Tree(d, env={**os.environ, "LOOOP_INTERVAL": "0.3"})
    try:
        run("start-session", "v1", "b", "fake", check=True)
        wait_activity("v1", "ready")
        fake.queue({"action": "steer_session", "id": "v1", "input": "status?"})
        bump_world(d)
        wait_until(lambda: "steered v1: status? (accepted, echoed, now ready)" in read(d, "journal.md"),
                   30, "the accepted steer in the journal")
        run("send", "v1", "deaf", check=True)
        # its echo drawn: the Enter after it (deaf from then on) is already in
        # the PTY, ahead of anything the steer types — and nothing draws again
        wait_until(lambda: "│ > deaf" in run("shot", "v1").stdout, 10, "the echo of `deaf`")
        fake.queue({"action": "steer_session", "id": "v1", "input": "hello?"})
        bump_world(d)
        wait_until(lambda: "failed steer_session: input not accepted by v1 (screen unchanged after 5s)"
                   in read(d, "journal.md"), 40, "the refused steer in the journal")
        assert t.proc.poll() is None
    finally:
        t.stop()
