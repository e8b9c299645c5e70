"""Focused bench of activity tracking (issue 11, SPEC §15): what knowing what
every worker does costs, and how fast a permission dialog reaches a person.

    python bench/activity_speed.py [--n 50] [--reps 15] [--window 60] [--dialogs 10]
                                   [--only ls,cpu,chatty,latency] [--append bench/RESULTS.md]

Run with looop's interpreter (the venv where `looop` is installed). Workers
are the scripted fake agent TUI (tests/fakes/agent_tui.py) with the tests'
patterns and the default `settle` (1.5 s), each idle at its input box
(activity `ready`, evidence `screen`). Empty HOME, fresh data dir,
LOOOP_INTERVAL=3600 (no decider beats), no notify_command except in `latency`.

ls       `looop ls` (the ACTIVITY column) and `looop ls --json` with N live
         workers, interleaved rep by rep with the floors `python -c pass` and
         `python -c 'import psutil'` (the same interpreter). Wall of the
         whole process; target: `looop ls` ≤ 1.3 × the psutil floor. Also
         each process's CPU (user+sys, getrusage of children): on a loaded
         shared box the wall is mostly waiting for a core, the CPU is not.
cpu      CPU seconds (/proc/<pid>/task/*/schedstat, ns) of the root and of
         every worker child over `window` seconds with the N workers idle,
         reported per process kind; the pulse child and the pulse's
         `looop _pulse` command apart; the N TUIs themselves as the floor
         (idle programs). Target: root + worker children ≤ 1 % of one core.
chatty   the same window with N `bash` workers each printing one line every
         5 s (every line is a burst: one look at the screen `settle` later)
         — the cost of the look path itself, not a target.
latency  one worker, a notify_command that appends `date +%s.%N`; `dialogs`
         times: type `ask` into the TUI, and take t0 = the dialog's bytes in
         its output.log (polled every 1 ms: the moment looop has them), t1 =
         the `asking` item in `looop.inbox.collect` (the inbox itself,
         polled every ~10 ms), t2 = the notify_command's own clock. Then `y`,
         and the item must leave the notifier's memory before the next one.
         Target: t1 − t0 and t2 − t0 ≤ settle + 0.5 s.

Figures, never pass/fail. The machine is shared (2 cores, other work):
compare within a run (ratios, floors), not across runs.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from procs import Registry, cmdline, children, cpu_wakes, tree_parts  # noqa: E402

ROOT = os.path.dirname(HERE)
TUI = os.path.join(ROOT, "tests", "fakes", "agent_tui.py")
STATES = {"ready": ["^│ > "], "asking": ["Do you want to proceed"], "limited": ["usage limit"],
          "working": ["esc to interrupt"]}
PSUTIL = "python -c 'import psutil'"
SETTLE = 1.5  # the default (looop.store.config.DEFAULT_SETTLE): not set, so the bench sees it


def looop_bin() -> str:
    here = os.path.join(os.path.dirname(sys.executable), "looop")
    return here if os.access(here, os.X_OK) else (shutil.which("looop") or "looop")


def wait(cond, timeout: float, what: str, poll: float = 0.01):
    end = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > end:
            raise RuntimeError(f"timeout after {timeout:g}s: {what}")
        time.sleep(poll)


def oncpu(pid: int) -> float:
    """CPU seconds of every thread of pid (schedstat: ns precise)."""
    return cpu_wakes(pid)[0] / 1e9


def med(xs: list[float]) -> float:
    return statistics.median(xs)


def span(xs: list[float], scale: float = 1000.0, unit: str = "ms") -> str:
    return f"{med(xs) * scale:.0f} {unit} [{min(xs) * scale:.0f}–{max(xs) * scale:.0f}]"


class Tree:
    """A root on a fresh data dir, driven through its socket and its CLI."""

    def __init__(self, reg: Registry, tmp: str, name: str, cfg: dict):
        self.reg, self.bin = reg, looop_bin()
        self.d = os.path.join(tmp, name)
        os.makedirs(self.d)
        with open(os.path.join(self.d, "looop.json"), "w") as f:
            json.dump(cfg, f)
        open(os.path.join(self.d, ".seeded"), "w").close()
        self.env = reg.env({"LOOOP_DATA_DIR": self.d, "LOOOP_INTERVAL": "3600", "LOOOP_SHUTDOWN_GRACE": "1",
                            "LOOOP_TMUX_SURFACE": "0", "LOOOP_MAX_WORKERS": "0", "NO_COLOR": "1"})
        self.env.pop("LOOOP_CONFIG", None)
        self.out = open(os.path.join(tmp, name + ".root.out"), "wb")
        self.proc = reg.popen([self.bin], env=self.env, stdin=subprocess.DEVNULL, stdout=self.out,
                              stderr=subprocess.STDOUT, start_new_session=True)
        wait(lambda: any(cmdline(c).startswith("looop: pulse [running]") for c in children(self.proc.pid)),
             60, "the pulse to run")

    def cli(self, *args: str) -> subprocess.CompletedProcess:
        r = subprocess.run([self.bin, *args], env=self.env, capture_output=True, text=True, timeout=60)
        if r.returncode:
            raise RuntimeError(f"looop {' '.join(args)}: {r.stderr.strip()}")
        return r

    def start(self, reqs: list[dict]) -> None:
        """All start requests on one connection, one sendall; every reply read."""
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(120)
        s.connect(os.path.join(self.d, ".looop.sock"))
        s.sendall(b"".join(json.dumps(dict(op="start", **r)).encode() + b"\n" for r in reqs))
        buf, got = b"", 0
        while got < len(reqs):
            chunk = s.recv(1 << 16)
            if not chunk:
                raise RuntimeError("the root closed the socket")
            buf += chunk
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                rep = json.loads(line)
                if not rep.get("ok"):
                    raise RuntimeError(f"start: {rep.get('error')}")
                got += 1
        s.close()

    def status(self, sid: str) -> dict:
        try:
            with open(os.path.join(self.d, "sessions", sid, "status.json")) as f:
                return json.load(f)
        except (OSError, ValueError):
            return {}

    def activity(self, sid: str) -> str | None:
        return (self.status(sid).get("activity") or {}).get("state")

    def kinds(self) -> dict[str, list[int]]:
        """pids by kind: root, pulse child, pulse command, worker children, worker commands."""
        return tree_parts(self.proc.pid, worker_commands=True)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGINT)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        self.out.close()


def tui_cfg(**extra) -> dict:
    return {"default": "rules", **extra,
            "runners": {"fake": {"tick": "true", "interactive": f"{sys.executable} {TUI} {{{{prompt_file}}}}",
                                 "states": STATES}}}


def start_tuis(t: Tree, n: int) -> None:
    t.start([{"id": f"w{i}", "prompt": "brief", "runner": "fake"} for i in range(n)])
    wait(lambda: all(t.activity(f"w{i}") == "ready" for i in range(n)), 120, f"{n} workers ready", 0.1)


def bench_ls(t: Tree, n: int, reps: int) -> dict:
    py = sys.executable
    cases = {"looop ls": [t.bin, "ls"], "looop ls --json": [t.bin, "ls", "--json"],
             "python -c pass": [py, "-c", "pass"], PSUTIL: [py, "-c", "import psutil"]}
    out = t.cli("ls").stdout
    assert "ACTIVITY" in out.splitlines()[0] and out.count(" ready ") >= n, out[:400]
    times: dict[str, list[float]] = {k: [] for k in cases}
    cpu: dict[str, list[float]] = {k: [] for k in cases}
    for _ in range(reps):  # interleaved: a load spike hits every case alike
        for k, argv in cases.items():
            r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
            t0 = time.perf_counter()
            subprocess.run(argv, env=t.env, capture_output=True, timeout=60, check=True)
            times[k].append(time.perf_counter() - t0)
            r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu[k].append(r1.ru_utime + r1.ru_stime - r0.ru_utime - r0.ru_stime)
    ratio = [a / b for a, b in zip(times["looop ls"], times[PSUTIL])]
    return {"n": n, "reps": reps, "times": times, "cpu": cpu,
            "ratio_median": med(times["looop ls"]) / med(times[PSUTIL]),
            "ratio_min": min(times["looop ls"]) / min(times[PSUTIL]),
            "cpu_ratio_median": med(cpu["looop ls"]) / med(cpu[PSUTIL]),
            "ratio_per_rep_median": med(ratio)}


def bench_cpu(t: Tree, window: float) -> dict:
    k = t.kinds()
    pids = [p for ps in k.values() for p in ps]
    before = {p: oncpu(p) for p in pids}
    t0 = time.monotonic()
    time.sleep(window)
    secs = time.monotonic() - t0
    late = t.kinds()
    after = {p: oncpu(p) for p in pids}
    # only processes alive at both ends (a chatty worker's `sleep`s come and go)
    k = {kind: [p for p in ps if p in late[kind]] for kind, ps in k.items()}
    used = {kind: sum(after[p] - before[p] for p in ps) for kind, ps in k.items()}
    used["count"] = {kind: len(ps) for kind, ps in k.items()}  # type: ignore[assignment]
    tracked = used["root"] + used["worker children"]
    return {"window_s": secs, "cpu_s": used, "root+worker children % of one core": 100 * tracked / secs,
            "with pulse child %": 100 * (tracked + used["pulse child"]) / secs}


def bench_latency(reg: Registry, tmp: str, dialogs: int) -> dict:
    log = os.path.join(tmp, "notified.log")
    notify = f"printf '%s %s\\n' \"$(date +%s.%N)\" \"$LOOOP_NOTIFY_TEXT\" >> {log}; cat >/dev/null"
    t = Tree(reg, tmp, "latency", tui_cfg(notify_command=notify))
    try:
        from looop.inbox import collect
        t.start([{"id": "dlg", "prompt": "brief", "runner": "fake"}])
        wait(lambda: t.activity("dlg") == "ready", 60, "the worker ready")
        out_log = os.path.join(t.d, "sessions", "dlg", "output.log")
        seen = os.path.join(t.d, ".inbox-notified")
        rows: list[dict] = []
        for i in range(dialogs):
            offset = os.path.getsize(out_log)
            lines = sum(1 for _ in open(log)) if os.path.exists(log) else 0
            t.cli("send", "dlg", "ask")

            def shown() -> float | None:
                with open(out_log, "rb") as f:
                    f.seek(offset)
                    return time.time() if b"Do you want to proceed" in f.read() else None
            t0 = wait(shown, 30, "the dialog in output.log", 0.001)
            t1 = wait(lambda: any(it["kind"] == "asking" and it["id"] == "dlg" for it in collect(t.d))
                      and time.time(), 30, "the inbox item", 0.0)

            def notified() -> float | None:
                if not os.path.exists(log):
                    return None
                got = open(log).read().splitlines()[lines:]
                return float(got[0].split()[0]) if got else None
            t2 = wait(notified, 30, "the notify_command", 0.005)
            rows.append({"inbox_s": t1 - t0, "notify_s": t2 - t0})
            t.cli("send", "-n", "dlg", "y")
            wait(lambda: t.activity("dlg") == "ready", 30, "ready again")

            def forgotten() -> bool:
                try:
                    return not any(k.startswith("asking:dlg") for k in json.load(open(seen)))
                except (OSError, ValueError):
                    return False
            wait(forgotten, 30, "the notifier to see the item gone", 0.05)
        return {"dialogs": dialogs, "settle_s": SETTLE, "inbox_s": [r["inbox_s"] for r in rows],
                "notify_s": [r["notify_s"] for r in rows]}
    finally:
        t.stop()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=50)
    p.add_argument("--reps", type=int, default=15)
    p.add_argument("--window", type=float, default=60.0)
    p.add_argument("--dialogs", type=int, default=10)
    p.add_argument("--only", default="ls,cpu,chatty,latency")
    p.add_argument("--append", help="append the markdown section to this file (e.g. bench/RESULTS.md)")
    a = p.parse_args(argv)
    only = set(a.only.split(","))
    tag = os.environ.get("LOOOP_BENCH_TAG") or f"activity-{uuid.uuid4().hex[:8]}"
    tmp = tempfile.mkdtemp(prefix="looop-activity-bench-")
    reg = Registry(tag, tmp)
    res: dict = {"n": a.n, "load_start": os.getloadavg()}
    t0 = time.time()
    try:
        if only & {"ls", "cpu"}:
            t = Tree(reg, tmp, "idle", tui_cfg())
            try:
                start_tuis(t, a.n)
                time.sleep(SETTLE * 2)  # every look done: the window sees idle workers only
                if "cpu" in only:
                    res["cpu"] = bench_cpu(t, a.window)
                    print(json.dumps({"cpu": res["cpu"]}), flush=True)
                if "ls" in only:
                    res["ls"] = bench_ls(t, a.n, a.reps)
                    print(json.dumps({"ls": {k: v for k, v in res["ls"].items() if k != "times"}}), flush=True)
            finally:
                t.stop()
        if "chatty" in only:
            t = Tree(reg, tmp, "chatty", {"default": "rules"})
            try:
                t.start([{"id": f"c{i}", "prompt": "while sleep 5; do echo tick; done",
                          "command": "bash {{prompt_file}}"} for i in range(a.n)])
                time.sleep(6 + SETTLE)
                res["chatty"] = bench_cpu(t, a.window)
                print(json.dumps({"chatty": res["chatty"]}), flush=True)
            finally:
                t.stop()
        if "latency" in only:
            res["latency"] = bench_latency(reg, tmp, a.dialogs)
            print(json.dumps({"latency": res["latency"]}), flush=True)
    finally:
        left = reg.teardown()
        shutil.rmtree(tmp, ignore_errors=True)
    res["load_end"] = os.getloadavg()
    res["wall_s"] = time.time() - t0
    res["leftovers"] = left
    md = render(res, a)
    print(md)
    if a.append:
        with open(a.append, "a") as f:
            f.write("\n" + md)
    return 0


def render(res: dict, a: argparse.Namespace) -> str:
    head = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True,
                          text=True).stdout.strip()
    out = [f"## Activity tracking (issue 11) — {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}", "",
           f"`python bench/activity_speed.py --n {a.n} --reps {a.reps} --window {a.window:g} "
           f"--dialogs {a.dialogs} --only {a.only}` · looop at {head} · {res['wall_s']:.0f} s wall · "
           f"load average {res['load_start'][0]:.1f} at start, {res['load_end'][0]:.1f} at end "
           f"({os.cpu_count()} cores, shared with other work: read the ratios and floors of this run). "
           f"Workers: the fake agent TUI idle at its prompt; cells: median [min–max].", "",
           "| figure | what | looop | floor / peer | target | verdict |", "| --- | --- | --- | --- | --- | --- |"]
    if "ls" in res:
        ls = res["ls"]
        tm = ls["times"]
        r = ls["ratio_median"]
        out.append(f"| ls | `looop ls` (ACTIVITY column), N={ls['n']} live | {span(tm['looop ls'])} | "
                   f"{span(tm[PSUTIL])} "
                   f"`python -c 'import psutil'` | ≤ 1.3× | {'met' if r <= 1.3 else 'MISSED'} ({r:.2f}×) |")
        out.append(f"| ls | `looop ls --json`, N={ls['n']} | {span(tm['looop ls --json'])} | "
                   f"{span(tm['python -c pass'])} `python -c pass` |  |  |")
        cp = ls["cpu"]
        out.append(f"| ls | CPU (user+sys) of `looop ls`, N={ls['n']} | {span(cp['looop ls'])} | "
                   f"{span(cp[PSUTIL])} `python -c 'import psutil'` | (load-proof view) | "
                   f"{ls['cpu_ratio_median']:.2f}×; wall min/min {ls['ratio_min']:.2f}× |")
    for key, label in (("cpu", f"{a.n} idle TUI workers"), ("chatty", f"{a.n} workers printing a line every 5 s")):
        if key not in res:
            continue
        c = res[key]
        cpu, n = c["cpu_s"], c["cpu_s"]["count"]
        pct = c["root+worker children % of one core"]
        target = "≤ 1 % of one core" if key == "cpu" else ""
        verdict = ("met" if pct <= 1.0 else "MISSED") + f" ({pct:.2f} %)" if key == "cpu" else f"{pct:.2f} %"
        out.append(f"| cpu | {label}: root + worker children over {c['window_s']:.0f} s | "
                   f"{cpu['root'] * 1000:.0f} ms root + {cpu['worker children'] * 1000:.0f} ms in "
                   f"{n['worker children']} children | the programs themselves: "
                   f"{cpu['worker commands'] * 1000:.0f} ms; pulse child {cpu['pulse child'] * 1000:.0f} ms, "
                   f"pulse command {cpu['pulse command'] * 1000:.0f} ms | {target} | {verdict} |")
    if "latency" in res:
        lat = res["latency"]
        bound = lat["settle_s"] + 0.5
        for k, what in (("inbox_s", "dialog on screen → `asking` item in the inbox"),
                        ("notify_s", "dialog on screen → notify_command running")):
            xs = lat[k]
            out.append(f"| latency | {what} ({lat['dialogs']} dialogs) | {span(xs)} | settle "
                       f"{lat['settle_s']:g} s | ≤ {bound:g} s | "
                       f"{'met' if med(xs) <= bound else 'MISSED'} (median {med(xs):.2f} s, max {max(xs):.2f} s) |")
    if res.get("leftovers"):
        out += ["", f"Teardown had to kill: {'; '.join(res['leftovers'][:5])}"]
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    sys.exit(main())
