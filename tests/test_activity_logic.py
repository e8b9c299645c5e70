"""The activity classifier as a table (looop.tree.activity): one row per rule
of the evidence order, `until` parsing per form, and pattern validation."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from looop.tree import activity as A
from looop.store import config

PATS = A.compile_patterns("fake", {
    "ready": [r"^> $", r"^> "],
    "asking": [r"Do you want to"],
    "limited": [r"usage limit"],
    "working": [r"esc to interrupt"],
})
WALL = datetime(2026, 12, 1, 10, 0, tzinfo=timezone.utc)


def facts(**kw):
    base = dict(now=100.0, started=0.0, last_output=90.0, last_change=90.0, settle=1.5,
                stuck=900.0, lines=None, cursor=None, wall=WALL)
    base.update(kw)
    return A.Facts(**base)


@pytest.mark.parametrize("kw, state, source", [
    # 1. a pending ask beats everything, even flowing output and a dialog
    (dict(ask="which branch?", last_output=99.9, lines=["Do you want to proceed?"]), "asking", "ask"),
    # 2. the flag
    (dict(flagged=True, note="look", lines=["> "]), "asking", "flag"),
    # 3. an agent event holds while no output came more than settle after it
    (dict(event=A.Event("ready", "Stop hook", 89.5), lines=["esc to interrupt"]), "ready", "event"),
    (dict(event=A.Event("asking", None, 95.0), last_output=96.0), "asking", "event"),
    # ... and lapses once output resumed later than that
    (dict(event=A.Event("ready", None, 50.0), last_output=99.9), "working", "timing"),
    # a working event with nothing after it for `stuck` → stuck
    (dict(event=A.Event("working", None, 10.0), last_output=10.0, last_change=10.0, now=1000.0),
     "stuck", "event"),
    # 4. the settled screen, in the order asking, limited, working, ready
    (dict(lines=["x", "Do you want to make this edit?", "> "]), "asking", "screen"),
    (dict(lines=["You've hit your usage limit", "> "]), "limited", "screen"),
    (dict(lines=["✻ Thinking… (esc to interrupt)", "> "]), "working", "screen"),
    (dict(lines=["hello", "> "]), "ready", "screen"),
    # a frozen working screen → stuck
    (dict(lines=["✻ Thinking… (esc to interrupt)"], last_output=10.0, last_change=10.0, now=1000.0),
     "stuck", "screen"),
    # patterns never run on an unsettled screen: output 0.5 s ago → working by timing
    (dict(lines=["Do you want to proceed?"], last_output=99.5), "working", "timing"),
    # 5. timing
    (dict(last_output=None, last_change=None, now=1.0), "starting", "timing"),
    (dict(last_output=0.5, last_change=None, now=1.0), "starting", "timing"),
    (dict(last_output=99.0, last_change=None, now=100.0, started=0.0), "working", "timing"),
    (dict(last_output=99.0), "working", "timing"),
    (dict(lines=["$ "], cursor=(2, 0)), "ready", "timing"),
    (dict(lines=["building"], cursor=(0, 1)), "ready", "timing"),
    (dict(lines=["building", ""], cursor=(0, 1), last_output=10.0, last_change=10.0, now=1000.0),
     "stuck", "timing"),
    # at a prompt it is never stuck, however long it waits
    (dict(lines=["$ "], cursor=(2, 0), last_output=10.0, last_change=10.0, now=99999.0), "ready", "timing"),
])
def test_classify_rows(kw, state, source):
    v = A.classify(facts(**kw), PATS)
    assert (v.state, v.evidence["source"]) == (state, source), v


def test_screen_evidence_names_pattern_line_and_text():
    v = A.classify(facts(lines=["", "  Do you want to proceed?  ", "> "]), PATS)
    assert v.evidence == {"source": "screen", "pattern": "asking[0]", "line": 1,
                          "text": "Do you want to proceed?"}


def test_no_patterns_still_gets_working_ready_stuck():
    assert A.classify(facts(last_output=99.9), {}).state == "working"
    assert A.classify(facts(lines=["out"], cursor=(0, 1)), {}).state == "ready"
    assert A.classify(facts(lines=["out"], cursor=(0, 1), last_output=1.0, last_change=1.0,
                            now=2000.0), {}).state == "stuck"


def test_limited_until_from_the_screen():
    v = A.classify(facts(lines=["You've hit your usage limit · resets 3pm"]), PATS)
    assert v.state == "limited" and v.until == "2026-12-01T15:00:00Z"
    v = A.classify(facts(lines=["usage limit reached"]), PATS)
    assert v.state == "limited" and v.until is None


@pytest.mark.parametrize("text, expect", [
    ("You've hit your limit · resets 3pm", datetime(2026, 12, 1, 15, 0, tzinfo=timezone.utc)),
    ("resets 9am", datetime(2026, 12, 2, 9, 0, tzinfo=timezone.utc)),  # passed today → tomorrow
    ("try again at 14:05", datetime(2026, 12, 1, 14, 5, tzinfo=timezone.utc)),
    ("Limits will reset at 9:30 AM.", datetime(2026, 12, 2, 9, 30, tzinfo=timezone.utc)),
    ("or try again in 2h", WALL + timedelta(hours=2)),
    ("try again in 5 days 22 hours 11 minutes.", WALL + timedelta(days=5, hours=22, minutes=11)),
    ("resets in 4hr 29min", WALL + timedelta(hours=4, minutes=29)),
    ("resets 12:50am (America/Los_Angeles)", datetime(2026, 12, 2, 8, 50, tzinfo=timezone.utc)),
    ("You've hit your limit · resets May 5 at 9pm", datetime(2027, 5, 5, 21, 0, tzinfo=timezone.utc)),
    ("try again at Jul 5th, 2027 8:19 PM", datetime(2027, 7, 5, 20, 19, tzinfo=timezone.utc)),
    ("usage limit reached", None),
    ("resets 3", None),            # a bare number is no time
    ("resets 25:00", None),
])
def test_parse_until(text, expect):
    got = A.parse_until(text, WALL)
    assert (got.astimezone(timezone.utc) if got else None) == expect


@pytest.mark.parametrize("states, msg", [
    ({"ready": ["("]}, "runner 'r': states.ready[0] '(' is not a valid regex"),
    ({"asking": ["ok", "[a-"]}, "runner 'r': states.asking[1]"),
    ({"thinking": ["x"]}, "runner 'r': unknown state 'thinking' in 'states' (known: asking, limited, working, ready)"),
    ({"ready": "x"}, "runner 'r': states.ready must be a list of regex strings"),
    (["x"], "runner 'r': 'states' must be an object"),
])
def test_bad_patterns_name_runner_and_index(states, msg):
    with pytest.raises(A.PatternError) as e:
        A.compile_patterns("r", states)
    assert msg in str(e.value)


def test_presets_compile_and_user_entries_override():
    cfg = config.parse('{"runners": {"claude": {"interactive": "x {{prompt_file}}", '
                       '"states": {"ready": ["^READY$"]}}}}', "looop.json")
    merged = {"runners": {**{k: dict(v) for k, v in config.PRESETS.items()}, **cfg["runners"]}}
    for name in ("claude", "codex", "pi"):
        pats = A.compile_patterns(name, config.runner_states(merged, name))
        assert pats, name
    claude = config.runner_states(merged, "claude")
    assert claude["ready"] == ["^READY$"]                                   # overridden
    assert claude["asking"] == config.PRESETS["claude"]["states"]["asking"]  # kept
    assert config.runner_states(merged, "rules") == {}


# -- the pulse's view: world hash, prompt line, NEEDS YOU ----------------------

def _row(state="ready", quiet=3.0, text="│ >", alive=True, **kw):
    act = {"state": state, "since": "2026-12-01T10:00:00Z", "quiet_s": quiet,
           "evidence": {"source": "screen", "pattern": "ready[0]", "line": 6, "text": text}}
    return {"id": "w1", "role": "worker", "state": "running", "alive": alive, "exit_code": None,
            "flagged": False, "note": None, "activity": act, **kw}


def test_world_hash_sees_activity_state_never_quiet_or_evidence():
    from looop.pulse.worldhash import world_hash

    def h(*rows):
        return world_hash(b"", [], [], list(rows))
    assert h(_row()) == h(_row(quiet=999.0, text="other"))
    assert h(_row()) != h(_row(state="asking"))
    assert h(_row(alive=False)) == h(_row(state="asking", alive=False))  # dead: no activity


def test_prompt_line_shows_activity_quiet_and_evidence():
    from looop.pulse.prompt import worker_line
    line = worker_line(_row(state="asking", quiet=12.4, text="=== Do you want to proceed?"))
    assert line.splitlines() == ["- w1 [running · asking, quiet 12s]",
                                 "    evidence: screen ready[0]: === Do you want to proceed?"]


def test_needs_you_lists_asking_limited_stuck_and_flagged():
    from looop.pulse.surface import flagged
    rows = [_row(state=s, id=s) for s in ("ready", "working", "asking", "limited", "stuck")]
    rows.append(_row(id="f", flagged=True, note="n"))
    assert [r["id"] for r in flagged(rows)] == ["asking", "limited", "stuck", "f"]


# -- a worker that prints nothing (no output, no screen) -----------------------

BLANK = ([""] * 4, (0, 0))


@pytest.mark.parametrize("now, state", [
    (1.0, "starting"), (10.0, "starting"),     # a slow start is not "ready" at settle
    (A.STARTING_MAX, "working"),               # nothing drawn: nothing to be ready at
    (899.0, "working"), (900.0, "stuck"),      # quiet since it started
])
def test_classify_a_silent_worker(now, state):
    v = A.classify(facts(now=now, last_output=None, last_change=None, lines=BLANK[0],
                         cursor=BLANK[1]), PATS)
    assert (v.state, v.evidence["source"]) == (state, "timing"), v


def test_a_silent_worker_still_shows_its_ask_and_flag():
    f = dict(now=5.0, last_output=None, last_change=None, lines=BLANK[0], cursor=BLANK[1])
    assert A.classify(facts(ask="q?", **f), PATS).state == "asking"
    assert A.classify(facts(flagged=True, **f), PATS).state == "asking"


def test_tracker_re_evaluates_a_silent_worker_at_starting_max():
    from looop.tree.tracker import Tracker
    screen = lambda: BLANK  # noqa: E731
    tr = Tracker({}, settle=1.5, stuck=900.0, now=0.0, starting=30.0)
    assert tr.due() == 30.0                    # not started + stuck: nothing would look before
    assert tr.evaluate(5.0, screen, False, None) is None   # e.g. a flag/unflag nudge meanwhile
    assert tr.verdict.state == "starting" and tr.due() == 30.0
    before, v = tr.evaluate(tr.due(), screen, False, None)
    assert (before, v.state, v.evidence["source"]) == ("starting", "working", "timing")
    assert "no output" in v.evidence["text"]
    assert tr.due() == 900.0                   # stuck counts from the start, not from the look
    before, v = tr.evaluate(tr.due(), screen, False, None)
    assert (before, v.state) == ("working", "stuck")
    assert tr.due() is None                    # stuck: nothing more to look for


def test_tracker_starting_deadline_never_later_than_stuck():
    from looop.tree.tracker import Tracker
    tr = Tracker({}, settle=1.5, stuck=10.0, now=100.0, starting=30.0)
    assert tr.due() == 110.0
    before, v = tr.evaluate(110.0, lambda: BLANK, False, None)
    assert v.state == "stuck"


def test_tracker_output_before_starting_max_settles_as_usual():
    from looop.tree.tracker import Tracker
    tr = Tracker({}, settle=1.5, stuck=900.0, now=0.0, starting=30.0)
    tr.on_output(2.0)
    assert tr.due() == 3.5
    before, v = tr.evaluate(3.5, lambda: (["$ "], (2, 0)), False, None)
    assert (before, v.state) == ("starting", "ready")
