"""The restart decision (looop.tree.restart.decide) as a table: every row of
restart type × how the run ended, then intensity, backoff and parsing."""
from __future__ import annotations

import pytest

from looop.tree.restart import (Ended, History, Policy, Restart, decide, parse_kind,
                                parse_max_restarts, policy_from)

T, P, X = Restart.TEMPORARY, Restart.PERMANENT, Restart.TRANSIENT
LONG = 60.0  # uptime past min_uptime


@pytest.mark.parametrize("kind,state,code,action", [
    (T, "exited", 0, "stay"), (T, "exited", 1, "stay"), (T, "dead", None, "stay"),
    (T, "exited", 137, "stay"), (T, "killed", 143, "stay"),
    (X, "exited", 0, "stay"), (X, "exited", 1, "restart"), (X, "exited", 137, "restart"),
    (X, "dead", None, "restart"), (X, "killed", 143, "stay"),
    (P, "exited", 0, "restart"), (P, "exited", 1, "restart"), (P, "exited", 137, "restart"),
    (P, "dead", None, "restart"), (P, "killed", 143, "stay"),
])
def test_restart_type_by_how_it_ended(kind, state, code, action):
    d = decide(Policy(kind), Ended(state, code, LONG), History(), 1000.0)
    assert d.action == action
    if action == "stay":
        assert d.history == History()


def test_intensity_fails_on_the_fourth_end_within_the_window():
    p, h, now, delays = Policy(X), History(), 1000.0, []
    for _ in range(3):
        d = decide(p, Ended("exited", 1, 0.5), h, now)
        assert d.action == "restart"
        delays.append(d.delay)
        h, now = d.history, now + d.delay + 0.5
    d = decide(p, Ended("exited", 1, 0.5), h, now)
    assert d.action == "fail" and "max_restarts 3" in d.reason
    assert delays == [1.0, 2.0, 4.0]


def test_restarts_older_than_the_window_do_not_count():
    p = Policy(X, max_restarts=3, window=600)
    h = History((0.0, 10.0, 20.0), 0)
    assert decide(p, Ended("exited", 1, LONG), h, 599.0).action == "fail"   # all three inside
    d = decide(p, Ended("exited", 1, LONG), h, 615.0)                      # 0.0 and 10.0 expired
    assert d.action == "restart" and d.history.restarts == (20.0, 615.0)


def test_backoff_doubles_to_the_cap_and_a_long_run_resets_it():
    p = Policy(P, max_restarts=100, window=10)
    assert decide(p, Ended("exited", 1, 0.1), History((), 8), 0.0).delay == 256.0
    assert decide(p, Ended("exited", 1, 0.1), History((), 9), 0.0).delay == 300.0   # capped at 5 min
    assert decide(p, Ended("exited", 1, 0.1), History((), 30), 0.0).delay == 300.0
    d = decide(p, Ended("exited", 1, 10.0), History((), 9), 0.0)                     # min_uptime reached
    assert d.delay == 1.0 and d.history.short_runs == 0


def test_the_pulse_policy_restarts_at_once_and_gives_up_past_five_in_a_minute():
    p, h = Policy(P, 5, 60.0, backoff=0.0), History()
    for i in range(5):
        d = decide(p, Ended("dead", None, 0.1), h, float(i))
        assert (d.action, d.delay) == ("restart", 0.0)
        h = d.history
    assert decide(p, Ended("dead", None, 0.1), h, 5.0).action == "fail"


def test_parsing_restart_flags():
    assert parse_kind("transient") is X
    assert parse_max_restarts("3/10m") == (3, 600.0)
    assert parse_max_restarts("5/30s") == (5, 30.0)
    assert policy_from("permanent", "2/1h") == Policy(P, 2, 3600.0)
    assert policy_from() == Policy()
    for bad in ("3", "x/10m", "3/", "3/10x", "0/10m", "3/0s", "-1/10m"):
        with pytest.raises(ValueError, match="bad max restarts"):
            parse_max_restarts(bad)
    with pytest.raises(ValueError, match="bad restart type 'sometimes'"):
        parse_kind("sometimes")


def test_policy_round_trips_through_meta_json_and_garbage_is_temporary():
    p = Policy(X, 4, 120.0)
    assert Policy.from_json(p.to_json()) == p
    for junk in (None, "x", {"type": "never"}, {"max_restarts": "many"}):
        assert Policy.from_json(junk) == Policy()
