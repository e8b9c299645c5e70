"""The pulse body: beat, choose the next interval, sleep, repeat.

Skeleton: the beat itself lands with the pulse issue.
"""
from __future__ import annotations

import os
import signal
import time


def cmd_pulse(argv: list[str]) -> int:
    from looop.ui.out import Printer, json_mode
    out = Printer(json=json_mode("--json" in argv))
    stop = []
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda *_: stop.append(1))
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    interval = float(os.environ.get("LOOOP_INTERVAL", 60))
    out.line("info", "pulse.start", f"pulse up (pid {os.getpid()})", pid=os.getpid())
    while not stop:
        out.line("info", "cadence", f"next beat in {interval:g}s (idle)", dim=True, interval_s=interval)
        deadline = time.monotonic() + interval
        while not stop and time.monotonic() < deadline:
            time.sleep(min(0.2, deadline - time.monotonic()))
    return 0
