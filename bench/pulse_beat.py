"""Figures for one beat of the pulse (SPEC §13: "no-change beat, 20 sensors
of 0.2 s — ≤ 0.3 s wall, 0 runner calls"). Never pass/fail: prints medians
with min–max, next to floors measured in the same run.

    python bench/pulse_beat.py [-n 11]

Scenarios, each in a fresh temp data dir with a counting fake runner:
  A  no-change beat, 20 trivial sensors (`echo`), in-process one_beat()
  B  no-change beat, 20 sensors of 0.2 s, in-process
  C  `looop tick` end to end for A (interpreter start included)
  D  a deciding beat with the fake runner (hash forgotten each time)
Floors: bash starting the same 20 sensors concurrently and waiting;
`python -c pass`; `python -m looop version`.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

RUNNER = """import os, sys
sys.stdin.read()
open(os.path.join(sys.argv[1], "calls"), "a").write("x\\n")
open(".decision.json", "w").write('{"action": "noop", "reason": "bench"}')
"""


def setup(root: str, sensor_body: str, n: int = 20) -> tuple[str, str]:
    d = os.path.join(root, "data")
    ctl = os.path.join(root, "ctl")
    os.makedirs(os.path.join(d, "sensors"))
    os.makedirs(ctl)
    with open(os.path.join(ctl, "runner.py"), "w") as f:
        f.write(RUNNER)
    with open(os.path.join(d, "looop.json"), "w") as f:
        json.dump({"default": "bench", "runners": {"bench": {
            "tick": f"{sys.executable} {ctl}/runner.py {ctl}", "interactive": "bash {{prompt_file}}"}}}, f)
    open(os.path.join(d, ".seeded"), "w").close()
    for i in range(n):
        p = os.path.join(d, "sensors", f"s{i:02d}.sh")
        with open(p, "w") as f:
            f.write(f"#!/bin/sh\n{sensor_body}\necho '{{\"signal\": {i}}}'\n")
        os.chmod(p, 0o755)
    return d, ctl


def calls(ctl: str) -> int:
    try:
        return sum(1 for _ in open(os.path.join(ctl, "calls")))
    except FileNotFoundError:
        return 0


def timed(fn, n: int) -> list[float]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def fmt(name: str, xs: list[float], extra: str = "") -> str:
    ms = [x * 1000 for x in xs]
    return f"{name:<58} median {statistics.median(ms):7.1f} ms  (min {min(ms):.1f} – max {max(ms):.1f}){extra}"


def in_process_beat(d: str):
    from looop.pulse.loop import one_beat
    from looop.ui.out import Printer
    os.environ["LOOOP_DATA_DIR"] = d
    out = Printer(json=True, stream=io.StringIO())
    return lambda: one_beat(d, out)


def bash_fanout(d: str):
    sensors = " ".join(sorted(os.path.join(d, "sensors", s) for s in os.listdir(os.path.join(d, "sensors"))))
    script = f"for s in {sensors}; do $s >/dev/null & done; wait"
    return lambda: subprocess.run(["bash", "-c", script], check=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=11)
    n = ap.parse_args().n
    env = {**os.environ, "HOME": tempfile.mkdtemp()}  # no login-script noise in `bash -l`
    os.environ["HOME"] = env["HOME"]
    lines = []
    with tempfile.TemporaryDirectory() as root:
        for label, body in (("A  no-change beat, 20 trivial sensors (in-process)", ":"),
                            ("B  no-change beat, 20 sensors of 0.2 s (in-process)", "sleep 0.2")):
            d, ctl = setup(os.path.join(root, label[0]), body)
            beat = in_process_beat(d)
            beat()  # first beat decides and records the world hash
            before = calls(ctl)
            xs = timed(beat, n)
            lines.append(fmt(label, xs, f"  runner calls: {calls(ctl) - before}"))
            lines.append(fmt("   floor: bash starts the same 20 sensors and waits", timed(bash_fanout(d), n)))
            if label[0] == "A":
                tick_env = {**env, "LOOOP_DATA_DIR": d}
                before = calls(ctl)
                xs = timed(lambda: subprocess.run([sys.executable, "-m", "looop", "tick"], env=tick_env,
                                                  stdout=subprocess.DEVNULL, check=True), n)
                lines.append(fmt("C  `looop tick`, no change, 20 trivial sensors", xs,
                                 f"  runner calls: {calls(ctl) - before}"))
                lines.append(fmt("   floor: python -c pass", timed(
                    lambda: subprocess.run([sys.executable, "-c", "pass"], check=True), n)))
                lines.append(fmt("   floor: python -m looop version", timed(
                    lambda: subprocess.run([sys.executable, "-m", "looop", "version"], env=tick_env,
                                           stdout=subprocess.DEVNULL, check=True), n)))
                beat_d = beat
                hash_file = os.path.join(d, ".last-tick-hash")

                def deciding() -> None:
                    os.unlink(hash_file)
                    beat_d()
                before = calls(ctl)
                xs = timed(deciding, n)
                lines.append(fmt("D  deciding beat, fake runner (bash -lc + python), 20 sensors", xs,
                                 f"  runner calls: {calls(ctl) - before}"))
                lines.append(fmt("   floor: bash -lc python-runner alone", timed(
                    lambda: subprocess.run(["bash", "-lc", f"{sys.executable} {ctl}/runner.py {ctl}"],
                                           cwd=d, stdin=subprocess.DEVNULL, check=True), n)))
    print(f"pulse beat figures (n={n}, {os.cpu_count()} cpus, python {sys.version.split()[0]})")
    for ln in lines:
        print(ln)


if __name__ == "__main__":
    main()
