"""USS of children forked from a process that imported looop's root modules,
with and without gc.freeze() before the fork (bench/FINDINGS.md §3).

    python bench/profile/gc_freeze_fork.py [none|collect|churn]

Each child does the given work, then idles; the parent reads each child's USS
and kills it. Prints median [min–max] for both variants.
"""
from __future__ import annotations

import gc
import os
import signal
import statistics
import subprocess
import sys
import time

N = 20


def run(freeze: bool, work: str) -> list[int]:
    import psutil
    import looop.store.sessions  # noqa: F401 - what the root has loaded
    import looop.tree.child  # noqa: F401
    import looop.tree.supervisor  # noqa: F401
    if freeze:
        gc.collect()
        gc.freeze()
    kids = []
    for _ in range(N):
        pid = os.fork()
        if pid == 0:
            if work == "churn":
                x = [{"k": j, "v": str(j)} for j in range(30000)]
                del x
            if work in ("collect", "churn"):
                gc.collect()
            time.sleep(60)
            os._exit(0)
        kids.append(pid)
    time.sleep(2.0)
    try:
        return [psutil.Process(p).memory_full_info().uss for p in kids]
    finally:
        for p in kids:
            os.kill(p, signal.SIGKILL)
            os.waitpid(p, 0)


def main() -> None:
    work = sys.argv[1] if len(sys.argv) > 1 else "collect"
    if len(sys.argv) > 2:  # child mode: one variant per fresh interpreter
        uss = run(sys.argv[2] == "freeze", work)
        m = 1 << 20
        print(f"{work:8s} {'gc.freeze()' if sys.argv[2] == 'freeze' else 'no freeze':12s} child USS "
              f"{statistics.median(uss) / m:.2f} MiB [{min(uss) / m:.2f}–{max(uss) / m:.2f}]")
        return
    for variant in ("plain", "freeze"):
        subprocess.run([sys.executable, __file__, work, variant], check=True)


if __name__ == "__main__":
    main()
