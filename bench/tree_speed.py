"""Focused A/B bench of the tree (SPEC §13): start N workers, USS per worker
child, stop all — for one or more source trees, interleaved rep by rep.

    python bench/tree_speed.py --n 50 --reps 5 [--src /tmp/base] [--src .]

Each rep boots a fresh root (`python -m looop`, PYTHONPATH=<src>, empty HOME,
fresh data dir), starts N `exec sleep` workers on one connection (one
sendall), waits until every returned pid is `sleep` in /proc (start), reads
USS of each worker child, then SIGINTs the root and waits until the root and
every sleep are gone (stop). Prints medians [min–max] per source tree.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

import psutil
from stats import interleaved, rep_table  # noqa: E402
from procs import alive, comm, request_all  # noqa: E402 (bench/ is on sys.path: run as a script)


def wait(cond, timeout: float, what: str) -> None:
    end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > end:
            raise RuntimeError(f"timeout: {what}")
        time.sleep(0.001)


def oncpu(pid: int) -> float:
    """Seconds on CPU so far (/proc/<pid>/schedstat, ns precise)."""
    try:
        with open(f"/proc/{pid}/schedstat") as f:
            return int(f.read().split()[0]) / 1e9
    except (OSError, ValueError):
        return 0.0


def box_busy() -> float:
    """CPU seconds the whole machine spent busy (all cores), from /proc/stat."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return (sum(v) - v[3] - v[4]) / os.sysconf("SC_CLK_TCK")


def one_rep(src: str, n: int, tmp: str, prof: str = "") -> dict[str, float]:
    d = tempfile.mkdtemp(dir=tmp, prefix="data")
    home = tempfile.mkdtemp(dir=tmp, prefix="home")
    env = dict(os.environ, HOME=home, PYTHONPATH=os.path.abspath(src), LOOOP_DATA_DIR=d,
               LOOOP_SHUTDOWN_GRACE="2", LOOOP_INTERVAL="3600", LOOOP_LOG_MAX_BYTES="0",
               LOOOP_TMUX_SURFACE="0", LOOOP_MAX_WORKERS="0", NO_COLOR="1")
    pre = ["-m", "cProfile", "-o", prof] if prof else []
    root = subprocess.Popen([sys.executable, *pre, "-m", "looop"], env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=home,
                            start_new_session=True)
    out: dict[str, float] = {}
    sleeps: list[int] = []
    try:
        rp = psutil.Process(root.pid)
        wait(lambda: any(" ".join(c.cmdline()).startswith("looop: pulse [running]")
                         for c in rp.children()), 30, "pulse")
        time.sleep(0.3)
        ops = [{"op": "start", "id": f"w{i}", "prompt": "exec sleep 100000",
                "command": "bash {{prompt_file}}"} for i in range(n)]
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(60)
        s.connect(os.path.join(d, ".looop.sock"))
        cpu0 = sum(rp.cpu_times()[:2])
        box0 = box_busy()
        t0 = time.perf_counter()
        replies = request_all(s, ops)
        sleeps = [r["pid"] for r in replies]
        wait(lambda: all(comm(p) == "sleep" for p in sleeps), 30, "sleeps")
        out["start_ms"] = (time.perf_counter() - t0) * 1e3
        out["box_cpu_ms"] = (box_busy() - box0) * 1e3
        out["root_cpu_ms"] = (sum(rp.cpu_times()[:2]) - cpu0) * 1e3
        out["kids_cpu_ms"] = sum(oncpu(c.pid) for c in rp.children()
                                 if " ".join(c.cmdline()).startswith("looop: worker")) * 1e3
        out["cmds_cpu_ms"] = sum(oncpu(p) for p in sleeps) * 1e3
        s.close()
        time.sleep(1.0)
        uss = [c.memory_full_info().uss for c in rp.children()
               if " ".join(c.cmdline()).startswith("looop: worker")]
        out["uss_mib"] = statistics.median(uss) / (1 << 20)
        if SMAPS:
            kid = [c for c in rp.children() if " ".join(c.cmdline()).startswith("looop: worker")][-1]
            print(smaps(kid.pid))
        out["root_uss_mib"] = rp.memory_full_info().uss / (1 << 20)
        t0 = time.perf_counter()
        os.kill(root.pid, signal.SIGINT)
        root.wait(30)
        wait(lambda: not any(alive(p) for p in sleeps), 30, "sleeps gone")
        out["stop_ms"] = (time.perf_counter() - t0) * 1e3
    finally:
        if root.poll() is None:
            os.killpg(root.pid, signal.SIGKILL)
            root.wait()
        for p in sleeps:
            try:
                os.kill(p, signal.SIGKILL)
            except OSError:
                pass
        shutil.rmtree(d, ignore_errors=True)
    return out


