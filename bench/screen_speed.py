"""Focused A/B bench of screens (issue 10, SPEC §13/§15): `looop shot` of a
live worker after 1 MB and 60 MB of prior output, and of a finished session,
for one or more source trees.

    python bench/screen_speed.py [--src /tmp/base] [--src .] [--reps 20] [--sizes 1,60]

For each source tree (<src> first on sys.path, the editable install's finder dropped, empty HOME, a fresh
data dir; LOOOP_SCREEN_ENGINE is passed through): a worker prints N MB of
base64 lines (a flood: 76-column lines, no escapes) then waits; once the log
holds it, `looop shot` runs `reps` times (wall of the whole process, so the
figure includes Python's start and the socket round trip). The first shot is
reported apart: it pays for whatever the child had not fed yet. Then the
worker exits and `looop shot` of the finished session runs `reps` times.
Figures, never pass/fail; on a machine shared with other work, compare the
trees of one run (ratios), not runs.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time


# `python -m looop` would run the editable install of this checkout whatever
# PYTHONPATH says (its finder sits on sys.meta_path): drop that finder first.
LAUNCH = ("import sys; src = sys.argv.pop(1); "
          "sys.meta_path[:] = [f for f in sys.meta_path if 'editable' not in getattr(f, '__module__', '')]; "
          "sys.path.insert(0, src); sys.argv[0] = 'looop'; "
          "from looop.cli.main import main; sys.exit(main())")


def wait(cond, timeout: float, what: str) -> None:
    end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > end:
            raise RuntimeError(f"timeout: {what}")
        time.sleep(0.01)


def p95(xs: list[float]) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(0.95 * (len(xs) - 1))))]


class Tree:
    def __init__(self, src: str, tmp: str):
        self.src = os.path.abspath(src)
        self.d = os.path.join(tmp, "data")
        home = os.path.join(tmp, "home")
        os.makedirs(home)
        self.env = dict(os.environ, PYTHONPATH=self.src, HOME=home, LOOOP_DATA_DIR=self.d,
                        LOOOP_INTERVAL="3600", LOOOP_SHUTDOWN_GRACE="1", LOOOP_TMUX_SURFACE="0")
        self.env.pop("LOOOP_CONFIG", None)
        self.root = subprocess.Popen(self.argv(), env=self.env, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     start_new_session=True)
        wait(lambda: self.call("ls", "--json").returncode == 0 and '"pulse"' in self.call("ls", "--json").stdout,
             60, "the tree to start")

    def argv(self, *args: str) -> list[str]:
        return [sys.executable, "-c", LAUNCH, self.src, *args]

    def call(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(self.argv(*args), env=self.env, capture_output=True, text=True, timeout=300)

    def timed(self, *args: str) -> float:
        t0 = time.perf_counter()
        r = self.call(*args)
        dt = time.perf_counter() - t0
        if r.returncode != 0:
            raise RuntimeError(f"looop {' '.join(args)}: {r.stderr.strip()}")
        return dt

    def stop(self) -> None:
        os.killpg(self.root.pid, signal.SIGINT)
        try:
            self.root.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(self.root.pid, signal.SIGKILL)
            self.root.wait(10)


def bench_src(src: str, mb: int, reps: int) -> dict:
    tmp = tempfile.mkdtemp(prefix="looop-screen-bench-")
    t = Tree(src, tmp)
    try:
        sid = f"flood{mb}"
        script = f"head -c {mb * 750_000} /dev/urandom | base64; echo FLOOD-DONE; read x; echo bye"
        r = t.call("start-session", sid, script, "--command", "bash {{prompt_file}}")
        if r.returncode:
            raise RuntimeError(r.stderr)
        r = t.call("expect", sid, "FLOOD-DONE", "--timeout", "300s")
        if r.returncode:
            raise RuntimeError(f"expect: {r.stderr}")
        first = t.timed("shot", sid)
        live = [t.timed("shot", sid) for _ in range(reps)]
        t.call("send", sid, "x")
        wait(lambda: '"exited"' in t.call("ls", "--json", "--all").stdout, 60, "the worker to exit")
        finished = [t.timed("shot", sid) for _ in range(reps)]
        snap = json.loads(t.call("shot", sid, "--json").stdout)
        return {"src": src, "mb": mb, "first_ms": first * 1000,
                "live_p50_ms": statistics.median(live) * 1000, "live_p95_ms": p95(live) * 1000,
                "finished_p50_ms": statistics.median(finished) * 1000,
                "finished_p95_ms": p95(finished) * 1000,
                "engine": snap.get("engine", "pyte (before issue 10)"),
                "finished_size": f"{snap['cols']}x{snap['rows']}"}
    finally:
        t.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--src", action="append", help="a source tree (default: this checkout)")
    p.add_argument("--reps", type=int, default=20)
    p.add_argument("--sizes", default="1,60", help="MB of prior output, comma list")
    a = p.parse_args(argv)
    srcs = a.src or [os.path.dirname(os.path.dirname(os.path.abspath(__file__)))]
    rows = []
    for mb in (int(s) for s in a.sizes.split(",")):
        for src in srcs:
            row = bench_src(src, mb, a.reps)
            rows.append(row)
            print(json.dumps(row), flush=True)
    print("\n| src | prior output | engine | first shot | live p50 | live p95 | finished p50 | finished p95 |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(f"| {r['src']} | {r['mb']} MB | {r['engine']} | {r['first_ms']:.0f} ms | {r['live_p50_ms']:.0f} ms "
              f"| {r['live_p95_ms']:.0f} ms | {r['finished_p50_ms']:.0f} ms | {r['finished_p95_ms']:.0f} ms |")
    floor = []
    for _ in range(a.reps):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", LAUNCH, srcs[-1], "version"], capture_output=True, timeout=60)
        floor.append(time.perf_counter() - t0)
    print(f"\nfloor, `looop version` (Python start + CLI import): p50 {statistics.median(floor) * 1000:.0f} ms, "
          f"p95 {p95(floor) * 1000:.0f} ms")
    print(f"machine load average: {os.getloadavg()[0]:.1f} (2 cores shared: read ratios)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
