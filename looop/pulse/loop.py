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

Signals: SIGTERM/SIGHUP (sent by the pulse's child on shutdown) are only
recorded (looop.pulse.stop); every blocking wait also watches the stop fd and
raises `Shutdown` there, unwinding through a `finally` that kills its
command's process group — the quickest clean stop, and never in the middle
of a write. SIGINT is shrugged off (a no-op handler, not SIG_IGN, so
commands started from here get it back): the root handles Ctrl-C.
"""
from __future__ import annotations

import os
import time
from typing import Any

from looop.pulse import stop

BACKOFF_CAP = 900.0
NEXT_FILE = ".next-interval"


def intervals(cfg: dict[str, Any]) -> dict[str, float]:
    from looop.store.config import knob
    idle = knob(cfg, "interval") or 60.0
    return {"idle": idle, "busy": knob(cfg, "busy_interval", idle) or idle,
            "active": knob(cfg, "active_interval", idle) or idle}


def mode_of(acted: bool, alive: bool) -> str:
    return "busy" if acted else "active" if alive else "idle"


DUE_MIN = 0.05  # a due time just passed still gets a (short) sleep


def next_interval(iv: dict[str, float], mode: str, failures: int, nudge: int | None,
                  due_in: float | None = None) -> tuple[float, str]:
    """Pure: (seconds, label) for the next sleep. A due time (`due_in`
    seconds ahead: an `every:` rerun, a rules restart) cuts the sleep short,
    except during a failure backoff."""
    base = iv[mode]
    if failures > 0:
        return max(base, min(base * 2 ** failures, BACKOFF_CAP)), "backoff"
    secs = float(nudge) if nudge is not None else base
    if due_in is not None and due_in < secs:
        return max(due_in, DUE_MIN), "due"
    return secs, mode


# The pulse's inbox notifier thread (looop.pulse.notifier), set by cmd_pulse.
_WATCHER: Any = None


def _notify_env(d: str) -> dict[str, str]:
    from looop.store import paths
    return {**{k: v for k, v in os.environ.items() if k != "LOOOP_PULSE_FD"},
            "LOOOP_BIN": paths.looop_bin(), "LOOOP_DATA_DIR": d, "LOOOP_CONFIG": paths.config_path(d)}


def _spared() -> set[int]:
    return set(_WATCHER.spawned) if _WATCHER is not None else set()


def sweep_leftovers() -> list[int]:
    """Kill what the beat left running (the pulse is a subreaper), sparing
    the notifier's commands."""
    from looop.pulse import notifier, runner
    with notifier.SPAWNING:  # no notifier command half-started (not yet spared) meanwhile
        return runner.sweep_children(keep=_spared())


def one_beat(d: str, out: Any, link: Any = None, dry_run: bool = False, read_only: bool = False) -> Any:
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
    outcome = run_beat(Beat(d, cfg, out, link=link, dry_run=dry_run, read_only=read_only))
    if _WATCHER is None and not dry_run and not read_only:  # `looop tick`: no notifier thread, one check per beat
        from looop.pulse.notifier import Watcher
        try:
            Watcher(d, out, _notify_env(d)).check()
        except Exception as e:  # noqa: BLE001 - notifying is never fatal
            out.line("error", "notify.crashed", f"inbox check failed: {e!r}")
    return outcome


CORRUPT_FAILURES = 4  # an unreadable .next-interval: back off as if 4 beats had failed


def _load_failures(d: str, out: Any = None) -> int:
    """The failure count a (re)started pulse carries on with. A file that
    does not parse is the most conservative value (SPEC §16); the next
    `_record` rewrites it."""
    from looop.store import jsonio
    try:
        with open(os.path.join(d, NEXT_FILE), "rb") as f:
            st = jsonio.loads(f.read(1 << 16))
    except FileNotFoundError:
        return 0
    except (OSError, ValueError):
        st = None
    f = st.get("failures") if isinstance(st, dict) else None
    if isinstance(f, int) and not isinstance(f, bool) and f >= 0:
        return f
    if out is not None:
        out.line("warn", "cadence.corrupt", f"{NEXT_FILE} was unreadable: backing off as if "
                 f"{CORRUPT_FAILURES} beats had failed (rewritten after this beat)")
    return CORRUPT_FAILURES


def _record(d: str, secs: float, mode: str, failures: int, outcome: Any) -> None:
    from looop.store import jsonio
    from looop.store.atomic import write_atomic
    from looop.store.sessions import rfc3339
    write_atomic(os.path.join(d, NEXT_FILE), jsonio.dumpb(
        {"at": rfc3339(), "interval_s": secs, "mode": mode, "failures": failures,
         "outcome": outcome.kind, "pid": os.getpid()}), fsync=False)


def cmd_pulse(argv: list[str]) -> int:
    import orjson  # noqa: F401  (long-running: the fast JSON path)
    from looop.pulse import runner
    from looop.pulse.link import Link
    from looop.store import events, paths
    from looop.ui.out import Printer, json_mode
    out = Printer(json=json_mode("--json" in argv))
    runner.ignore_sigint()
    stop.install()
    try:  # from here on a wait may end in Shutdown: no traceback, ever
        runner.become_subreaper()
        d = paths.data_dir()
        link = Link.from_env()
        global _WATCHER
        from looop.pulse.notifier import Watcher
        _WATCHER = Watcher(d, out, _notify_env(d))
        _WATCHER.start()
        failures = _load_failures(d, out)
        out.line("info", "pulse.start", f"pulse up (pid {os.getpid()}) · {d}", pid=os.getpid(), data_dir=d)
        events.emit(d, "pulse_start", pid=os.getpid())
        while True:
            failures = _cycle(d, out, link, failures)
    except stop.Shutdown:
        return 0
    finally:
        if _WATCHER is not None:
            _WATCHER.stop.set()
        runner.sweep_children()


_full: list[str] = []  # the data dir full episode being reported, if any


def _watch_space(d: str, out: Any, link: Any) -> None:
    """Say once that the data dir is full, and once that it has room again."""
    from looop.store import space
    hits = space.take()
    reason = hits[0] if hits else space.low(d)
    if reason and not _full:
        _full.append(reason)
        out.line("error", "data_dir.full", f"data dir full: {reason} — the pulse skips the "
                 "writes it cannot do and beats on; free some space", reason=reason)
        if link is not None:
            link.notify(f"data dir full: {reason}"[:180])
    elif not reason and _full:
        _full.clear()
        out.line("ok", "data_dir.space", "data dir has space again — beating normally")


def _longest_beat(d: str) -> float:
    """Seconds a beat may take at most: its sensors, the decider and a run_shell."""
    from looop.store import config
    try:
        cfg = config.load(d)
    except Exception:  # noqa: BLE001 - the beat reports a broken config itself
        cfg = {}
    return sum(config.knob(cfg, k) or 0.0 for k in ("sensor_timeout", "tick_timeout", "shell_timeout"))


def say_secs(secs: float) -> str:
    """A wait for humans: a due time makes it fractional (38.8603s); a tenth
    under 10 s, whole seconds above (the JSON field keeps the exact value)."""
    return f"{round(secs, 1) if secs < 10 else round(secs):g}s"


def _cycle(d: str, out: Any, link: Any, failures: int) -> int:
    """One beat + the sleep after it; returns the new failure count."""
    from looop.pulse import runner
    from looop.pulse.beat import Outcome
    from looop.store import config, space
    stop.check()  # a safe point: asked to stop between two waits
    if _WATCHER is not None:
        _WATCHER.take_wake()  # this beat sees every ask there is now
    if link is not None:  # a beat is bounded by its deadlines: the root holds us to them
        link.beat(_longest_beat(d))
    try:
        outcome = one_beat(d, out, link)
    except Exception as e:  # noqa: BLE001 - a beat bug must not become a crash loop
        if space.is_full(e):  # a write the beat could not do: not the decider's failure
            space.note(e)
            outcome = Outcome("skip", f"data dir full: {space.why(e)}")
        else:
            out.line("error", "tick.failed", f"beat crashed: {e!r}")
            outcome = Outcome("failed", f"beat crashed: {e!r}")
    finally:
        sweep_leftovers()
    failures = failures + 1 if outcome.failed else 0
    try:
        cfg = config.load(d)
    except Exception:  # noqa: BLE001 - already reported by the beat
        cfg = {}
    due_in = None if outcome.wake_at is None else outcome.wake_at - time.time()
    secs, mode = next_interval(intervals(cfg), mode_of(outcome.acted, outcome.workers_alive),
                               failures, outcome.nudge, due_in)
    space.tolerate(_record, d, secs, mode, failures, outcome)
    _watch_space(d, out, link)
    # the policy files as they are before we say "next beat in": an edit
    # made once that line is out must cut the backoff
    before = policy_signature(d) if failures else None
    extra = f" after {failures} failed beat{'s' * (failures > 1)}" if failures else ""
    out.line("info", "cadence", f"next beat in {say_secs(secs)} ({mode}){extra}", dim=True,
             interval_s=secs, mode=mode, failures=failures)
    if link is not None:
        link.notify(_inbox_status(d) + f"{outcome.kind}: {outcome.msg}"[:160] + f" · next in {say_secs(secs)}")
        link.beat(secs)
        if link.broken:
            out.line("error", "pulse.link_lost", "lost the link to the root — exiting so it restarts the pulse")
            raise SystemExit(3)
    return _sleep(d, link, secs, out, failures, before)


def _inbox_status(d: str) -> str:
    """`inbox N · ` for the STATUS line (systemctl status shows it)."""
    try:
        from looop.inbox import collect
        return f"inbox {len(collect(d))} · "
    except Exception:  # noqa: BLE001 - a status line is never worth a crash
        return ""


def policy_signature(d: str) -> tuple:
    """(name, mtime, size) of PLAYBOOK.md and goals/*.md: cheap to poll."""
    sig = []
    for p in [os.path.join(d, "PLAYBOOK.md")] + [os.path.join(d, "goals", n) for n in _goal_names(d)]:
        try:
            st = os.stat(p)
            sig.append((p, st.st_mtime_ns, st.st_size))
        except OSError:
            continue
    return tuple(sig)


def _goal_names(d: str) -> list[str]:
    try:
        return sorted(n for n in os.listdir(os.path.join(d, "goals")) if n.endswith(".md"))
    except OSError:
        return []


POLL = 1.0  # seconds between policy-file checks while backing off


def _sleep(d: str, link: Any, secs: float, out: Any, failures: int, before: tuple | None = None) -> int:
    """Sleep `secs`, printing the root's worker events as they come; returns
    the failure count to carry on with. A worker that ended is a changed
    world: beat at once (but never cut a failure backoff short for it).
    While backing off, an edit of PLAYBOOK.md or a goal ends the wait and
    cuts the backoff: someone fixed something, try again now."""
    deadline = time.monotonic() + secs
    if failures and before is None:
        before = policy_signature(d)
    while link is None or not link.broken:
        woke = False
        for ev in link.events if link is not None else ():
            woke |= _say(out, ev) and not failures
        if link is not None:
            link.events.clear()
        left = deadline - time.monotonic()
        if woke or left <= 0:
            return failures
        if _WATCHER is not None and _WATCHER.take_wake() and not failures:
            return failures  # a new ask: the decider sees it now (while backing off: later)
        wake = [_WATCHER.wake_fd] if _WATCHER is not None else []
        if link is None:  # `looop tick`-style runs: the watcher's pipe still ends the wait
            stop.wait(wake, min(left, POLL) if before is not None else left)
        else:  # the watcher's new ask ends the sleep through its pipe (no 1 s poll)
            link.sleep(min(left, POLL) if before is not None else left, wake=wake[0] if wake else None)
        if before is not None and policy_signature(d) != before:
            out.line("info", "cadence.cut", "PLAYBOOK or goals edited — backoff cut, beating now")
            return 0
    return failures


def _say(out: Any, ev: dict[str, Any]) -> bool:
    """Print one worker event from the root; True if a worker ended."""
    sid = ev.get("id")
    if ev.get("event") == "worker_started":
        again = " again" if ev.get("restart") else ""
        out.line("info", "worker.started", f"worker {sid} started{again} (pid {ev.get('pid')})",
                 dim=True, id=sid, pid=ev.get("pid"))
        return False
    if ev.get("event") == "worker_exited":
        out.line("info", "worker.exited", f"worker {sid} {ev.get('state')} (exit {ev.get('exit_code')})",
                 dim=True, id=sid, state=ev.get("state"), exit_code=ev.get("exit_code"))
        return True
    return False
