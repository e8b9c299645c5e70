"""Remote workers (issue 13, SPEC §17): N workers on each engine — local, ssh
to this host, Slurm on this host — interleaved rep by rep in one run.

    python bench/remote_speed.py [--n 50] [--reps 5] [--engines local,ssh,slurm] [--ls-reps 5] [--grace 5]

Needs the engines of .ci/engines.sh (`set -a; . /tmp/looop-engines/env`);
an engine without its variable is skipped and said so. Each rep boots a
fresh root (`python -m looop`, empty HOME, fresh data dir), sends N `start`
requests on one connection (one sendall) and times request → all running:
every worker's command has printed `up` into its output.log (for ssh and
Slurm that is the remote command, past the handshake / the allocation).
Then, per worker: the local worker child's USS and its engine client's USS
(every local descendant of the child: ssh, or srun and its helper; for
local workers the command itself, `sleep`); then `looop ls` wall time at N
with those rows, interleaved with the floor `python -c 'import psutil'`
(looop's interpreter); then SIGINT to the root → root gone and nothing of
the data dir left on the engine (stop), and how many workers ended by the
graceful signal rather than by SIGKILL after the grace (137). Prints medians [min–max].
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
from procs import alive, request_all  # noqa: E402 (bench/ is on sys.path: run as a script)

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from looop.tree.backends import data_dir_hash  # noqa: E402

SSH_CONFIG = os.environ.get("LOOOP_TEST_SSH", "")
HOSTS = [h for h in os.environ.get("LOOOP_TEST_SSH_HOSTS", "").split(",") if h]
LOOOP = os.path.join(os.path.dirname(sys.executable), "looop")
CMD = "echo up; exec sleep 100000"


def wait(cond, timeout: float, what: str, poll: float = 0.01) -> None:
    end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > end:
            raise RuntimeError(f"timeout: {what}")
        time.sleep(poll)


def runners() -> dict:
    tick = '"$LOOOP_BIN" _rules'
    out = {"here": {"interactive": "bash {{prompt_file}}", "tick": tick}}
    if SSH_CONFIG and HOSTS:
        out["ssh"] = {"interactive": "bash {{prompt_file}}", "tick": tick,
                      "backend": {"kind": "ssh", "hosts": HOSTS, "options": ["-F", SSH_CONFIG]}}
    if os.environ.get("LOOOP_TEST_SLURM"):
        out["slurm"] = {"interactive": "bash {{prompt_file}}", "tick": tick,
                        "backend": {"kind": "slurm", "partition": "debug", "time": "10"}}
    return out


def marked(h: str) -> list[int]:
    """Processes on this host (the ssh 'remote') carrying the data dir's marker."""
    out = []
    for p in psutil.process_iter(["environ"]):
        if ((p.info.get("environ") or {}).get("LOOOP_SWEEP") or "").startswith(h + ":"):
            out.append(p.pid)
    return out


def jobs(h: str) -> list[str]:
    out = subprocess.run(["squeue", "--me", "-h", "-o", "%i %j"], capture_output=True, text=True,
                         timeout=20).stdout
    return [ln.split()[0] for ln in out.splitlines() if ln.split()[-1].endswith("-" + h)]


def wall(argv: list[str], env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True,
                   timeout=60)
    return time.perf_counter() - t0


def uss(pid: int) -> float:
    try:
        return psutil.Process(pid).memory_full_info().uss
    except psutil.Error:
        return 0.0


