"""The figures of SPEC §13, driven peer by peer. Each block appends rows:

    {"figure", "n", "peer", "what", "unit": "s"|"B", "stats": summary|None,
     "failed": reason|None, "extra": {...}}

A block that raises is recorded as failed with the reason; the caller tears
the peer down and goes on.
"""
from __future__ import annotations

import os
import statistics
import subprocess
import time
from typing import Any, Callable

from peers.base import Peer
from procs import FigureFailed, cpu_wakes, sweep, timed, tree_parts
from stats import summary

Rows = list[dict[str, Any]]


def row(figure: str, n: int | None, peer: str, what: str, samples: list[float] | None = None,
        unit: str = "s", failed: str | None = None, **extra: Any) -> dict[str, Any]:
    return {"figure": figure, "n": n, "peer": peer, "what": what, "unit": unit,
            "stats": summary(samples) if samples else None, "failed": failed, "extra": extra}


def list_latency(argv: list[str], env: dict[str, str], reps: int) -> list[float]:
    timed(argv, env)  # warm the page cache once, untimed
    return [timed(argv, env)[0] for _ in range(reps)]


def fleet(peer: Peer, n: int, reps: int, rows: Rows, list_reps: int,
          floors: dict[str, tuple[list[str], dict[str, str]]] | None = None) -> None:
    """At N live programs: start latency (daemon up), then list latency and
    the memory of the manager's own processes. `floors` are timed rep by rep
    interleaved with the list commands (the box is shared and noisy)."""
    peer.boot(n, "sleep")
    starts = []
    for _ in range(reps):
        starts.append(peer.start_all())
        peer.stop_programs()
    rows.append(row("start", n, peer.name, "request → N running", starts))
    peer.start_all()
    cmds = [(peer.name, label, argv, env) for label, (argv, env) in peer.list_cmds().items()]
    cmds += [("floor", label, argv, env) for label, (argv, env) in (floors or {}).items()]
    got: dict[tuple[str, str], list[float]] = {(who, label): [] for who, label, _, _ in cmds}
    for who, label, argv, env in cmds:
        timed(argv, env)  # warm the page cache once, untimed
    for _ in range(list_reps):
        for who, label, argv, env in cmds:
            got[(who, label)].append(timed(argv, env)[0])
    for (who, label), samples in got.items():
        rows.append(row("list", n, who, label, samples))
    m = peer.daemon_mem()
    rows.append(row("memory", n, peer.name, "raw", None, unit="B", mem=m))
    peer.teardown()


def memory_rows(peer: str, raw: dict[int, dict[str, Any]]) -> Rows:
    """Per-process and total USS/PSS at each N, and the slope per worker."""
    out: Rows = []
    totals: dict[int, dict[str, int]] = {}
    for n, m in sorted(raw.items()):
        procs = [v for k, v in m.items() if k != "workers" and isinstance(v, dict)] + m.get("workers", [])
        totals[n] = {k: sum(p[k] for p in procs) for k in ("uss", "pss")}
        for k in ("uss", "pss"):
            out.append(row("memory", n, peer, f"total {k.upper()}", [totals[n][k]], unit="B"))
        for part in ("root", "pulse_child", "pulse_cmd", "daemon"):
            if part in m:
                out.append(row("memory", n, peer, f"{part} USS", [m[part]["uss"]], unit="B"))
        if m.get("workers"):
            out.append(row("memory", n, peer, "worker child USS", [w["uss"] for w in m["workers"]], unit="B"))
            out.append(row("memory", n, peer, "worker child RSS", [w["rss"] for w in m["workers"]], unit="B"))
    ns = sorted(totals)
    if len(ns) >= 2 and ns[-1] > ns[0]:
        for k in ("uss", "pss"):
            slope = (totals[ns[-1]][k] - totals[ns[0]][k]) / (ns[-1] - ns[0])
            out.append(row("memory-slope", None, peer, f"{k.upper()} per worker", [slope], unit="B",
                           between=[ns[0], ns[-1]]))
    return out


def stop_all(peer: Peer, n: int, program: str, reps: int) -> list[float]:
    out = []
    for _ in range(reps):
        peer.boot(n, program)
        peer.start_all()
        out.append(peer.shutdown())
        peer.teardown()
    return out


def restart(peer: Peer, reps: int) -> list[float]:
    peer.boot(1, "sleep", autorestart=True)
    peer.start_all()
    out = [peer.restart_rep() for _ in range(reps)]
    peer.teardown()
    return out


def capture(peer: Peer, program: str, size: int, reps: int) -> list[float]:
    out = [peer.capture(program, size) for _ in range(reps)]
    peer.teardown()
    return out


