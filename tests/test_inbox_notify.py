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
        # remembered across a pulse restart: the two flags still up are not sent again
        seen = os.path.join(d, ".inbox-notified")
        wait_until(lambda: os.path.exists(seen) and len(json.load(open(seen))) == 2, 10,
                   "the two live flags remembered")
        old = t.pulse_running()["pid"]
        os.kill(old, signal.SIGKILL)
        wait_until(lambda: (p := t.pulse_running()) and p["pid"] != old, 30, "the pulse restarted")
        run("flag", "w2", "third", check=True)
        wait_until(lambda: len(lines(got)) == 5, 30, "the new flag notified")
        assert lines(got)[4].startswith("looop flag w2: third")
    finally:
        assert t.stop(signal.SIGTERM) == 0
    assert len(lines(got)) == 5  # each item exactly once (a shutdown sends nothing)


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


def test_a_dialog_is_notified_without_waiting_for_the_poll(data_dir, tmp_path):
    """A worker whose screen starts asking is notified at once (its child
    wakes the pulse's inbox watcher), not at the next `inbox_poll` — here
    60 s, so only the wake can deliver within the bound."""
    from test_activity_tree import tui_runner, wait_activity
    d = data_dir
    got = str(tmp_path / "notified")
    tui_runner(d, str(tmp_path / "ctl"), )
    cfg = json.load(open(os.path.join(d, "looop.json")))
    cfg["notify_command"] = f'read -r item; echo "$item" >> {got}'
    with open(os.path.join(d, "looop.json"), "w") as f:
        json.dump(cfg, f)
    t = Tree(d, env={**os.environ, "LOOOP_INBOX_POLL": "60"})
    try:
        run("start-session", "p1", "b", "fake", check=True)
        wait_activity("p1", "ready")
        run("send", "p1", "ask", check=True)
        wait_activity("p1", "asking")
        wait_until(lambda: lines(got), 10, "the asking worker notified")
        item = json.loads(lines(got)[0])
        assert (item["kind"], item["id"], item["text"]) == ("asking", "p1", "Do you want to proceed? (y/n)")
    finally:
        assert t.stop(signal.SIGTERM) == 0
    assert len(lines(got)) == 1


def test_a_hanging_and_a_flooding_notifier_through_the_live_pulse(data_dir, tmp_path):
    """notify_command hangs for one item and prints 10 MB for the other:
    one warning line for the hang (its group killed at LOOOP_NOTIFY_TIMEOUT),
    the flood drained and dropped, both asks still pending and answerable,
    the pulse still beating, nothing left running."""
    d = data_dir
    pids, done = str(tmp_path / "pids"), str(tmp_path / "done")
    setup_fake(d, str(tmp_path / "ctl"), notify_command=(
        f'read -r item; case "$item" in *"please hang"*) sleep 300 & echo $! >> {pids}; wait;; '
        f"*) head -c 10000000 /dev/zero | tr '\\0' x; echo flood >> {done};; esac"))
    t = Tree(d, env={**os.environ, "LOOOP_INBOX_POLL": "0.2", "LOOOP_NOTIFY_TIMEOUT": "1"})
    try:
        t.start("h1", '"$LOOOP_BIN" ask "please hang"; sleep 100\n')
        wait_until(lambda: lines(pids), 15, "the hanging notifier")
        wait_until(lambda: "notify_command failed for ask h1-1: killed after 1s" in t.output(), 15,
                   "the hang's warning line")
        wait_gone([int(x) for x in lines(pids)], 10, "the hanging notifier's sleep gone")
        t.start("h2", '"$LOOOP_BIN" ask "flood me"; sleep 100\n')
        wait_until(lambda: lines(done) == ["flood"], 30, "the flooding notifier done")
        out = t.output()
        assert out.count("notify_command failed") == 1 and "xxxxxxxxxx" not in out
        assert [ln for ln in out.splitlines() if "notify_command failed" in ln][0].count("\n") == 0
        for aid, text in (("h1-1", "ok"), ("h2-1", "fine")):
            assert run("answer", aid, text, check=True).stdout == f"answered {aid}\n"
        assert t.pulse_running()
    finally:
        assert t.stop(signal.SIGTERM) == 0


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


def test_the_beats_sweep_never_takes_a_notifier_command_being_started(tmp_path):
    """The pulse's sweep (after every beat) and the notifier thread's start
    of a command race: a command forked but not yet in `spawned` was killed
    as a leftover (its item then counted as notified: never sent). Sweeps
    in a tight loop beside 20 notifications: every one runs to its end."""
    import threading

    from looop.pulse import loop, runner
    w = notifier.Watcher(str(tmp_path), None, dict(os.environ))
    results: list[notifier.Result] = []
    done = threading.Event()

    def notify() -> None:
        for _ in range(20):
            results.append(notifier.run("sleep 0.05", ITEM, cwd=str(tmp_path), env=dict(os.environ),
                                        timeout=5.0, spawned=w.spawned))
        done.set()

    threading.Thread(target=notify, daemon=True).start()
    old, loop._WATCHER = loop._WATCHER, w
    try:
        while not done.wait(0.001):
            loop.sweep_leftovers()
    finally:
        loop._WATCHER = old
    assert [r.code for r in results] == [0] * 20