SMAPS = False


def smaps(pid: int) -> str:
    """Private KiB per mapping of one process, largest first."""
    rows: dict[str, int] = {}
    name = "?"
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            parts = line.split()
            if "-" in parts[0] and len(parts) >= 5 and not parts[0].endswith(":"):
                name = (parts[5] if len(parts) > 5 else "[anon]") + " " + parts[1]
            elif parts[0] in ("Private_Clean:", "Private_Dirty:"):
                rows[name] = rows.get(name, 0) + int(parts[1])
    top = sorted(rows.items(), key=lambda kv: -kv[1])[:12]
    return "\n".join(f"  {v:6d} KiB {k}" for k, v in top)


def capture_rep(src: str, mb: int, tmp: str) -> dict[str, float]:
    """One worker writes `mb` MB without newlines; request → state exited."""
    d = tempfile.mkdtemp(dir=tmp, prefix="data")
    home = tempfile.mkdtemp(dir=tmp, prefix="home")
    env = dict(os.environ, HOME=home, PYTHONPATH=os.path.abspath(src), LOOOP_DATA_DIR=d,
               LOOOP_SHUTDOWN_GRACE="2", LOOOP_INTERVAL="3600", LOOOP_LOG_MAX_BYTES="0",
               LOOOP_TMUX_SURFACE="0", LOOOP_MAX_WORKERS="0", NO_COLOR="1")
    root = subprocess.Popen([sys.executable, "-m", "looop"], env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=home,
                            start_new_session=True)
    try:
        rp = psutil.Process(root.pid)
        wait(lambda: any(" ".join(c.cmdline()).startswith("looop: pulse [running]")
                         for c in rp.children()), 30, "pulse")
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(os.path.join(d, ".looop.sock"))
        cmd = f"head -c {mb * 1000000} /dev/zero | tr '\\0' a"
        kid_cpu = [0.0]
        box0 = box_busy()
        t0 = time.perf_counter()
        s.sendall(json.dumps({"op": "start", "id": "cap", "prompt": cmd,
                              "command": "bash {{prompt_file}}"}).encode() + b"\n")
        assert json.loads(s.recv(65536)).get("ok")
        st = os.path.join(d, "sessions", "cap", "status.json")

        def done() -> bool:
            try:
                with open(st) as f:
                    return json.load(f).get("state") == "exited"
            except (OSError, ValueError):
                return False
        def done_cpu() -> bool:
            for c in rp.children():
                if " ".join(c.cmdline()).startswith("looop: worker"):
                    kid_cpu[0] = max(kid_cpu[0], oncpu(c.pid))
            return done()
        wait(done_cpu, 300, "capture")
        dt = time.perf_counter() - t0
        box = box_busy() - box0
        size = os.path.getsize(os.path.join(d, "sessions", "cap", "output.log"))
        assert size == mb * 1000000, size
        s.close()
        return {"capture_s": dt, "box_cpu_s": box, "worker_child_cpu_s": kid_cpu[0]}
    finally:
        if root.poll() is None:
            os.kill(root.pid, signal.SIGINT)
            try:
                root.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(root.pid, signal.SIGKILL)
                root.wait()
        shutil.rmtree(d, ignore_errors=True)


def main() -> None:
    global SMAPS
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=50)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--src", action="append", help="source tree(s) on PYTHONPATH (default: .)")
    ap.add_argument("--prof", default="", help="run the root under cProfile, writing this file")
    ap.add_argument("--capture", type=int, default=0, help="instead: capture this many MB (no newlines)")
    ap.add_argument("--smaps", action="store_true", help="print one worker child's private mappings")
    a = ap.parse_args()
    SMAPS = a.smaps
    srcs = a.src or ["."]
    with tempfile.TemporaryDirectory(prefix="tree_speed") as tmp:
        res = interleaved(srcs, a.reps, lambda s: capture_rep(s, a.capture, tmp) if a.capture
                          else one_rep(s, a.n, tmp, a.prof))
    print(f"N={a.n}, {a.reps} reps, load {os.getloadavg()[0]:.1f}")
    for s, rows in res.items():
        print(f"{s}: " + rep_table(rows))


if __name__ == "__main__":
    main()