def producer_floor(program: str, size: int, reps: int, env: dict[str, str]) -> list[float]:
    """The stream itself into /dev/null, no PTY, no capture."""
    from peers.base import shell
    return [timed(["sh", "-c", shell(program, size) + " > /dev/null"], env, timeout=900)[0]
            for _ in range(reps)]


def guarded(rows: Rows, figure: str, n: int | None, peer: Peer, what: str,
            fn: Callable[[], list[float]], **extra: Any) -> None:
    """Run one measurement; a failure becomes a failed row. The peer is torn
    down either way (KeyboardInterrupt passes through, after the teardown)."""
    try:
        rows.append(row(figure, n, peer.name, what, fn(), **extra))
    except FigureFailed as e:
        rows.append(row(figure, n, peer.name, what, failed=str(e), **extra))
    except (OSError, subprocess.SubprocessError, ValueError, KeyError, AssertionError) as e:
        rows.append(row(figure, n, peer.name, what, failed=f"{type(e).__name__}: {e}", **extra))
    finally:
        peer.teardown()
        peer.reg.notes += [f"after {figure} {peer.name}: {x}" for x in sweep(peer.reg.tag, peer.reg.tmp)]


def guarded_block(rows: Rows, figure: str, n: int | None, peer: Peer, fn: Callable[[], None],
                  what: str = "(all)") -> None:
    try:
        fn()
    except FigureFailed as e:
        rows.append(row(figure, n, peer.name, what, failed=str(e)))
    except (OSError, subprocess.SubprocessError, ValueError, KeyError, AssertionError) as e:
        rows.append(row(figure, n, peer.name, what, failed=f"{type(e).__name__}: {e}"))
    finally:
        peer.teardown()
        peer.reg.notes += [f"after {figure} {peer.name}: {x}" for x in sweep(peer.reg.tag, peer.reg.tmp)]


# -- the pulse (looop only) -------------------------------------------------

SENSOR = "#!/bin/sh\nsleep 0.2\necho '{\"signal\": \"steady\"}'\n"
RUNNER = ("cat > /dev/null; echo call >> {calls}; printf '%s' "
          "'{{\"action\":\"noop\",\"reason\":\"bench\",\"journal\":\"bench beat\"}}' > .decision.json")
IN_PROCESS = """
import io, json, os, sys, time
from looop.pulse.loop import one_beat
from looop.ui.out import Printer
d, reps = sys.argv[1], int(sys.argv[2])
out = Printer(json=True, stream=io.StringIO())
one_beat(d, out)  # the world is new: decides and records the hash
xs = []
for _ in range(reps):
    t0 = time.perf_counter(); one_beat(d, out); xs.append(time.perf_counter() - t0)
print(json.dumps(xs))
"""


def pulse_dir(peer: Any, calls: str) -> str:
    """A data dir with 20 sensors of 0.2 s and a fake runner that counts its
    calls and writes one noop decision (no seeding: `.seeded` is present)."""
    import json
    d = peer.fresh_dir("pulse")
    os.makedirs(os.path.join(d, "sensors"), exist_ok=True)
    open(os.path.join(d, ".seeded"), "w").close()
    for i in range(20):
        p = os.path.join(d, "sensors", f"s{i:02d}.sh")
        with open(p, "w") as f:
            f.write(SENSOR)
        os.chmod(p, 0o755)
    with open(os.path.join(d, "looop.json"), "w") as f:
        json.dump({"default": "fake", "runners": {"fake": {
            "tick": RUNNER.format(calls=calls), "interactive": "bash {{prompt_file}}"}}}, f)
    return d


