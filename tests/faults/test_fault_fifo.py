"""Item 3: a FIFO (or any non-regular file) where the pulse reads never
blocks it: the beat ends within the tick timeout with a clear line."""
from __future__ import annotations

import os
import subprocess
import time

import pytest

from conftest import BIN
from fakes import setup_fake

pytestmark = pytest.mark.faults


def tick(timeout: float = 20) -> tuple[subprocess.CompletedProcess, float]:
    t0 = time.monotonic()
    try:
        r = subprocess.run([BIN, "tick"], capture_output=True, text=True, timeout=timeout,
                           env={**os.environ, "LOOOP_TICK_TIMEOUT": "10"})
    except subprocess.TimeoutExpired:
        pytest.fail(f"looop tick hung for {timeout}s on a FIFO")
    return r, time.monotonic() - t0


def test_a_fifo_decision_is_refused_within_the_tick_timeout(data_dir, tmp_path):
    d = data_dir
    setup_fake(d, str(tmp_path / "ctl"))
    cfg = os.path.join(d, "looop.json")
    with open(cfg) as f:
        text = f.read()
    import json
    c = json.loads(text)
    c["runners"]["fake"]["tick"] = "cat >/dev/null; mkfifo .decision.json"
    with open(cfg, "w") as f:
        json.dump(c, f)
    r, secs = tick()
    assert secs < 10, secs
    assert r.returncode != 0
    assert ".decision.json is a FIFO (refused: not a regular file)" in r.stdout + r.stderr, r.stdout
    assert not os.path.exists(os.path.join(d, ".decision.json"))  # one-shot, whatever it was
    print(f"FIFO decision refused; tick took {secs:.2f}s (tick timeout 10 s)")


def test_fifos_in_claims_journal_and_cost_do_not_block_a_beat(data_dir, tmp_path):
    d = data_dir
    setup_fake(d, str(tmp_path / "ctl"))
    os.makedirs(os.path.join(d, "claims"), exist_ok=True)
    for name in ("claims/x.json", "journal.md", "cost.jsonl", ".last-tick-hash", "PLAYBOOK.md"):
        os.mkfifo(os.path.join(d, name))
    r, secs = tick()
    assert secs < 10, (secs, r.stdout)
    assert "claims/x.json is not a claim object" in r.stdout, r.stdout
    print(f"5 FIFOs in the data dir; tick took {secs:.2f}s")
