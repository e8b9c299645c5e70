"""notify_command: once per new inbox item from the live pulse, killed with
its whole group at the deadline, a 10 MB printer drained safely, failures
logged and never fatal."""
from __future__ import annotations

import json
import os
import signal
import sys
import time

from conftest import Tree, alive, run, wait_gone, wait_until
from fakes import isolated_home, setup_fake

from looop.pulse import notifier

assert isolated_home

ITEM = {"kind": "ask", "id": "w-1", "session": "w", "age_s": 0, "text": "ok?",
        "command": "looop answer w-1 <answer>"}


def lines(path: str) -> list[str]:
    try:
        with open(path) as f:
            return f.read().splitlines()
    except FileNotFoundError:
        return []


def test_once_per_item_from_the_live_pulse(data_dir, tmp_path):
    d = data_dir
    got = str(tmp_path / "notified")
    setup_fake(d, str(tmp_path / "ctl"),
               notify_command=f'read -r item; echo "$LOOOP_NOTIFY_TEXT|$item" >> {got}')
    t = Tree(d, env={**os.environ, "LOOOP_INBOX_POLL": "0.2"})
    try:
        t.start("w1", '"$LOOOP_BIN" ask "which branch?"; sleep 100\n')
        wait_until(lambda: len(lines(got)) == 1, 30, "the ask notified")
        text, item = lines(got)[0].split("|", 1)
        assert text == f"looop ask w1: which branch? — LOOOP_DATA_DIR={d} looop answer w1-1 <answer>"
        assert json.loads(item)["id"] == "w1-1" and set(json.loads(item)) == set(ITEM)
        t.start("w2", "sleep 100\n")
        run("flag", "w2", "look", check=True)
        wait_until(lambda: len(lines(got)) == 2, 30, "the flag notified")
        run("flag", "w2", "look again", check=True)  # a new question on the flag: news
        wait_until(lambda: len(lines(got)) == 3, 30, "the new flag note notified")
        run("answer", "w1-1", "main", check=True)
        run("flag", "w1", "done?", check=True)
        wait_until(lambda: len(lines(got)) == 4, 30, "a fourth item")
        kinds = [json.loads(ln.split("|", 1)[1])["kind"] for ln in lines(got)]
        assert kinds == ["ask", "flag", "flag", "flag"]
        assert [ln.split("|")[0].split(":")[0] for ln in lines(got)] == \
            ["looop ask w1", "looop flag w2", "looop flag w2", "looop flag w1"]
    finally:
        assert t.stop(signal.SIGTERM) == 0
    assert len(lines(got)) == 4  # each item exactly once
    assert json.load(open(os.path.join(d, ".inbox-notified")))  # remembered across pulse restarts


def test_a_hanging_notifier_is_killed_with_its_group(tmp_path):
    pids = str(tmp_path / "pids")
    r = notifier.run(f"echo $$ > {pids}; sleep 300 & echo $! >> {pids}; setsid sleep 300 & echo $! >> {pids}; wait",
                     ITEM, cwd=str(tmp_path), env=dict(os.environ), timeout=1.0)
    assert r.timed_out and r.code is None and 1.0 <= r.secs < 4
    got = [int(x) for x in lines(pids)]
    assert len(got) == 3
    wait_gone(got, 5, "the notifier's group gone")


def test_a_ten_megabyte_printer_is_drained_and_capped(tmp_path):
    r = notifier.run("head -c 10000000 /dev/zero | tr '\\0' x; echo; exit 3", ITEM,
                     cwd=str(tmp_path), env=dict(os.environ), timeout=20)
    assert (r.code, r.timed_out) == (3, False) and len(r.out) == notifier.KEEP


