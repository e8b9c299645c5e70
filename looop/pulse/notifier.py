"""`notify_command`: run once per new inbox item, so a phone or a desktop
hears about it (`ntfy publish …`, `notify-send …`).

Who runs it: a daemon thread of the pulse (`Watcher`), not the beat and not
the root. The root must never block; the beat can take minutes (a decider
call), and an item must not wait for it. The thread wakes on inotify in
`asks/` — a new ask, and a worker child whose activity starts needing
someone (asking, limited, stuck; it rewrites `asks/.wake`) — and every
`inbox_poll` seconds (default 2) for the rest (failed workers, the budget,
items that went away) — so a dialog on a worker's screen is notified about
`settle` after it appears, a new ask at once. It also wakes the
pulse's sleep when a new ask arrives, so the decider sees it right away.
Under `looop tick` (no tree) each beat runs one check at its end.

Once per item: `.inbox-notified` (owned here) holds the keys of the items
present at the last check; an item is new when its key is not there. An item
that went away and came back is new again. The command runs under
`bash -lc` in the data dir with the item JSON on stdin and a one-line
`$LOOOP_NOTIFY_TEXT`; in its own session (process group); at most
`notify_timeout` seconds (default 10), then the group is SIGKILLed while its
leader is still unreaped (so the group id cannot have been reused: the
identity check); the group is swept when the leader ends too (run the
notifier in the foreground). Output is drained and dropped past 4 KiB, so a
command printing 10 MB neither hangs nor grows memory. A failure is one
warning line and an event, never fatal.
"""
from __future__ import annotations

import os
import select
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from typing import Any, Mapping

from looop import settings
from looop.inbox import RAISED
from looop.store import events, jsonio
from looop.store.atomic import write_atomic

STATE = ".inbox-notified"
KEEP = 4096          # bytes of a notifier's output kept for the failure line


def key(item: dict[str, Any]) -> str:
    """What makes an item the same item: kind and id (and a flag's note:
    a new question on the same flag is news)."""
    k = f"{item['kind']}:{item['id']}"
    if item["kind"] == "stuck" and item["text"].startswith(RAISED):
        return k + ":raised"  # the recovery ladder raised it: the nudge did not help
    return k + f":{item['text']}" if item["kind"] == "flag" else k


def new_items(items: list[dict[str, Any]], seen: set[str]) -> list[dict[str, Any]]:
    """Pure: the items whose key was not present at the last check."""
    return [it for it in items if key(it) not in seen]


def load_seen(d: str) -> set[str]:
    got = jsonio.load_file(os.path.join(d, STATE), [])
    return {k for k in got if isinstance(k, str)} if isinstance(got, list) else set()


def save_seen(d: str, keys: set[str]) -> None:
    write_atomic(os.path.join(d, STATE), jsonio.dumpb(sorted(keys)), fsync=False)


def notify_text(item: dict[str, Any]) -> str:
    who = f" {item['session']}" if item.get("session") else ""
    line = f"looop {item['kind']}{who}: {item['text']} — {item['command']}"
    return " ".join(line.split())[:500]


@dataclass
class Result:
    code: int | None     # None: killed at the deadline
    timed_out: bool
    out: bytes           # the first KEEP bytes of stdout+stderr
    secs: float


# Held from the fork of a notification command until its pid is in
# `spawned`, and by the pulse's sweep of its children (loop.sweep_leftovers):
# a command forked but not yet spared was otherwise killed as a leftover.
SPAWNING = threading.Lock()


def run(cmd: str, item: dict[str, Any], *, cwd: str, env: Mapping[str, str], timeout: float,
        spawned: set[int] | None = None) -> Result:
    """Run one notification. Blocks at most `timeout` + ~1 s. Never raises for
    the command's sake (OSError only if bash itself cannot start)."""
    t0 = time.monotonic()
    env = {**env, "LOOOP_NOTIFY_TEXT": notify_text(item)}
    with SPAWNING:
        proc = subprocess.Popen(["bash", "-lc", cmd], cwd=cwd, env=env, stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                start_new_session=True, close_fds=True, restore_signals=True)
        if spawned is not None:
            spawned.add(proc.pid)
    deadline = t0 + timeout
    kept = b""
    try:
        assert proc.stdin is not None and proc.stdout is not None
        _feed(proc.stdin, jsonio.dumpb(item) + b"\n")
        fd = proc.stdout.fileno()
        os.set_blocking(fd, False)
        while (left := deadline - time.monotonic()) > 0:
            if not select.select([fd], [], [], left)[0]:
                continue
            try:
                chunk = os.read(fd, 1 << 16)
            except BlockingIOError:
                continue
            if not chunk:
                break
            if len(kept) < KEEP:
                kept += chunk[:KEEP - len(kept)]
        exited = _wait_exit(proc.pid, deadline)
        if not exited:  # setsid'd descendants left the group: take them while still below us
            _kill_descendants(proc.pid)
        # the leader is unreaped (alive or a zombie): its pid, the group id,
        # cannot be anyone else's yet — kill the whole group, then reap
        _killpg(proc.pid)
        proc.wait(5)
        proc.stdout.close()
        return Result(proc.returncode if exited else None, not exited, kept, time.monotonic() - t0)
    finally:
        if proc.returncode is None:
            _killpg(proc.pid)
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                pass
        if spawned is not None:
            spawned.discard(proc.pid)


def _feed(stdin: Any, data: bytes) -> None:
    """The item on stdin without ever blocking: a command that does not read
    it just never sees it."""
    try:
        os.set_blocking(stdin.fileno(), False)
        os.write(stdin.fileno(), data)
    except (BlockingIOError, BrokenPipeError):
        pass
    finally:
        try:
            stdin.close()
        except OSError:
            pass


