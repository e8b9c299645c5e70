"""Item 10: the root supervises the pulse's progress, not only its life: a
pulse that is alive but not beating (here SIGSTOPped) is restarted once it
misses its deadline plus LOOOP_PULSE_GRACE, and that counts as a restart."""
from __future__ import annotations

import json
import os
import signal
import time

import pytest

from conftest import Tree, alive, wait_until
from faultkit import row

pytestmark = pytest.mark.faults


def test_a_pulse_that_stops_beating_is_restarted(data_dir):
    env = {**os.environ, "LOOOP_INTERVAL": "0.5", "LOOOP_PULSE_GRACE": "1",
           "LOOOP_SENSOR_TIMEOUT": "1", "LOOOP_TICK_TIMEOUT": "1", "LOOOP_SHELL_TIMEOUT": "1"}
    t = Tree(data_dir, env=env)
    try:
        old = t.pulse_running()
        wait_until(lambda: "next beat in" in t.output(), 15, "a first beat (its reports set the deadline)")
        os.kill(old["pid"], signal.SIGSTOP)  # alive, holding its pid, beating never again
        t0 = time.monotonic()
        new = wait_until(lambda: (r := row("pulse")) and r["alive"] and r["state"] == "running"
                         and r["child_pid"] != old["child_pid"] and r["pid"] and alive(r["pid"]) and r,
                         15, "a new pulse after the stall")
        took = time.monotonic() - t0
        assert "the pulse made no progress" in t.output()
        with open(os.path.join(data_dir, "events.jsonl")) as f:
            evs = [json.loads(ln) for ln in f if ln.strip()]
        assert any(e["event"] == "pulse_stalled" for e in evs)
        assert any(e["event"] == "supervisor_restart" and e["id"] == "pulse" for e in evs)
        assert not alive(old["pid"])
        assert took <= 3 + 1 + 5, took  # longest beat 3 s + grace 1 s (+ slack for a loaded box)
        print(f"stalled pulse replaced after {took:.1f}s (new child {new['child_pid']})")
    finally:
        assert t.stop(signal.SIGTERM) == 0