def one_rep(engine: str, n: int, tmp: str, ls_reps: int, grace: float) -> dict[str, float]:
    d = tempfile.mkdtemp(dir=tmp, prefix="data")
    home = tempfile.mkdtemp(dir=tmp, prefix="home")
    h = data_dir_hash(d)
    with open(os.path.join(d, "looop.json"), "w") as f:
        json.dump({"default": "rules", "runners": runners()}, f)
    env = dict(os.environ, HOME=home, LOOOP_DATA_DIR=d, LOOOP_SHUTDOWN_GRACE=str(grace), LOOOP_INTERVAL="3600",
               LOOOP_TMUX_SURFACE="0", NO_COLOR="1", LOOOP_MAX_WORKERS=str(max(n + 8, 64)))
    root = subprocess.Popen([sys.executable, "-m", "looop"], env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=home,
                            start_new_session=True)
    out: dict[str, float] = {}
    try:
        rp = psutil.Process(root.pid)
        wait(lambda: any(" ".join(c.cmdline()).startswith("looop: pulse [running]")
                         for c in rp.children()), 30, "pulse")
        time.sleep(0.3)
        ops = [{"op": "start", "id": f"w{i}", "prompt": CMD, "runner": engine} for i in range(n)]
        logs = [os.path.join(d, "sessions", f"w{i}", "output.log") for i in range(n)]

        def up(p: str) -> bool:
            try:
                with open(p, "rb") as f:
                    return b"up\r\n" in f.read(1 << 14)
            except OSError:
                return False
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(120)
        s.connect(os.path.join(d, ".looop.sock"))
        t0 = time.perf_counter()
        replies = request_all(s, ops)
        bad = [r for r in replies if not r.get("ok")]
        if bad:
            raise RuntimeError(f"{engine}: start refused: {bad[0]}")
        out["replies_s"] = time.perf_counter() - t0
        pending = list(logs)

        def all_up() -> bool:
            pending[:] = [p for p in pending if not up(p)]
            return not pending
        wait(all_up, 300, f"{engine}: all {n} up")
        out["all_running_s"] = time.perf_counter() - t0
        s.close()
        time.sleep(1.0)
        kids = [c for c in rp.children() if " ".join(c.cmdline()).startswith("looop: worker")]
        out["child_uss_mib"] = statistics.median(uss(c.pid) for c in kids) / (1 << 20)
        out["client_uss_mib"] = statistics.median(
            sum(uss(x.pid) for x in c.children(recursive=True)) for c in kids) / (1 << 20)
        ls_t, floor_t = [], []
        for _ in range(ls_reps):
            ls_t.append(wall([LOOOP, "ls"], env))
            floor_t.append(wall([sys.executable, "-c", "import psutil"], env))
        out["ls_ms"] = statistics.median(ls_t) * 1e3
        out["floor_ms"] = statistics.median(floor_t) * 1e3
        t0 = time.perf_counter()
        os.kill(root.pid, signal.SIGINT)
        root.wait(120)
        if engine == "ssh":
            wait(lambda: not marked(h), 60, "ssh: remote processes gone")
        elif engine == "slurm":
            wait(lambda: not jobs(h), 60, "slurm: jobs gone", poll=0.2)
        out["stop_s"] = time.perf_counter() - t0
        codes = []
        for i in range(n):
            try:
                with open(os.path.join(d, "sessions", f"w{i}", "status.json")) as f:
                    codes.append(json.load(f).get("exit_code"))
            except (OSError, ValueError):
                codes.append(None)
        # ended by the graceful signal (local: HUP, 129; ssh/Slurm: TERM, 143), not SIGKILL after the grace
        out["graceful"] = sum(c is not None and c != 137 for c in codes)
    finally:
        if root.poll() is None:
            os.killpg(root.pid, signal.SIGKILL)
            root.wait()
        for pid in marked(h):
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
        if engine == "slurm":
            left = jobs(h)
            if left:
                subprocess.run(["scancel", *left], timeout=20)
        shutil.rmtree(d, ignore_errors=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=50)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--engines", default="local,ssh,slurm")
    ap.add_argument("--ls-reps", type=int, default=5)
    ap.add_argument("--grace", type=float, default=5.0, help="LOOOP_SHUTDOWN_GRACE (looop's default: 5)")
    a = ap.parse_args()
    have = {"local": "here", **{k: k for k in runners() if k != "here"}}
    engines = [e for e in a.engines.split(",") if e]
    for e in engines:
        if e not in have:
            print(f"{e}: skipped (its engine is not up: .ci/engines.sh start, then source its env)")
    engines = [have[e] for e in engines if e in have]
    load0 = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="remote_speed") as tmp:
        res = interleaved(engines, a.reps, lambda e: one_rep(e, a.n, tmp, a.ls_reps, a.grace))
    print(f"N={a.n}, {a.reps} reps, grace {a.grace:g} s, load {load0:.1f} → {os.getloadavg()[0]:.1f}, {os.cpu_count()} cpus")
    for e, rows in res.items():
        print(f"{'local' if e == 'here' else e}: " + rep_table(rows))


if __name__ == "__main__":
    main()
