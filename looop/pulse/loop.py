"""The pulse body (`looop _pulse`): beat, choose the next interval, sleep,
repeat — and `one_beat`, shared with `looop tick`.

Cadence (SPEC §3): idle `interval` (default 60 s); `busy_interval` after a
beat that acted; `active_interval` while a worker is alive; env
LOOOP_INTERVAL / LOOOP_BUSY_INTERVAL / LOOOP_ACTIVE_INTERVAL over config. A
decider's `next_interval_s` (already clamped 5..3600) nudges one sleep.
Consecutive failed beats back off: interval × 2^k, capped at 15 min (never
below the interval itself), reset by a success — a broken runner cannot burn
money every minute. The failure count lives in `.next-interval`, so a
restarted pulse keeps backing off.

Signals: SIGTERM/SIGHUP (sent by the pulse's child on shutdown) raise
`Shutdown` out of whatever the beat is blocked in; every blocking call below
unwinds through a `finally` that kills its command's process group, which is
the quickest clean stop. SIGINT is shrugged off (a no-op handler, not
SIG_IGN, so commands started from here get it back): the root handles Ctrl-C.
"""
from __future__ import annotations

import os
import signal
import time
from typing import Any

BACKOFF_CAP = 900.0
NEXT_FILE = ".next-interval"


class Shutdown(BaseException):
    """Raised by the SIGTERM/SIGHUP handler to unwind the beat."""


def intervals(cfg: dict[str, Any]) -> dict[str, float]:
    from looop.store.config import knob
    idle = knob(cfg, "interval") or 60.0
    return {"idle": idle, "busy": knob(cfg, "busy_interval", idle) or idle,
            "active": knob(cfg, "active_interval", idle) or idle}


def mode_of(acted: bool, alive: bool) -> str:
    return "busy" if acted else "active" if alive else "idle"


def next_interval(iv: dict[str, float], mode: str, failures: int, nudge: int | None) -> tuple[float, str]:
    """Pure: (seconds, label) for the next sleep."""
    base = iv[mode]
    if failures > 0:
        return max(base, min(base * 2 ** failures, BACKOFF_CAP)), "backoff"
    if nudge is not None:
        return float(nudge), mode
    return base, mode


def one_beat(d: str, out: Any, link: Any = None, dry_run: bool = False) -> Any:
    """Load the config and run one beat. A config that does not parse is a
    failed beat (named in the line), not a crash."""
    from looop.errors import LooopError
    from looop.pulse.beat import Beat, Outcome, run_beat
    from looop.store import config, paths
    try:
        cfg = config.load(d)
        name, r = config.runner(cfg, None)
        if not isinstance(r.get("tick"), str) or not r["tick"].strip():
            raise LooopError(f"runner {name!r} has no 'tick' command (config {paths.config_path(d)})")
    except LooopError as e:
        out.line("error", "tick.failed", f"decision failed: {e}")
        return Outcome("failed", str(e))
    return run_beat(Beat(d, cfg, out, link=link, dry_run=dry_run))


def _load_failures(d: str) -> int:
    from looop.store import jsonio
    st = jsonio.load_file(os.path.join(d, NEXT_FILE), {}) or {}
    f = st.get("failures") if isinstance(st, dict) else 0
    return f if isinstance(f, int) and f >= 0 else 0


def _record(d: str, secs: float, mode: str, failures: int, outcome: Any) -> None:
    from looop.store import jsonio
    from looop.store.atomic import write_atomic
    from looop.store.sessions import rfc3339
    write_atomic(os.path.join(d, NEXT_FILE), jsonio.dumpb(
        {"at": rfc3339(), "interval_s": secs, "mode": mode, "failures": failures,
         "outcome": outcome.kind, "pid": os.getpid()}), fsync=False)


_stopping: list[int] = []


def _on_signal(signum: int, _frame: Any) -> None:
    # once: the child sends SIGHUP and SIGTERM together, and a second raise
    # would interrupt the cleanup the first one started. (Not SIG_IGN: a
    # signal already pending would then surface as "ignored due to race".)
    if not _stopping:
        _stopping.append(signum)
        raise Shutdown(signum)


def cmd_pulse(argv: list[str]) -> int:
    import orjson  # noqa: F401  (long-running: the fast JSON path)
    from looop.pulse import runner
    from looop.pulse.link import Link
    from looop.store import events, paths
    from looop.ui.out import Printer, json_mode
    out = Printer(json=json_mode("--json" in argv))
    runner.ignore_sigint()
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _on_signal)
    try:  # from here on a stop may arrive at any bytecode: no traceback, ever
        runner.become_subreaper()
        d = paths.data_dir()
        link = Link.from_env()
        failures = _load_failures(d)
        out.line("info", "pulse.start", f"pulse up (pid {os.getpid()}) · {d}", pid=os.getpid(), data_dir=d)
        events.emit(d, "pulse_start", pid=os.getpid())
        while True:
            failures = _cycle(d, out, link, failures)
    except Shutdown:
        return 0
    finally:
        runner.sweep_children()


def _cycle(d: str, out: Any, link: Any, failures: int) -> int:
    """One beat + the sleep after it; returns the new failure count."""
    from looop.pulse import runner
    from looop.pulse.beat import Outcome
    from looop.store import config
    try:
        outcome = one_beat(d, out, link)
    except Exception as e:  # noqa: BLE001 - a beat bug must not become a crash loop
        out.line("error", "tick.failed", f"beat crashed: {e!r}")
        outcome = Outcome("failed", f"beat crashed: {e!r}")
    finally:
        runner.sweep_children()
    failures = failures + 1 if outcome.failed else 0
    try:
        cfg = config.load(d)
    except Exception:  # noqa: BLE001 - already reported by the beat
        cfg = {}
    secs, mode = next_interval(intervals(cfg), mode_of(outcome.acted, outcome.workers_alive),
                               failures, outcome.nudge)
    _record(d, secs, mode, failures, outcome)
    extra = f" after {failures} failed beat{'s' * (failures > 1)}" if failures else ""
    out.line("info", "cadence", f"next beat in {secs:g}s ({mode}){extra}", dim=True,
             interval_s=secs, mode=mode, failures=failures)
    if link is not None:
        link.notify(f"{outcome.kind}: {outcome.msg}"[:180] + f" · next in {secs:g}s")
        if link.broken:
            out.line("error", "pulse.link_lost", "lost the link to the root — exiting so it restarts the pulse")
            raise SystemExit(3)
    time.sleep(secs)
    return failures