def test_failures_are_one_line_and_never_fatal(data_dir, tmp_path):
    d = data_dir
    fake = setup_fake(d, str(tmp_path / "ctl"), notify_command="echo 'no phone here' >&2; exit 7")
    from looop.store import asks
    os.makedirs(os.path.join(d, "sessions", "w"), exist_ok=True)  # the asker's session
    asks.create(d, "w", "q?")
    fake.queue({"action": "noop", "reason": "r"})
    r = run("tick", env={**os.environ, "LOOOP_NOTIFY_TIMEOUT": "1"})
    assert r.returncode == 0, r.stdout + r.stderr
    assert "⚡ notify_command failed for ask w-1: exit 7 · no phone here" in r.stdout
    r = run("tick")  # the same item is not retried
    assert "notify_command" not in r.stdout
    ev = [json.loads(ln) for ln in open(os.path.join(d, "events.jsonl"))]
    assert [e["code"] for e in ev if e["event"] == "notify_failed"] == [7]


def test_new_items_is_pure():
    a, b = dict(ITEM), dict(ITEM, id="w-2")
    f1 = dict(ITEM, kind="flag", id="w", text="x")
    assert notifier.new_items([a, b, f1], {notifier.key(a)}) == [b, f1]
    assert notifier.new_items([dict(f1, text="y")], {notifier.key(f1)}) == [dict(f1, text="y")]
    assert notifier.key(dict(a, age_s=99)) == notifier.key(a)
    assert "\n" not in notifier.notify_text(dict(ITEM, text="a\nb"))
    assert sys.executable


def test_a_new_ask_wakes_the_sleeping_pulse(data_dir, tmp_path):
    d = data_dir
    fake = setup_fake(d, str(tmp_path / "ctl"))
    t = Tree(d)  # LOOOP_INTERVAL=3600: only a wake makes it beat again
    try:
        wait_until(lambda: len(fake.calls()) == 1 and "next beat in" in t.output(), 30, "the first beat")
        from looop.store import asks
        os.makedirs(os.path.join(d, "sessions", "w"), exist_ok=True)  # the asker's session
        asks.create(d, "w", "shall I?")
        wait_until(lambda: len(fake.calls()) == 2, 30, "a beat woken by the ask")
        assert "=== PENDING ASKS ===\n- w-1 from w" in fake.prompt()
    finally:
        assert t.stop(signal.SIGTERM) == 0


def test_status_carries_the_inbox_count(data_dir, tmp_path):
    from test_service_notify import FakeSystemd, env_with

    from looop.store import asks
    setup_fake(data_dir, str(tmp_path / "ctl"))
    os.makedirs(os.path.join(data_dir, "sessions", "w"), exist_ok=True)  # the asker's session
    asks.create(data_dir, "w", "one?")
    asks.create(data_dir, "w", "two?")
    path = str(tmp_path / "notify.sock")
    sd = FakeSystemd(path)
    try:
        t = Tree(data_dir, env=env_with(NOTIFY_SOCKET=path))
        sd.wait_for(lambda m: m.startswith("STATUS=inbox 2 · "), 30, "STATUS=inbox 2 · …")
        assert t.stop(signal.SIGTERM) == 0
    finally:
        sd.close()


def _runs(pid: int) -> int:
    """Times the process's main thread was scheduled in (/proc schedstat)."""
    with open(f"/proc/{pid}/task/{pid}/schedstat") as f:
        return int(f.read().split()[2])


def test_a_sleeping_pulse_does_not_poll(data_dir, tmp_path):
    """Idle cost (issue 15): between beats the pulse's main thread waits on
    its link and the notifier's wake pipe, never on a 1 s timer: 4 s of
    sleep, at most one wake (it was one a second)."""
    import psutil
    fake = setup_fake(data_dir, str(tmp_path / "ctl"))
    t = Tree(data_dir)  # LOOOP_INTERVAL=3600
    try:
        wait_until(lambda: len(fake.calls()) == 1 and "next beat in" in t.output(), 30, "the first beat")
        child = next(c for c in psutil.Process(t.pid).children()
                     if " ".join(c.cmdline()).startswith("looop: pulse"))
        cmd = child.children()[0].pid
        time.sleep(0.5)
        before = _runs(cmd)
        time.sleep(4)
        assert _runs(cmd) - before <= 1
        assert len(fake.calls()) == 1
    finally:
        assert t.stop(signal.SIGTERM) == 0