def pulse_beats(peer: Any, reps: int, rows: Rows) -> None:
    """No-change beats with 20 sensors of 0.2 s — `looop tick` end to end and
    in-process `one_beat` (no interpreter start) — and deciding beats with
    the fake runner (`.last-tick-hash` removed before each)."""
    import json
    calls = os.path.join(peer.tmp, f"pulse-calls-{peer.seq + 1}")
    peer.d = pulse_dir(peer, calls)
    peer.tick()  # first beat: the world is new, the runner decides
    n0 = _count(calls)
    nochange = [peer.tick()[0] for _ in range(reps)]
    rows.append(row("pulse", 20, peer.name, "no-change beat, 20 sensors × 0.2 s (`looop tick`)",
                    nochange, runner_calls=_count(calls) - n0))
    n0 = _count(calls)
    _, r = timed([peer.py, "-c", IN_PROCESS, peer.d, str(reps)], peer.env(), timeout=120)
    rows.append(row("pulse", 20, peer.name, "no-change beat, 20 sensors × 0.2 s (in-process one_beat)",
                    json.loads(r.stdout), runner_calls=_count(calls) - n0))
    decide = []
    n0 = _count(calls)
    for _ in range(reps):
        try:
            os.unlink(os.path.join(peer.d, ".last-tick-hash"))
        except FileNotFoundError:
            pass
        decide.append(peer.tick()[0])
    rows.append(row("pulse", 20, peer.name, "deciding beat, fake runner (`looop tick`)", decide,
                    runner_calls=_count(calls) - n0))
    floor = ["sh", "-c", " ".join(f"{os.path.join(peer.d, 'sensors', s)} >/dev/null &"
                                  for s in sorted(os.listdir(os.path.join(peer.d, "sensors")))) + " wait"]
    rows.append(row("pulse", 20, "floor", "sh starts the same 20 sensors and waits",
                    [timed(floor, peer.env())[0] for _ in range(reps)]))


def _count(path: str) -> int:
    try:
        with open(path) as f:
            return sum(1 for _ in f)
    except OSError:
        return 0


def median(xs: list[float]) -> float:
    return statistics.median(xs)


def settle(seconds: float = 0.2) -> None:
    time.sleep(seconds)


# -- floors for start latency -----------------------------------------------

def start_floor(n: int, argv: list[str], pty: bool, env: dict[str, str], reps: int) -> list[float]:
    """N × fork+exec of argv from this process (each in its own session, with
    a fresh PTY as its stdio if `pty`) → all N running `sleep`; then killed."""
    import signal as _signal
    from procs import comm, wait_until as _wait
    out = []
    for _ in range(reps):
        procs, fds = [], []
        t0 = time.perf_counter()
        try:
            for _i in range(n):
                if pty:
                    m, s = os.openpty()
                    procs.append(subprocess.Popen(argv, stdin=s, stdout=s, stderr=s, env=env,
                                                  start_new_session=True))
                    os.close(s)
                    fds.append(m)
                else:
                    procs.append(subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                                  env=env, start_new_session=True))
            _wait(lambda: all(comm(p.pid) == "sleep" for p in procs), 60, "floor sleeps")
            out.append(time.perf_counter() - t0)
        finally:
            for p in procs:
                try:
                    os.killpg(p.pid, _signal.SIGKILL)
                except OSError:
                    pass
                p.wait()
            for m in fds:
                os.close(m)
    return out


# -- idle cost (looop only) ---------------------------------------------------

IDLE_SETTLE = 5.0  # after the last start: first settles, the pulse's first beat, into its sleep


def idle_cost(lp: Any, n: int, seconds: float, rows: Rows) -> None:
    """N idle workers (`exec sleep`) and the pulse asleep (interval 1 h):
    CPU of looop's processes over `seconds`, as % of one core, and how often
    they were scheduled in (wakes/s). Target: ≤ 0.1 % of one core at N=200
    for the root and its children (no polling: every wake has a reason)."""
    lp.boot(n, "sleep")
    lp.start_all()
    time.sleep(IDLE_SETTLE)
    parts = tree_parts(lp.proc.pid)
    before = {p: cpu_wakes(p) for ps in parts.values() for p in ps}
    t0 = time.perf_counter()
    time.sleep(seconds)
    dt = time.perf_counter() - t0
    after = {p: cpu_wakes(p) for p in before}
    gone = [p for p in before if after[p] == (0, 0)]
    if gone:
        raise FigureFailed(f"{len(gone)} of looop's processes ended during the idle window")
    total = {"cpu": 0.0, "wakes": 0.0}
    for part in ("root", "worker children", "pulse child", "pulse command"):
        cpu = sum(after[p][0] - before[p][0] for p in parts[part]) / 1e9
        wakes = sum(after[p][1] - before[p][1] for p in parts[part])
        if part != "pulse command":
            total["cpu"] += cpu
            total["wakes"] += wakes
        rows.append(row("idle", n, "looop", f"{part} ({len(parts[part])}): CPU, % of one core",
                        [100 * cpu / dt], unit="%", wakes_per_s=round(wakes / dt, 2), window_s=round(dt, 1)))
    rows.append(row("idle", n, "looop", "root + pulse child + worker children: CPU, % of one core",
                    [100 * total["cpu"] / dt], unit="%", wakes_per_s=round(total["wakes"] / dt, 2),
                    window_s=round(dt, 1)))
    lp.teardown()


# -- send round trip ------------------------------------------------------------

