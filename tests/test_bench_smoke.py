"""The bench cannot rot: `bench/run.py --quick` (looop only, N ≤ 2, 1 rep,
2 MB streams) writes results of the documented shape and leaves nothing
running. Never asserts a time."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import psutil

BENCH = Path(__file__).resolve().parent.parent / "bench" / "run.py"


def tagged(tag: str, tmp: str) -> list[str]:
    """Live processes of the run: its tag in the environment, or its temp dir
    in the command line (looop's titles name the data dir; setproctitle may
    have wiped their environ)."""
    left = []
    for p in psutil.process_iter(["cmdline", "environ", "status"]):
        try:
            if p.info["status"] == psutil.STATUS_ZOMBIE or p.pid == os.getpid():
                continue
            env = p.info["environ"] or {}
            cl = " ".join(p.info["cmdline"] or [])
            if env.get("LOOOP_BENCH_TAG") == tag or tmp in cl:
                left.append(f"{p.pid} {cl}")
        except psutil.Error:
            continue
    return left


def test_quick_bench_shape_and_no_leftovers(tmp_path: Path) -> None:
    tag = f"smoke-{uuid.uuid4().hex[:8]}"
    out = tmp_path / "out"
    env = dict(os.environ, LOOOP_BENCH_TAG=tag)
    env.pop("LOOOP_DATA_DIR", None)
    r = subprocess.run([sys.executable, str(BENCH), "--quick", "--out", str(out)], env=env,
                       capture_output=True, text=True, timeout=55)
    assert r.returncode == 0, r.stderr[-2000:]
    res = json.loads((out / "results.json").read_text())
    for k in ("machine", "peers", "rows", "ns", "reps", "interrupted", "leftovers"):
        assert k in res, k
    assert {"cores", "kernel", "python"} <= set(res["machine"])
    assert res["quick"] is True and max(res["ns"]) <= 2 and res["reps"] == 1
    assert res["stream_bytes"] == 2 << 20
    assert list(res["peers"]) == ["looop"]
    assert res["interrupted"] is False and res["leftovers"] == []
    figures = {row["figure"] for row in res["rows"]}
    assert {"list", "start", "memory", "cold", "stop", "restart", "capture", "pulse"} <= figures
    for row in res["rows"]:
        assert set(row) == {"figure", "n", "peer", "what", "unit", "stats", "failed", "extra"}
        assert (row["stats"] is None) != (row["failed"] is None) or row["figure"] == "pulse", row
        if row["stats"]:
            s = row["stats"]
            assert s["min"] <= s["median"] <= s["max"] and s["n"] == len(s["samples"]) >= 1
    md = (out / "RESULTS.md").read_text()
    assert "| figure | N | what | looop |" in md
    assert res["tmp_dir"] and not os.path.exists(res["tmp_dir"])
    assert tagged(tag, res["tmp_dir"]) == []


def test_bench_reports_a_tree_the_box_cannot_hold_and_goes_on(tmp_path: Path) -> None:
    """Bad input (`--n` past what the box holds): the first failure is a
    failed figure with its reason, nothing is left running, the run goes on.
    Cheaply: the daemons get RLIMIT_NOFILE 64 (≈ 12 workers of a root)."""
    tag = f"smoke-{uuid.uuid4().hex[:8]}"
    out = tmp_path / "out"
    env = dict(os.environ, LOOOP_BENCH_TAG=tag)
    env.pop("LOOOP_DATA_DIR", None)
    r = subprocess.run([sys.executable, str(BENCH), "--quick", "--only", "start,stop", "--n", "40",
                        "--limit-nofile", "64", "--out", str(out)], env=env,
                       capture_output=True, text=True, timeout=90)
    assert r.returncode == 0, r.stderr[-2000:]
    res = json.loads((out / "results.json").read_text())
    assert res["ns"] == [1, 40] and res["limit_nofile"] == 64
    looop = [row for row in res["rows"] if row["peer"] == "looop"]
    big = [row for row in looop if row["n"] == 40 and row["figure"] in ("start", "stop")]
    assert big and all(row["failed"] for row in big), big
    assert all("Too many open files" in row["failed"] for row in big), big
    # it went on: N=1 was measured before, and the stop figures ran after
    assert any(row["figure"] == "start" and row["n"] == 1 and row["stats"] for row in looop)
    assert {row["figure"] for row in big} == {"start", "stop"}
    assert res["leftovers"] == [] and tagged(tag, res["tmp_dir"]) == []
    assert "Too many open files" in (out / "RESULTS.md").read_text()