def _wait_exit(pid: int, deadline: float) -> bool:
    """Wait until `pid` (our child) has exited, without reaping it; False at
    the deadline. A pidfd where the kernel has one, else a 20 ms poll."""
    try:
        pfd = os.pidfd_open(pid)
    except (AttributeError, OSError):
        pfd = None
    try:
        while True:
            try:
                if os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None:
                    return True
            except ChildProcessError:
                return True
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            if pfd is not None:
                select.select([pfd], [], [], left)
            else:
                time.sleep(min(left, 0.02))
    finally:
        if pfd is not None:
            os.close(pfd)


def _kill_descendants(pid: int) -> None:
    """SIGKILL every descendant of our live child `pid` (psutil checks each
    one's identity before signalling). What escaped after the leader ended
    was re-parented to the pulse, a subreaper, whose sweep takes it."""
    import psutil
    try:
        kids = psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        return
    for p in kids:
        try:
            p.kill()
        except psutil.Error:
            pass


def _killpg(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


class Watcher:
    """The inbox check, once (`check`) or as the pulse's daemon thread
    (`start`). A new ask writes a byte to `wake_fd`'s pipe (`take_wake`
    empties it); `spawned` holds the pids of running notifiers (the beat's
    sweep spares them)."""

    def __init__(self, d: str, out: Any, env: Mapping[str, str]):
        self.d, self.out, self.env = d, out, dict(env)
        # a new ask: a byte on this pipe, so the pulse's sleep waits on it
        # (select) rather than polling a flag every second
        self.wake_fd, self._wake_w = os.pipe()
        os.set_blocking(self.wake_fd, False)
        os.set_blocking(self._wake_w, False)
        self.stop = threading.Event()
        self.spawned: set[int] = set()
        self.count = 0
        self._asks: set[str] = set()
        self._lock = threading.Lock()

    def check(self) -> list[dict[str, Any]]:
        """Notify each new inbox item; returns the new items. Without a
        notify_command only the asks are looked at (to wake the pulse): the
        rest of the inbox costs a /proc scan, not worth it for nobody."""
        from looop.store import asks, config
        with self._lock:
            try:
                cfg = config.load_cached(self.d)
            except Exception:  # noqa: BLE001 - a broken config: the beat says so; asks still count
                cfg = {}
            cmd = settings.get("notify_command", cfg)
            if not (isinstance(cmd, str) and cmd.strip()):
                ids = {rec["id"] for rec in asks.pending(self.d)}
                if ids - self._asks:
                    self._wake()
                self._asks = ids
                return []
            from looop.inbox import collect
            items = collect(self.d, cfg)
            self.count = len(items)
            seen = load_seen(self.d)
            fresh = new_items(items, seen)
            if any(it["kind"] == "ask" for it in fresh):
                self._wake()
            for it in fresh:
                self._notify(cmd, it, float(settings.get("notify_timeout", cfg)))
            now = {key(it) for it in items}
            if now != seen:
                save_seen(self.d, now)
            return fresh

    def _wake(self) -> None:
        try:
            os.write(self._wake_w, b"!")
        except OSError:
            pass  # full (the pulse has not slept since): it is awake anyway

    def take_wake(self) -> bool:
        """Did a new ask arrive since the last call? Empties the pipe."""
        got = False
        try:
            while os.read(self.wake_fd, 4096):
                got = True
        except OSError:
            pass  # empty
        return got

    def poll(self) -> float:
        """Seconds to the next check: inbox_poll with a notify_command, else
        30 (inotify on asks/ wakes the thread for what matters then)."""
        from looop.store import config
        try:
            cfg = config.load_cached(self.d)
        except Exception:  # noqa: BLE001
            return 2.0
        cmd = settings.get("notify_command", cfg)
        return float(settings.get("inbox_poll", cfg)) if isinstance(cmd, str) and cmd.strip() else 30.0

    def _notify(self, cmd: str, item: dict[str, Any], timeout: float) -> None:
        try:
            r = run(cmd, item, cwd=self.d, env=self.env, timeout=timeout, spawned=self.spawned)
        except OSError as e:
            r = Result(None, False, str(e).encode(), 0.0)
        ok = r.code == 0
        events.emit(self.d, "notified" if ok else "notify_failed", kind=item["kind"], id=item["id"],
                    code=r.code, timed_out=r.timed_out, secs=round(r.secs, 3))
        if ok:
            self.out.line("info", "notify", f"notified: {item['kind']} {item['id']}", dim=True,
                          kind=item["kind"], id=item["id"])
            return
        why = f"killed after {timeout:g}s" if r.timed_out else f"exit {r.code}"
        first = r.out.decode("utf-8", "replace").strip().splitlines()[:1]
        self.out.line("warn", "notify.failed", f"notify_command failed for {item['kind']} {item['id']}: "
                      f"{why}" + (f" · {first[0][:160]}" if first else ""),
                      kind=item["kind"], id=item["id"], code=r.code, timed_out=r.timed_out)

    def start(self) -> None:
        threading.Thread(target=self._loop, name="looop-inbox", daemon=True).start()

    def _loop(self) -> None:
        from looop.store import asks
        os.makedirs(asks.asks_dir(self.d), exist_ok=True)
        with asks.DirWatch(asks.asks_dir(self.d)) as w:
            while not self.stop.is_set():
                try:
                    self.check()
                except Exception as e:  # noqa: BLE001 - the notifier must never take the pulse down
                    self.out.line("error", "notify.crashed", f"inbox check failed: {e!r}")
                w.wait(max(0.1, self.poll()))
