"""The inbox aggregation as a pure function of its sources (looop.inbox)."""
from __future__ import annotations

import pytest

from looop.inbox import aggregate

NOW = 1_000_000.0
P = "LOOOP_DATA_DIR=/d "


def w(sid, alive=True, **kw):
    return {"id": sid, "role": "worker", "alive": alive, "state": kw.pop("state", "running"),
            "flagged": False, "note": None, "exit_code": None, "_updated": NOW - 30, **kw}


def ask(aid, worker, prompt, ts=NOW - 90, **kw):
    return {"v": 1, "id": aid, "worker": worker, "prompt": prompt, "ts": ts, **kw}


def act(state, since=NOW - 600, **ev):
    return {"state": state, "since": since, "quiet_s": 3, "evidence": ev}


def test_every_kind_with_its_command_and_age():
    rows = [{"id": "pulse", "role": "pulse", "alive": True, "state": "running"},
            w("a", flagged=True, note="which  branch?\nmain or dev"),
            w("b", activity=act("asking", source="screen", line=7, text="Allow edit? (y/n)")),
            w("c", activity=act("limited", source="screen", text="usage limit")),
            w("d", activity=act("stuck", since="1970-01-12T13:36:40Z", source="timing")),
            w("e", activity=act("working", source="screen")),
            w("f", alive=False, state="failed", exit_code=3),
            w("g", alive=False, state="exited", flagged=True, note="old")]
    rows[3]["activity"]["until"] = "17:00"
    budget = {"day": "2026-12-01", "spent": 5.0, "limit": 5, "since": NOW - 10}
    items = aggregate(rows, [(ask("a-1", "a", "ship it?", options=["yes", "no"]), False),
                             (ask("x-2", "x", "gone?", ts="1970-01-12T13:45:00Z"), True)],
                      budget, NOW, P, "/d/looop.json")
    got = [(i["kind"], i["id"], i["session"], i["age_s"], i["text"], i["command"]) for i in items]
    assert got == [
        ("ask", "x-2", "x", 100, "stranded: gone?", P + "looop answer x-2 <answer>"),
        ("ask", "a-1", "a", 90, "ship it? [yes/no]", P + "looop answer a-1 <answer>"),
        ("flag", "a", "a", 30, "which branch? main or dev", P + "looop attach a"),
        ("asking", "b", "b", 600, "Allow edit? (y/n)", P + "looop attach b"),
        ("limited", "c", "c", 600, "usage limit (until 17:00)", P + "looop attach c"),
        ("stuck", "d", "d", 600, "stuck", P + "looop attach d"),
        ("failed", "f", "f", 30, "failed: restarted too often (exit 3)", P + "looop restart f"),
        ("budget", "budget-2026-12-01", None, 10,
         "budget reached: $5 of $5 today (max_daily_usd) — no AI call until tomorrow",
         "${EDITOR:-vi} /d/looop.json  # raise or remove max_daily_usd"),
    ]
    assert all(set(i) == {"kind", "id", "session", "age_s", "text", "command"} for i in items)


def test_sorted_oldest_first_within_a_kind_and_no_double_listing():
    rows = [w("a", activity=act("asking", source="ask")),         # backed by its ask
            w("b", flagged=True, note="n", activity=act("asking", source="screen")),
            w("c", activity=act("asking", source="screen"))]
    items = aggregate(rows, [(ask("a-1", "a", "new", ts=NOW - 5), False),
                             (ask("a-0", "a", "old", ts=NOW - 500), False)], None, NOW, "", "/c")
    assert [(i["kind"], i["id"]) for i in items] == [("ask", "a-0"), ("ask", "a-1"), ("flag", "b"),
                                                     ("asking", "c")]
    assert items[0]["command"] == "looop answer a-0 <answer>"


def test_empty_and_odd_activity_shapes():
    rows = [w("a", activity=None), w("b", activity="asking"), w("c", activity={"state": "stuck"})]
    items = aggregate(rows, [], None, NOW, "", "/c")
    assert [(i["kind"], i["id"], i["age_s"], i["text"]) for i in items] == [("stuck", "c", 0, "stuck")]


def test_mailbox_housekeeping(tmp_path):
    import os

    from looop.store import asks, tells
    d = str(tmp_path)
    a = asks.create(d, "w", "q1")
    asks.answer(d, a["id"], "x")
    asks.deliver(d, a["id"])
    asks.create(d, "w", "q2")            # pending, worker still has a session dir
    asks.create(d, "gone", "q3")         # pending, its worker's dir was reaped
    tells.send(d, "w", "hi")
    tells.take(d, "w")
    assert asks.reap(d, 3600, {"w"}) == []                         # young: kept
    assert [r["id"] for r in asks.pending(d)] == ["w-2"]           # gone-1 closed
    later = os.path.getmtime(os.path.join(d, "asks", "done", "w-1.json")) + 7200
    assert sorted(asks.reap(d, 3600, {"w"}, now=later)) == ["gone-1", "w-1"]
    assert not os.path.exists(os.path.join(d, "answers", "w-1.json"))
    assert [r["id"] for r in asks.pending(d)] == ["w-2"]
    assert tells.reap(d, 3600) == 0 and tells.reap(d, 3600, now=later) == 1


def test_a_title_read_before_a_publish_is_paired_with_the_file_after_it():
    """ls reads a child's title, then its status.json; the child writes the
    file, then the title. Caught between, the inbox once saw an `asking`
    title with a `working` file's (empty) evidence and notified a bogus
    `asking w1: asking`. The newer title, read again, goes with the file;
    if the child has not set it yet, the fresh file speaks for it."""
    from looop.registry import agreeing
    from looop.store.title import Title
    asking = Title("worker", "w1", "running", False, "/d", "asking", 100)
    working = asking._replace(activity="working", since=101)
    file_now = {"flagged": False, "updated_ts": NOW - 0.5,
                "activity": {"state": "working", "since": "1970-01-01T00:01:41Z", "evidence": {}}}
    assert agreeing(asking, file_now, lambda: working, NOW) == working
    assert agreeing(working, file_now, lambda: pytest.fail("agreeing: no second read"), NOW) == working
    # unflagged since the title was read: the flag goes with the note
    assert agreeing(working._replace(flagged=True), file_now, lambda: working, NOW) == working
    # the title not set yet (or the pid gone, or carrying another worker now):
    # the fresh file speaks for it
    for again in (asking, None, working._replace(sid="w2"), working._replace(data_dir="/e")):
        assert agreeing(asking, file_now, lambda: again, NOW) == working
    # a file that stayed stale (not written: a full disk): the title wins
    stale = {**file_now, "updated_ts": NOW - 60}
    assert agreeing(asking, stale, lambda: asking, NOW) == asking
    # dated ahead of the clock (it stepped back): not fresh either
    ahead = {**file_now, "updated_ts": NOW + 60}
    assert agreeing(asking, ahead, lambda: asking, NOW) == asking