# The program in the PTY: raw mode (each byte is readable at once, and echoed,
# so `looop send` sees its paste on the screen), every byte on to a FIFO.
SEND_CLI = "the tool's CLI sends `x` → first byte read by the program on the PTY"
ECHO_TO = "stty raw; exec dd bs=1 of={fifo} status=none"


def _fifo(tmp: str, name: str) -> tuple[str, int]:
    path = os.path.join(tmp, name)
    if os.path.exists(path):
        os.unlink(path)
    os.mkfifo(path)
    return path, os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # a reader first: dd's open won't block


def _first_byte(fd: int, t0: float, timeout: float = 10.0) -> float:
    """Seconds from t0 until `fd` is readable; FigureFailed after timeout."""
    import select
    r, _, _ = select.select([fd], [], [], timeout)
    if not r:
        raise FigureFailed(f"no byte reached the program within {timeout:g}s")
    return time.perf_counter() - t0


def _drain(fd: int, settle: float = 0.05) -> None:
    """Read what is there, until nothing more comes for `settle` s."""
    import select
    while select.select([fd], [], [], settle)[0]:
        try:
            if not os.read(fd, 1 << 16):
                return
        except BlockingIOError:
            return


def send_rtt(lp: Any, tmux: Any, reps: int, rows: Rows) -> None:
    """Text sent → its first byte readable by the program on the PTY (it
    reads in raw mode and copies every byte to a FIFO the bench watches).
    looop: `looop send -n` (the whole CLI process) and one `input` op on an
    open control socket (the tree alone); tmux: `tmux send-keys -l`;
    interleaved rep by rep, with the `python -c pass` floor."""
    import socket
    import json as _json
    from procs import comm, wait_until as _wait
    lfifo, lfd = _fifo(lp.tmp, "send-looop.fifo")
    fds = [lfd]
    try:
        lp.boot(0)
        pids = lp.start_ids(["rt"], ECHO_TO.format(fifo=lfifo))
        _wait(lambda: comm(pids["rt"]) == "dd", 10, "dd in the worker's PTY")
        time.sleep(0.3)
        _drain(lfd)
        tsend = None
        if tmux is not None:
            tfifo, tfd = _fifo(lp.tmp, "send-tmux.fifo")
            fds.append(tfd)
            tmux._serve()
            tmux.t("new-window", "-d", "-t", "base", "-n", "rt", ECHO_TO.format(fifo=tfifo))
            _wait(lambda: [p for p in __import__("procs").descendants(tmux.server) if comm(p) == "dd"], 10,
                  "dd in the tmux pane")
            time.sleep(0.3)
            _drain(tfd)
            tsend = [tmux.bin, "-L", tmux.sock, "send-keys", "-t", "base:rt", "-l", "x"]
        env = lp.env()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(10)
        sock.connect(os.path.join(lp.d, ".looop.sock"))
        got: dict[str, list[float]] = {"cli": [], "op": [], "tmux": [], "floor": []}
        for _ in range(reps):
            t0 = time.perf_counter()
            p = subprocess.Popen([lp.bin, "send", "-n", "rt", "x"], env=env, stdin=subprocess.DEVNULL,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            got["cli"].append(_first_byte(lfd, t0))
            _, err = p.communicate(timeout=30)
            if p.returncode != 0:
                raise FigureFailed(f"looop send exited {p.returncode}: {err.decode(errors='replace')[-200:]}")
            _drain(lfd)
            t0 = time.perf_counter()
            sock.sendall(_json.dumps({"op": "input", "id": "rt", "data": "x"}).encode() + b"\n")
            got["op"].append(_first_byte(lfd, t0))
            line = b""
            while not line.endswith(b"\n"):
                line += sock.recv(4096)
            _drain(lfd)
            if tsend is not None:
                t0 = time.perf_counter()
                p = subprocess.Popen(tsend, env=tmux.reg.env(), stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                got["tmux"].append(_first_byte(fds[1], t0))
                p.wait(30)
                _drain(fds[1])
            got["floor"].append(timed([lp.py, "-c", "pass"], lp.reg.env())[0])
        sock.close()
        rows.append(row("send", 1, "looop", SEND_CLI, got["cli"], cmd="looop send -n"))
        rows.append(row("send", 1, "looop", "control socket `input` op → first byte (no CLI)", got["op"]))
        if tsend is not None:
            rows.append(row("send", 1, "tmux", SEND_CLI, got["tmux"], cmd="tmux send-keys -l"))
        rows.append(row("send", 1, "floor", "`python -c pass` (looop's interpreter)", got["floor"]))
    finally:
        for fd in fds:
            os.close(fd)
        if tmux is not None:
            tmux.teardown()
        lp.teardown()
