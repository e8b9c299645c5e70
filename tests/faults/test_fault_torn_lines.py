"""Item 4: a torn line never takes the next record with it, and looop never
leaves one: a short append is truncated back; readers skip a torn line."""
from __future__ import annotations

import json
import os
import subprocess

import pytest

from conftest import BIN, run
from faultkit import free_bytes, tmpfs_data_dir  # noqa: F401 (fixture)

from looop.store import cost, events, journal

pytestmark = pytest.mark.faults
TORN = b'{"ts":"2026-01-01T00:00:00Z","kind":"tick","id":"r0","runner":"x","cost_u'


def test_a_torn_cost_tail_is_followed_by_a_counted_row(data_dir):
    d = data_dir
    os.makedirs(d, exist_ok=True)
    with open(cost.path(d), "wb") as f:
        f.write(TORN)
    run("_cost", "tick", "r1", "fake", "0.5", check=True)
    assert cost.total(d) == 0.5
    with open(cost.path(d), "rb") as f:
        lines = f.read().split(b"\n")
    assert lines[0] == TORN and json.loads(lines[1])["cost_usd"] == 0.5


def test_journal_and_events_start_a_fresh_line_after_a_tear(data_dir):
    d = data_dir
    os.makedirs(d, exist_ok=True)
    with open(journal.path(d), "wb") as f:
        f.write(b"- 2026-01-01 00:00 whole\n- 2026-01-01 00:01 to")
    assert journal.tail(d, 5) == ["- 2026-01-01 00:00 whole"]  # the torn line is skipped
    line = journal.append(d, "next move")
    assert journal.tail(d, 5)[-1] == line
    ev = os.path.join(d, "events.jsonl")
    with open(ev, "wb") as f:
        f.write(b'{"ts":"x","event":"to')
    events.emit(d, "after_tear")
    with open(ev, "rb") as f:
        assert json.loads(f.read().split(b"\n")[1])["event"] == "after_tear"


def test_a_short_append_on_a_full_disk_leaves_no_torn_row(tmpfs_data_dir):
    """`_cost` on a disk that takes only part of the row: it fails loudly and
    the ledger is as before; once there is room the row is counted."""
    d = tmpfs_data_dir
    with open(cost.path(d), "wb") as f:
        f.write(b"\n" * (4096 - 40))  # the row must cross into a page the disk has not got
    filler = os.path.join(d, "filler")
    subprocess.run(["dd", "if=/dev/zero", f"of={filler}", "bs=64k"], capture_output=True)
    assert free_bytes(d) == 0
    r = subprocess.run([BIN, "_cost", "tick", "r1", "fake", "0.5"], capture_output=True, text=True)
    assert r.returncode != 0 and "No space left on device" in r.stderr, r
    assert os.path.getsize(cost.path(d)) == 4096 - 40  # truncated back: nothing torn
    os.unlink(filler)
    run("_cost", "tick", "r1", "fake", "0.5", check=True)
    assert cost.total(d) == 0.5
