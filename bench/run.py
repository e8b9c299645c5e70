"""looop side by side with the incumbents (SPEC §13). One entry point:

    python bench/run.py [--quick] [--peers supervisord,circus,pm2,tmux,script]
                        [--reps N] [--out DIR]

Installs nothing into the project's environment: peers go into a throwaway
prefix under a temp dir (see bench/peers/). Writes <out>/results.json and
<out>/RESULTS.md; a full run (not --quick) also writes bench/RESULTS.md.
Ctrl-C stops everything the bench started and keeps the partial results.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from typing import Any, Callable

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import figures as F  # noqa: E402
import report  # noqa: E402
from peers.base import Peer, Skip  # noqa: E402
from peers.looop_peer import Looop  # noqa: E402
from procs import Registry, leftovers  # noqa: E402

ALL_PEERS = ("supervisord", "circus", "pm2", "tmux", "script")


def peer_class(name: str) -> type[Peer]:
    import importlib
    mod = importlib.import_module(f"peers.{name}")
    return getattr(mod, "PEER")


def machine() -> dict[str, Any]:
    facts: dict[str, Any] = {"cores": os.cpu_count(), "kernel": platform.release(),
                             "python": platform.python_version(), "machine": platform.machine()}
    try:
        with open("/proc/cpuinfo") as f:
            facts["cpu"] = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), "?")
        with open("/proc/meminfo") as f:
            facts["mem_total_kib"] = int(f.readline().split()[1])
        facts["loadavg_start"] = os.getloadavg()
        import subprocess
        root = os.path.dirname(HERE)
        facts["git_head"] = subprocess.run(["git", "-C", root, "rev-parse", "--short", "HEAD"],
                                           capture_output=True, text=True).stdout.strip()
        facts["looop_files_modified"] = len(subprocess.run(
            ["git", "-C", root, "status", "--porcelain", "looop"], capture_output=True,
            text=True).stdout.splitlines())
    except (OSError, StopIteration, ValueError):
        pass
    return facts


def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="bench/run.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true",
                   help="N ≤ 2, 1 rep, 2 MB streams, looop only (the smoke test)")
    p.add_argument("--peers", default=None,
                   help=f"comma list of {','.join(ALL_PEERS)} (default: all; --quick: none)")
    p.add_argument("--reps", type=int, default=None, help="reps per figure (default 5; --quick 1)")
    p.add_argument("--out", default=None, help="results dir (default bench/results/<utc stamp>)")
    p.add_argument("--only", default=None,
                   help="comma list of figures: list,start,cold,stop,memory,restart,capture,pulse,"
                        "issue2,idle,send")
    p.add_argument("--n", type=int, default=None,
                   help="the largest N (default 200; --quick 2): figures at 1, 10, 50 and N")
    p.add_argument("--idle-s", type=float, default=None, help="idle-cost window (default 60 s; --quick 2)")
    p.add_argument("--send-reps", type=int, default=None, help="send round trips per tool (default 50)")
    p.add_argument("--limit-nofile", type=int, default=None,
                   help="RLIMIT_NOFILE of every daemon the bench starts (to try a box that cannot "
                        "hold N; RLIMIT_NPROC is not enforced for root)")
    p.add_argument("--grace", type=float, default=2.0, help="shutdown grace for every tool (s)")
    p.add_argument("--render", metavar="RESULTS_JSON", help="only re-render a results.json as markdown")
    a = p.parse_args(argv)
    if a.peers is None:
        a.peers = "" if a.quick else ",".join(ALL_PEERS)
    a.peer_list = [x for x in a.peers.split(",") if x]
    bad = [x for x in a.peer_list if x not in ALL_PEERS]
    if bad:
        p.error(f"unknown peer(s): {', '.join(bad)}")
    a.reps = a.reps or (1 if a.quick else 5)
    if a.n is not None and a.n < 1:
        p.error("--n must be ≥ 1")
    top = a.n or (2 if a.quick else 200)
    a.ns = tuple(sorted({1, top} if a.quick else {1, 10, min(50, top), top}))
    a.stop_ns = tuple(sorted({top} if a.quick else {min(50, top), top}))
    a.idle_ns = a.stop_ns
    a.idle_s = a.idle_s or (2.0 if a.quick else 60.0)
    a.send_reps = a.send_reps or (3 if a.quick else 50)
    a.size = (2 << 20) if a.quick else 200_000_000
    a.stream_reps = 1 if a.quick else min(3, a.reps)
    a.figs = set((a.only or "list,start,cold,stop,memory,restart,capture,pulse,issue2,idle,send").split(","))
    return a


def main(argv: list[str] | None = None) -> int:
    a = parse(sys.argv[1:] if argv is None else argv)
    if a.render:
        with open(a.render) as f:
            print(report.render(json.load(f)), end="")
        return 0
    # SIGTERM (e.g. `kill` of a background run) cleans up like Ctrl-C does.
    # A run started with `&` from a script has SIGINT ignored (POSIX): then
    # only SIGTERM stops it cleanly.
    signal.signal(signal.SIGTERM, _interrupt)
    tag = os.environ.get("LOOOP_BENCH_TAG") or f"bench-{uuid.uuid4().hex[:10]}"
    tmp = tempfile.mkdtemp(prefix="looop-bench-")
    out = a.out or os.path.join(HERE, "results", time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()))
    os.makedirs(out, exist_ok=True)
    reg = Registry(tag, tmp, nofile=a.limit_nofile)
    res: dict[str, Any] = {"started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                           "command": " ".join([os.path.basename(sys.executable), "bench/run.py",
                                                *(sys.argv[1:] if argv is None else argv)]),
                           "quick": a.quick, "reps": a.reps, "stream_reps": a.stream_reps,
                           "stream_bytes": a.size, "ns": list(a.ns), "grace_s": a.grace,
                           "stop_ns": list(a.stop_ns), "idle_s": a.idle_s, "limit_nofile": a.limit_nofile,
                           "machine": machine(), "peers": {}, "rows": [], "interrupted": False,
                           "teardown_notes": [], "leftovers": [], "tmp_dir": tmp}
    t_start = time.monotonic()
    try:
        run_all(a, reg, tmp, res)
    except KeyboardInterrupt:
        res["interrupted"] = True
        print("\ninterrupted — stopping everything the bench started, keeping partial results",
              file=sys.stderr)
    finally:
        res["teardown_notes"] += reg.teardown()
        res["leftovers"] = [f"{p.pid} {' '.join(p.cmdline())[:100]}" for p in leftovers(tag, tmp)
                            if _exists(p)]
        res["wall_s"] = round(time.monotonic() - t_start, 1)
        res["machine"]["loadavg_end"] = os.getloadavg()
        write(res, out, a)
        shutil.rmtree(tmp, ignore_errors=True)
    return 130 if res["interrupted"] else 0


def _interrupt(signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def _exists(p: Any) -> bool:
    try:
        return p.is_running()
    except Exception:
        return False


def write(res: dict[str, Any], out: str, a: argparse.Namespace) -> None:
    with open(os.path.join(out, "results.json"), "w") as f:
        json.dump(res, f, indent=1)
    md = report.render(res)
    with open(os.path.join(out, "RESULTS.md"), "w") as f:
        f.write(md)
    if not a.quick and not a.only and not a.out:
        with open(os.path.join(HERE, "RESULTS.md"), "w") as f:
            f.write(md)
    print(md)
    print(f"results: {os.path.join(out, 'results.json')}", file=sys.stderr)


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


@dataclass
class Ctx:
    """One run: options, the looop peer, the installed peers, the rows."""
    a: argparse.Namespace
    reg: Registry
    lp: Looop
    peers: list[Peer]
    rows: list[dict[str, Any]]

    def having(self, feature: str) -> list[Peer]:
        return [p for p in self.peers if feature in p.supports]


def install_peers(a: argparse.Namespace, reg: Registry, tmp: str, res: dict[str, Any]) -> Ctx:
    lp = Looop(reg, tmp, a.grace)
    lp.install()
    res["peers"]["looop"] = {"version": lp.version, "bin": lp.bin, "bytecode": lp.bytecode}
    log(f"looop bytecode: {lp.bytecode}")
    ctx = Ctx(a, reg, lp, [lp], res["rows"])
    for name in a.peer_list:
        p = peer_class(name)(reg, tmp, a.grace)
        t0 = time.monotonic()
        log(f"installing {name}")
        try:
            p.install()
            res["peers"][name] = {"version": p.version, "install_s": round(time.monotonic() - t0, 1)}
            ctx.peers.append(p)
        except Skip as e:
            res["peers"][name] = {"skipped": str(e)}
            log(f"{name} skipped: {e}")
    return ctx


def fig_start_floors(c: Ctx) -> None:
    env = c.reg.env()
    for n in c.a.ns:
        for what, argv, pty in (
                ("N × fork+exec `sleep`", ["sleep", "100000"], False),
                ("N × fork+exec `bash -lc 'exec sleep'`", ["bash", "-lc", "exec sleep 100000"], False),
                ("N × fork+exec `bash -lc 'exec sleep'` on a new PTY", ["bash", "-lc", "exec sleep 100000"], True)):
            c.rows.append(_floor(lambda: F.start_floor(n, argv, pty, env, c.a.reps), "start", n, what))
    real = dict(c.reg.env(), HOME=os.path.expanduser("~"))
    c.rows.append(_floor(lambda: [F.timed(["bash", "-lc", "true"], real, timeout=90)[0] for _ in range(c.a.reps)],
                         "start", 1, "`bash -lc true` with the real HOME (dotfiles)"))


def fig_fleet(c: Ctx) -> None:
    """start, list and memory share one daemon per peer and N."""
    for p in c.having("start"):
        mem: dict[int, Any] = {}
        for n in c.a.ns:
            log(f"{p.name}: start/list/memory at N={n}")
            before = len(c.rows)
            F.guarded_block(c.rows, "start", n, p, lambda: F.fleet(
                p, n, c.a.reps, c.rows, c.a.reps, c.lp.floors() if p is c.lp else None),
                what="request → N running")
            for r in c.rows[before:]:
                if r["figure"] == "memory" and r["what"] == "raw":
                    mem[n] = r["extra"]["mem"]
            c.rows[:] = [r for r in c.rows if not (r["figure"] == "memory" and r["what"] == "raw")]
        c.rows.extend(F.memory_rows(p.name, mem))


def fig_cold(c: Ctx) -> None:
    log("looop: cold start")
    F.guarded(c.rows, "cold", 0, c.lp, "`looop` exec → pulse running",
              lambda: [_cold(c.lp) for _ in range(c.a.reps)])


def fig_stop(c: Ctx) -> None:
    for n in c.a.stop_ns:
        for p in c.having("stop"):
            for prog, what in (("sleep", "cooperative"), ("ignore", f"ignore SIGTERM (grace {c.a.grace:g} s)")):
                log(f"{p.name}: stop all at N={n}, {prog}")
                F.guarded(c.rows, "stop", n, p, what, lambda: F.stop_all(p, n, prog, c.a.reps))


def fig_idle(c: Ctx) -> None:
    for n in c.a.idle_ns:
        log(f"looop: idle cost at N={n} over {c.a.idle_s:g} s")
        F.guarded_block(c.rows, "idle", n, c.lp, lambda: F.idle_cost(c.lp, n, c.a.idle_s, c.rows))


def fig_send(c: Ctx) -> None:
    tmux = next((p for p in c.peers if p.name == "tmux"), None)
    log(f"send round trip, {c.a.send_reps} reps" + (" (looop, tmux interleaved)" if tmux else ""))
    F.guarded_block(c.rows, "send", 1, c.lp, lambda: F.send_rtt(c.lp, tmux, c.a.send_reps, c.rows))


def fig_restart(c: Ctx) -> None:
    for p in c.having("restart"):
        log(f"{p.name}: restart after SIGKILL")
        what = "SIGKILL pulse child → new pulse running" if p is c.lp else \
            "SIGKILL program → autorestarted program running"
        F.guarded(c.rows, "restart", None, p, what, lambda: F.restart(p, c.a.reps))


def fig_capture(c: Ctx) -> None:
    a = c.a
    for prog, what in (("yes", "yes (2-byte lines)"), ("nonl", "no newlines")):
        c.rows.append(_floor(lambda: F.producer_floor(prog, a.size, a.stream_reps, c.reg.env()),
                             "capture", a.size, what + " → /dev/null, no PTY"))
        for p in c.having("capture"):
            log(f"{p.name}: capture {prog} {a.size} bytes")
            F.guarded(c.rows, "capture", a.size, p, what, lambda: F.capture(p, prog, a.size, a.stream_reps))


def fig_pulse(c: Ctx) -> None:
    log("looop: pulse beats")
    _pulse(c.lp, c.a, c.rows)


def fig_issue2(c: Ctx) -> None:
    log("looop: issue-2 quick figures at N=20")
    _issue2(c.lp, 2 if c.a.quick else 20, c.a.reps, c.rows)


# In run order: (names in --only that select it, the figure)
FIGURES: list[tuple[set[str], Callable[[Ctx], None]]] = [
    ({"start"}, fig_start_floors),
    ({"list", "start", "memory"}, fig_fleet),
    ({"cold"}, fig_cold),
    ({"stop"}, fig_stop),
    ({"restart"}, fig_restart),
    ({"capture"}, fig_capture),
    ({"pulse"}, fig_pulse),
    ({"issue2"}, fig_issue2),
    ({"idle"}, fig_idle),
    ({"send"}, fig_send),
]


def run_all(a: argparse.Namespace, reg: Registry, tmp: str, res: dict[str, Any]) -> None:
    ctx = install_peers(a, reg, tmp, res)
    for names, fig in FIGURES:
        if names & a.figs:
            fig(ctx)


def _floor(fn: Callable[[], list[float]], figure: str, n: int | None, what: str) -> dict[str, Any]:
    try:
        return F.row(figure, n, "floor", what, fn())
    except Exception as e:  # noqa: BLE001 - a floor failing is a failed row, never a crash
        return F.row(figure, n, "floor", what, failed=str(e))


def _cold(lp: Looop) -> float:
    dt = lp.boot(0)
    lp.teardown()
    return dt


def _pulse(lp: Looop, a: argparse.Namespace, rows: list[dict[str, Any]]) -> None:
    import subprocess
    r = subprocess.run([lp.bin, "tick", "--help"], capture_output=True, text=True)
    if r.returncode != 0:
        why = "`looop tick` is not implemented yet: " + (r.stderr.strip().splitlines() or ["?"])[-1]
        for what in ("no-change beat, 20 sensors × 0.2 s (`looop tick`)", "deciding beat, fake runner (`looop tick`)"):
            rows.append(F.row("pulse", 20, "looop", what, failed=why))
        return
    before = len(rows)
    F.guarded_block(rows, "pulse", 20, lp, lambda: F.pulse_beats(lp, a.reps, rows))
    del before


def _issue2(lp: Looop, n: int, reps: int, rows: list[dict[str, Any]]) -> None:
    def block() -> None:
        starts, lss, stops, uss, rss = [], [], [], [], []
        for _ in range(reps):
            lp.boot(n, "sleep")
            starts.append(lp.start_all())
            argv, env = lp.list_cmds()["looop ls"]
            lss.append(F.timed(argv, env)[0])
            m = lp.daemon_mem()
            uss += [w["uss"] for w in m["workers"]]
            rss += [w["rss"] for w in m["workers"]]
            stops.append(lp.shutdown())
            lp.teardown()
        rows.append(F.row("issue2", n, "looop", f"start {n} workers (socket, daemon up)", starts))
        rows.append(F.row("issue2", n, "looop", f"`looop ls` with {n} live workers", lss))
        rows.append(F.row("issue2", n, "looop", "USS per worker child", uss, unit="B"))
        rows.append(F.row("issue2", n, "looop", "RSS per worker child", rss, unit="B"))
        rows.append(F.row("issue2", n, "looop", f"Ctrl-C → tree empty, {n} workers", stops))
    F.guarded_block(rows, "issue2", n, lp, block)


if __name__ == "__main__":
    sys.exit(main())
