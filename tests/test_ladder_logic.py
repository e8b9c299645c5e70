"""The recovery ladder's pure decision (looop/pulse/ladder.py), one row per
case; its memory file (store/ladderstate.py); the hourly restart cap
(tree/restart.hourly_cap); the inbox texts the ladder adds."""
from __future__ import annotations

import json
import os

import pytest

from looop import inbox
from looop.pulse import ladder
from looop.pulse.ladder import Knobs, decide
from looop.store import ladderstate
from looop.tree import restart

K = Knobs(nudge="continue", wait=10.0, limited_retry=1800.0, margin=120.0)
T0 = 1_800_000_000.0


def row(state: str | None, alive: bool = True, until: str | None = None, text: str | None = None) -> dict:
    act = None if state is None else {"state": state, **({"until": until} if until else {}),
                                      **({"evidence": {"source": "screen", "text": text}} if text else {})}
    return {"id": "w", "role": "worker", "alive": alive, "activity": act}


def mem(kind: str, step: str, at: float, **kw) -> dict:
    base = {"kind": kind, "step": step, "at": at, "ok_since": None, "until": None, "resume_at": None,
            "refused": None}
    return {**base, **kw}


def action(got: tuple) -> str | None:
    return got[0].action if got[0] is not None else None


# (row, memory, now) → (rung taken, memory's step after)
STUCK_ROWS = [
    ("first stuck → nudge", row("stuck"), None, T0, "nudge", "nudge"),
    ("nudged, rung still young → nothing", row("stuck"), mem("stuck", "nudge", T0), T0 + 9, None, "nudge"),
    ("nudged, waited → raise", row("stuck"), mem("stuck", "nudge", T0), T0 + 10, "raise", "raise"),
    ("raised, waited → restart", row("stuck"), mem("stuck", "raise", T0), T0 + 10, "restart", "restart"),
    ("restarted, stuck again → fail", row("stuck"), mem("stuck", "restart", T0), T0 + 10, "fail", "fail"),
    ("failed: no rung past it", row("stuck"), mem("stuck", "fail", T0), T0 + 99, None, "fail"),
    ("a limit episode does not carry into stuck", row("stuck"), mem("limited", "resume", T0), T0 + 1,
     "nudge", "nudge"),
]


@pytest.mark.parametrize("name,r,m,now,rung,step", STUCK_ROWS, ids=[r[0] for r in STUCK_ROWS])
def test_stuck_rows(name, r, m, now, rung, step):
    got = decide(r, m, K, now)
    assert action(got) == rung
    assert got[1] is not None and got[1]["step"] == step and got[1]["kind"] == "stuck"
    if rung is not None:
        assert got[1]["at"] == now and got[0].text.startswith("ladder: w ")


def test_stuck_texts_name_the_nudge_and_the_next_rung():
    assert decide(row("stuck"), None, K, T0)[0].text == "ladder: w is stuck — typed the nudge 'continue'"
    raise_text = decide(row("stuck"), mem("stuck", "nudge", T0), K, T0 + 10)[0].text
    assert "raised in the inbox" in raise_text and ladder.hhmmss(T0 + 20) in raise_text


def test_healthy_rows_end_a_stuck_episode_only_after_two_waits():
    m = mem("stuck", "nudge", T0)
    step, m1 = decide(row("working"), m, K, T0 + 1)
    assert step is None and m1["ok_since"] == T0 + 1 and m1["step"] == "nudge"
    step, m2 = decide(row("ready"), m1, K, T0 + 1 + 19)
    assert step is None and m2 is not None  # healthy 19 s < 2 × wait: a frozen one could look so
    assert decide(row("ready"), m1, K, T0 + 1 + 20) == (None, None)  # 20 s: recovered
    # stuck again in between: the healthy clock starts over
    _, m3 = decide(row("stuck"), m1, K, T0 + 5)
    assert m3["ok_since"] is None
    assert decide(row("asking"), None, K, T0) == (None, None)
    assert decide(row(None), None, K, T0) == (None, None)


def test_a_dead_worker_forgets_its_episode():
    assert decide(row("stuck", alive=False), mem("stuck", "raise", T0), K, T0 + 99) == (None, None)
    assert decide(row("limited", alive=False), mem("limited", "park", T0), K, T0) == (None, None)


LIMIT_AT = "2027-01-15T08:00:00Z"
T_AT = ladder.epoch(LIMIT_AT)


def test_limited_rows():
    # a named reset time: parked until T + margin
    step, m = decide(row("limited", until=LIMIT_AT), None, K, T0)
    assert step.action == "park" and m["resume_at"] == T_AT + 120 and m["until"] == LIMIT_AT
    assert f"until {LIMIT_AT}" in step.text and ladder.hhmmss(T_AT + 120) in step.text
    # no time named: limited_retry from now
    step, m2 = decide(row("limited"), None, K, T0)
    assert step.action == "park" and m2["resume_at"] == T0 + 1800 and "no reset time named" in step.text
    # parked: nothing at all before the resume time (no nudge, no restart)
    assert decide(row("limited", until=LIMIT_AT), m, K, T_AT + 119) == (None, m)
    # at the resume time: resume (typed), once
    step, m3 = decide(row("limited", until=LIMIT_AT), m, K, T_AT + 120)
    assert step.action == "resume" and m3["step"] == "resume" and "'continue'" in step.text
    # still limited right after the resume: give it `wait`, then park again
    assert decide(row("limited", until=LIMIT_AT), m3, K, T_AT + 125) == (None, m3)
    step, m4 = decide(row("limited"), m3, K, T_AT + 130)
    assert step.action == "park" and m4["resume_at"] == T_AT + 130 + 1800
    # the limit no longer shown: the episode is over
    assert decide(row("ready"), m3, K, T_AT + 121) == (None, None)
    assert decide(row("working"), m, K, T0 + 5) == (None, None)
    # a stuck episode gives way to a limit
    assert action(decide(row("limited"), mem("stuck", "raise", T0), K, T0 + 1)) == "park"


