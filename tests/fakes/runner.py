"""A scripted fake decider for the pulse tests, configured as a runner's
`tick` command: `python runner.py <ctl dir>`.

Each call appends one JSON line to <ctl>/calls (so tests count invocations)
and saves the prompt it got on stdin to <ctl>/last-prompt.md. Then, by
<ctl>/mode (default "decide"):
  decide     take the first file of <ctl>/queue/ (sorted) and write its raw
             bytes to .decision.json (removing it from the queue); with an
             empty queue, write {"action": "noop"}
  exit1      exit 1 without a decision
  fail:N     exit 1 for the first N calls, then behave as "decide"
  hang       start `sleep 300` in its own group, record both pids in
             <ctl>/hang.pids, then sleep 300
  none       exit 0 without a decision
  gate       wait (at most 60 s) for <ctl>/gate to exist, then "decide"
If <ctl>/cost exists, the call first reports that many dollars for itself
through `"$LOOOP_BIN" _cost tick $LOOOP_COST_ID $LOOOP_COST_RUNNER <usd>`.
"""
import json
import os
import subprocess
import sys
import time

ctl = sys.argv[1]
prompt = sys.stdin.read()
with open(os.path.join(ctl, "last-prompt.md"), "w") as f:
    f.write(prompt)
with open(os.path.join(ctl, "calls"), "a") as f:
    f.write(json.dumps({"t": time.time(), "cwd": os.getcwd(),
                        "env": {k: v for k, v in os.environ.items() if k.startswith("LOOOP_")}}) + "\n")
n_calls = sum(1 for _ in open(os.path.join(ctl, "calls")))
try:
    mode = open(os.path.join(ctl, "mode")).read().strip()
except FileNotFoundError:
    mode = "decide"
if os.path.exists(os.path.join(ctl, "cost")):
    usd = open(os.path.join(ctl, "cost")).read().strip()
    subprocess.run([os.environ["LOOOP_BIN"], "_cost", "tick", os.environ["LOOOP_COST_ID"],
                    os.environ["LOOOP_COST_RUNNER"], usd], check=True)
if mode.startswith("fail:"):
    mode = "exit1" if n_calls <= int(mode[5:]) else "decide"
if mode == "exit1":
    print("fake runner: failing on purpose")
    sys.exit(1)
if mode == "none":
    sys.exit(0)
if mode == "hang":
    child = subprocess.Popen(["sleep", "300"])
    with open(os.path.join(ctl, "hang.pids"), "w") as f:
        f.write(f"{os.getpid()} {child.pid}\n")
    time.sleep(300)
if mode == "gate":
    deadline = time.monotonic() + 60
    while not os.path.exists(os.path.join(ctl, "gate")) and time.monotonic() < deadline:
        time.sleep(0.02)
qdir = os.path.join(ctl, "queue")
queued = sorted(os.listdir(qdir)) if os.path.isdir(qdir) else []
if queued:
    path = os.path.join(qdir, queued[0])
    data = open(path, "rb").read()
    os.unlink(path)
else:
    data = b'{"action": "noop", "reason": "queue empty"}'
with open(".decision.json", "wb") as f:
    f.write(data)
print(f"fake runner: decided {data[:60]!r}")
