"""Item 8: SIGKILL of the root's whole process group (what a terminal's
kill -9 -PGID does) leaves nothing running within 2 s — not a TERM/HUP-
ignoring worker shell, not the grandchild it setsid'd away."""
from __future__ import annotations

import os
import signal
import time

import pytest

from conftest import Tree, alive, run, tree_processes, wait_until

pytestmark = pytest.mark.faults
STUBBORN = ("trap '' TERM HUP; setsid sleep 1000 & echo grandchild=$!; "
            "while :; do sleep 0.2; done")


def test_kill_9_of_the_roots_group_leaves_nothing_running(data_dir):
    t = Tree(data_dir, new_group=True)
    try:
        w = t.start("stubborn", STUBBORN)
        gc = int(wait_until(lambda: next((ln.split("=")[1] for ln in run("log", "stubborn").stdout.split()
                                          if ln.startswith("grandchild=")), None), 10, "the grandchild pid"))
        ours = [p.pid for p in tree_processes(data_dir)]
        assert w["pid"] in ours and gc in ours and len(ours) >= 6, ours
        t0 = time.monotonic()
        os.killpg(t.pid, signal.SIGKILL)
        wait_until(lambda: not tree_processes(data_dir), 5, "every process of the tree gone")
        took = time.monotonic() - t0
        assert took <= 2.0, f"processes outlived the group kill by {took:.2f}s"
        assert not alive(gc) and not alive(w["pid"])
        print(f"nothing left {took:.2f}s after kill -9 -{t.pid} ({len(ours)} processes)")
    finally:
        t.proc.wait(5)
        t.out.close()