def test_a_banner_still_shown_after_the_resume_is_not_a_new_limit():
    """The banner that parked it is still on the settled screen after the
    resume: its time (read again, now a day later for a clock time) was
    already waited out — retry after limited_retry, not tomorrow."""
    banner = "You've hit your limit · resets 8am (UTC)"
    step, m = decide(row("limited", until=LIMIT_AT, text=banner), None, K, T0)
    assert step.action == "park" and m["text"] == banner
    step, m = decide(row("limited", until=LIMIT_AT, text=banner), m, K, T_AT + 120)
    assert step.action == "resume"
    next_day = "2027-01-16T08:00:00Z"
    step, m2 = decide(row("limited", until=next_day, text=banner), m, K, T_AT + 131)
    assert step.action == "park" and m2["resume_at"] == T_AT + 131 + 1800
    assert "the same banner" in step.text
    # a different banner names a new time: that one holds
    step, m3 = decide(row("limited", until=next_day, text="weekly limit · resets Jan 16 8am"), m, K, T_AT + 131)
    assert step.action == "park" and m3["resume_at"] == ladder.epoch(next_day) + 120


def test_one_rung_per_call_whatever_the_gap():
    m = None
    taken = []
    for i in range(8):  # a beat an hour apart: still one rung per beat
        step, m = decide(row("stuck"), m, K, T0 + 3600 * i)
        taken.append(step.action if step else None)
    assert taken == ["nudge", "raise", "restart", "fail", None, None, None, None]


def test_hourly_restart_cap():
    kept, ok = restart.hourly_cap((), 100.0, 2)
    assert kept == () and ok
    kept, ok = restart.hourly_cap((10.0, 50.0), 100.0, 2)
    assert kept == (10.0, 50.0) and not ok
    kept, ok = restart.hourly_cap((10.0, 50.0), 3610.5, 2)  # 10.0 left the hour
    assert kept == (50.0,) and ok
    assert restart.hourly_cap((1.0,) * 50, 2.0, 0)[1]  # 0 = no cap
    assert restart.cap_reason((1.0, 2.0), 2) == ("restart cap reached: 2 automatic restarts in the last "
                                                 "hour (LOOOP_MAX_RESTARTS_PER_HOUR=2)")


def test_ladder_state_file(tmp_path):
    d = str(tmp_path)
    assert ladderstate.load(d) == ({}, False)
    m = {"w": mem("stuck", "raise", T0)}
    ladderstate.save(d, m)
    assert ladderstate.load(d) == (m, False)
    assert json.load(open(os.path.join(d, ladderstate.FILE)))["v"] == 1
    for junk in (b"garbage{", b'{"v": 2, "workers": {}}', b"[]", b'{"v": 1, "workers": 3}'):
        open(os.path.join(d, ladderstate.FILE), "wb").write(junk)
        assert ladderstate.load(d) == ({}, True), junk
        assert ladderstate.read(d) == {}
    open(os.path.join(d, ladderstate.FILE), "w").write(json.dumps(
        {"v": 1, "workers": {"w": m["w"], "x": {"kind": "stuck", "step": 3}}}))
    assert ladderstate.load(d) == (m, True)  # the good entry kept, the file marked corrupt
    c = ladderstate.conservative(T0)
    # conservative: as if nudged just now — no second nudge, nothing before a full wait
    assert decide(row("stuck"), c, K, T0 + 1) == (None, dict(c, ok_since=None))
    assert action(decide(row("stuck"), c, K, T0 + 10)) == "raise"


def test_inbox_texts_carry_the_ladder():
    rows = [{"id": "s", "role": "worker", "alive": True, "state": "running", "flagged": False,
             "activity": {"state": "stuck", "since": T0, "evidence": {"text": "⠋ Working…"}}},
            {"id": "l", "role": "worker", "alive": True, "state": "running", "flagged": False,
             "activity": {"state": "limited", "since": T0, "until": LIMIT_AT,
                          "evidence": {"text": "usage limit"}}},
            {"id": "f", "role": "worker", "alive": False, "state": "failed", "exit_code": None,
             "failed_reason": "stuck after a nudge and a restart (recovery ladder)"}]
    lad = {"s": mem("stuck", "raise", T0), "l": mem("limited", "park", T0, resume_at=T_AT + 120)}
    items = {it["id"]: it for it in inbox.aggregate(rows, [], None, T0, "", "/c", ladder=lad)}
    assert items["s"]["text"] == "nudge did not help (still stuck): ⠋ Working…"
    assert items["l"]["text"].endswith(f"(until {LIMIT_AT}) — parked: looop resumes it at "
                                       f"{ladder.hhmmss(T_AT + 120)}")
    assert items["f"]["text"] == "failed: stuck after a nudge and a restart (recovery ladder) (exit None)"
    from looop.pulse import notifier
    plain = inbox.aggregate(rows, [], None, T0, "", "/c")
    assert notifier.key(items["s"]) != notifier.key(next(i for i in plain if i["id"] == "s"))
    lad["s"]["refused"] = "restart cap reached"
    assert inbox.aggregate(rows, [], None, T0, "", "/c", ladder=lad)[1]["text"].endswith(
        "— restart refused: restart cap reached")
