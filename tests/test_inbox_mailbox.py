"""The mailbox end to end (SPEC §15 Inbox): ask/answer/tell/told inside real
workers, stranded asks, racing answers, and bad input — one line each."""
from __future__ import annotations

import json
import os
import subprocess

import psutil

from conftest import BIN, run, wait_until

ASKER = ('ans=$("$LOOOP_BIN" ask --options main,dev "which branch?"); echo "ANS=[$ans]"\n'
         'while true; do m=$("$LOOOP_BIN" told); [ -n "$m" ] && echo "TOLD=$m"; sleep 0.1; done\n')


def log_has(d: str, sid: str, text: str) -> bool:
    try:
        with open(os.path.join(d, "sessions", sid, "output.log"), "rb") as f:
            return text.encode() in f.read()
    except FileNotFoundError:
        return False


def inbox() -> list[dict]:
    return json.loads(run("inbox", "--json", check=True).stdout)


def one_line_error(r, verb: str) -> str:
    assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
    assert r.stderr.startswith(f"looop {verb}: ") and r.stderr.count("\n") == 1, r.stderr
    return r.stderr


def test_ask_answer_tell_inside_a_worker(tree):
    d = tree.d
    tree.start("w1", ASKER)
    items = wait_until(lambda: [i for i in inbox() if i["kind"] == "ask"], 10, "the ask in the inbox")
    assert items == [{"kind": "ask", "id": "w1-1", "session": "w1", "age_s": items[0]["age_s"],
                      "text": "which branch? [main/dev]",
                      "command": f"LOOOP_DATA_DIR={d} looop answer w1-1 <answer>"}]
    rec = json.load(open(os.path.join(d, "asks", "w1-1.json")))
    assert rec["v"] == 1 and rec["worker"] == "w1" and rec["options"] == ["main", "dev"]
    assert psutil.Process(rec["pid"]).create_time() == rec["pid_started"]
    run("flag", "w1", "look at me", check=True)
    got = wait_until(lambda: [(i["kind"], i["id"], i["text"], i["command"]) for i in inbox()
                              if i["kind"] == "flag"], 10, "the flag in the inbox")
    assert got == [("flag", "w1", "look at me", f"LOOOP_DATA_DIR={d} looop attach w1")]
    assert "→ LOOOP_DATA_DIR=" in run("inbox", check=True).stdout
    run("unflag", "w1", check=True)
    one_line_error(run("answer", "w1-1", "staging"), "answer")  # not an option: nothing written
    assert run("answer", "w1-1", "main", check=True).stdout == "answered w1-1\n"
    wait_until(lambda: log_has(d, "w1", "ANS=[main]"), 10, "the answer on the worker's stdout")
    wait_until(lambda: os.path.exists(os.path.join(d, "asks", "done", "w1-1.json")), 5, "delivery")
    assert inbox() == []
    err = one_line_error(run("answer", "w1-1", "dev"), "answer")
    assert "already answered" in err

    run("tell", "w1", "hello", "there", check=True)
    wait_until(lambda: log_has(d, "w1", "TOLD=hello there"), 10, "the tell delivered")
    run("tell", "w1", "second", check=True)
    wait_until(lambda: log_has(d, "w1", "TOLD=second"), 10, "the second tell")
    assert os.listdir(os.path.join(d, "tells", "consumed")) and \
        sorted(os.listdir(os.path.join(d, "tells", "consumed"))) == ["w1-1.json", "w1-2.json"]
    with open(os.path.join(d, "sessions", "w1", "output.log"), "rb") as f:
        assert f.read().count(b"TOLD=") == 2  # each delivered once
    run("kill", "w1", check=True)
    err = one_line_error(run("tell", "w1", "anyone?"), "tell")
    assert "not running" in err and "nothing sent" in err
    assert sorted(os.listdir(os.path.join(d, "tells"))) == ["consumed"]


def test_a_killed_askers_ask_is_stranded_and_resumable(tree):
    d = tree.d
    tree.start("w2", '"$LOOOP_BIN" ask "deploy now?"; sleep 100\n')
    wait_until(lambda: [i for i in inbox() if i["id"] == "w2-1"], 10, "the ask")
    assert inbox()[0]["text"] == "deploy now?"
    run("kill", "w2", check=True)
    wait_until(lambda: inbox() and inbox()[0]["text"] == "stranded: deploy now?", 10, "stranded")
    # answered while nobody waits: the same question asked again returns it at once
    run("answer", "w2-1", "yes", check=True)
    env = {**os.environ, "LOOOP_SESSION_ID": "w2"}
    r = subprocess.run([BIN, "ask", "--timeout", "5s", "deploy now?"], env=env,
                       capture_output=True, text=True, timeout=20)
    assert (r.returncode, r.stdout) == (0, "yes\n")
    assert os.listdir(os.path.join(d, "asks", "done")) == ["w2-1.json"]


def test_two_concurrent_answers_one_wins(data_dir):
    from looop.store import asks
    d = data_dir
    for i in range(6):
        asks.create(d, "w", f"q{i}")
    procs = [(aid, who, subprocess.Popen([BIN, "answer", aid, who], stdout=subprocess.PIPE,
                                         stderr=subprocess.PIPE, text=True))
             for aid in (f"w-{i}" for i in range(1, 7)) for who in ("alice", "bob")]
    won: dict[str, list[str]] = {}
    for aid, who, p in procs:
        out, err = p.communicate(timeout=20)
        if p.returncode == 0:
            won.setdefault(aid, []).append(who)
        else:
            assert err == f"looop answer: ask {aid} is already answered (--force overwrites)\n"
    assert sorted(won) == [f"w-{i}" for i in range(1, 7)] and all(len(v) == 1 for v in won.values())
    for aid, (who,) in won.items():
        assert asks.read_answer(d, aid)["answer"] == who
    assert run("answer", "--force", "w-1", "carol").returncode == 0
    assert asks.read_answer(d, "w-1")["answer"] == "carol"


def test_bad_input_one_line_each(data_dir):
    d = data_dir
    for bad in ("a/b", "..", "../x", "w1", ""):
        err = one_line_error(run("answer", bad, "x"), "answer")
        assert "invalid ask id" in err
    assert "no pending ask 'w1-9'" in one_line_error(run("answer", "w1-9", "x"), "answer")
    err = one_line_error(run("ask", "hi"), "ask")
    assert "not inside a worker" in err
    env = {**os.environ, "LOOOP_SESSION_ID": "w1"}
    r = subprocess.run([BIN, "ask", "--ref", "/nope", "q"], env=env, capture_output=True, text=True)
    assert "no such file" in one_line_error(r, "ask")
    r = subprocess.run([BIN, "ask", "--timeout", "300ms", "q"], env=env, capture_output=True, text=True)
    assert r.returncode == 124 and r.stdout == "" and "no answer to w1-1" in r.stderr
    assert "no session 'ghost'" in one_line_error(run("tell", "ghost", "hi"), "tell")
    assert "looop watch pulse" in one_line_error(run("tell", "pulse", "hi"), "tell")
    for bad in ("a/b", ".."):
        assert "invalid session" in one_line_error(run("tell", bad, "hi"), "tell")
    assert not os.path.exists(os.path.join(d, "tells"))
    assert "not inside a worker" in one_line_error(run("told"), "told")
