"""Every command the pulse starts (sensors, the tick runner, run_shell) goes
through here: its own session and process group, default signal dispositions,
no inherited fds, a deadline, and a kill of the whole group when it is over.

Why its own group: a runner is usually a shell pipeline (`pi … | looop _fmt`);
killing only the leader would leave the rest running.

Clean exec state (SPEC §12) without a preexec_fn: an ignored signal survives
exec, a *handled* one is reset to default. So the pulse never uses SIG_IGN —
it shrugs SIGINT off with a no-op handler (`ignore_sigint`) — and subprocess's
restore_signals puts SIGPIPE back. Without preexec_fn, CPython can start the
command with vfork: ~6 ms → ~1 ms per sensor, which is most of a no-change
beat with 20 sensors.
"""
from __future__ import annotations

import os
import selectors
import signal
import subprocess
import time
from dataclasses import dataclass
from typing import IO, Any, Collection, Mapping, Sequence

from looop.pulse import stop

KILL_GRACE = 1.0


def _noop(*_: object) -> None:
    """A handler that does nothing: unlike SIG_IGN, reset to default on exec."""


def ignore_sigint() -> None:
    """Shrug off SIGINT (the root handles Ctrl-C) in a way that does not leak
    into the commands we start."""
    signal.signal(signal.SIGINT, _noop)


def spawn(argv: Sequence[str], *, cwd: str, env: Mapping[str, str], stdin: Any = subprocess.DEVNULL,
          stdout: Any = subprocess.DEVNULL, stderr: Any = subprocess.DEVNULL) -> subprocess.Popen:
    """Start `argv` as the leader of a new session/process group.

    Identity: until the leader is reaped its pid (= the group id) cannot be
    reused, so the group is ours to signal. Callers therefore wait with
    `wait_exit` (which never reaps) and let `kill_group` reap."""
    from looop.store.perms import user_umask
    return subprocess.Popen(list(argv), cwd=cwd, env=dict(env), stdin=stdin, stdout=stdout,
                            stderr=stderr, start_new_session=True, close_fds=True,
                            restore_signals=True, umask=user_umask())


def exited(proc: subprocess.Popen) -> bool:
    """Has the leader exited? Never reaps it (waitid WNOWAIT)."""
    if proc.returncode is not None:
        return True
    try:
        info = os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return True
    return info is not None


def wait_exit(proc: subprocess.Popen, timeout: float, stoppable: bool = True) -> bool:
    """Block up to `timeout` for the leader to exit, without reaping it (the
    group stays ours to signal). True if it exited. Stoppable: a stop request
    ends the wait with `stop.Shutdown` (kill_group's own waits run on)."""
    deadline = time.monotonic() + timeout
    fd = _pidfd(proc.pid) if proc.returncode is None else None
    try:
        while not exited(proc):
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            stop.wait([fd] if fd is not None else [], left if fd is not None else min(left, 0.01),
                      stoppable)
        return True
    finally:
        if fd is not None:
            os.close(fd)


def _pidfd(pid: int) -> int | None:
    try:
        return os.pidfd_open(pid)  # type: ignore[attr-defined]
    except (AttributeError, OSError):
        return None


def kill_group(proc: subprocess.Popen, grace: float = KILL_GRACE) -> None:
    """SIGTERM the group, SIGKILL it after `grace`, reap the leader.

    Blocks at most `grace` + 1 s. The group is signalled only while its
    leader is unreaped (the pid cannot have been reused); a leader someone
    already reaped leaves only the identity-checked sweep of its members."""
    if proc.returncode is not None:
        _kill_members(proc.pid)
        return
    _killpg(proc.pid, signal.SIGTERM)
    wait_exit(proc, grace, stoppable=False)
    _killpg(proc.pid, signal.SIGKILL)  # members that outlived the leader too
    if wait_exit(proc, 1.0, stoppable=False):
        proc.wait()  # exited: reaps at once


def _killpg(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _kill_members(pgid: int) -> None:
    """SIGKILL our descendants still in group `pgid` (the pulse is a
    subreaper: they are all below us). psutil checks each one's create time,
    so only a process we saw, and started, is hit."""
    import psutil
    try:
        kids = psutil.Process().children(recursive=True)
    except psutil.Error:
        return
    for p in kids:
        try:
            if os.getpgid(p.pid) == pgid:
                p.kill()
        except (OSError, psutil.Error):
            pass


def sweep_children(keep: Collection[int] = ()) -> list[int]:
    """Kill and reap every child of this process (the pulse is a subreaper, so
    setsid'd grandchildren of runners land here), except the processes in
    `keep` and their descendants (the inbox notifier's commands, which own
    their deadline). Returns the pids swept."""
    import psutil
    try:
        kids = psutil.Process().children(recursive=True)
    except psutil.Error:
        return []
    if keep:
        spared = set(keep)
        for pid in list(spared):
            try:
                spared.update(c.pid for c in psutil.Process(pid).children(recursive=True))
            except psutil.Error:
                pass
        kids = [p for p in kids if p.pid not in spared]
    for p in kids:
        try:
            p.kill()
        except psutil.Error:
            pass
    for p in kids:
        try:
            p.wait(1.0)
        except (psutil.Error, psutil.TimeoutExpired):
            pass
    return [p.pid for p in kids]


def become_subreaper() -> None:
    """Orphaned descendants of our commands re-parent to us, so `sweep_children`
    finds even those that called setsid. Linux only; a no-op elsewhere."""
    try:
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
    except (OSError, AttributeError):
        pass


@dataclass
class Result:
    code: int | None      # None: killed at the deadline
    timed_out: bool
    secs: float
    out_bytes: int


def run_logged(argv: Sequence[str], *, cwd: str, env: Mapping[str, str], stdin: IO[bytes] | int,
               log: IO[bytes], timeout: float, cap: int = 16 << 20) -> Result:
    """Run to completion with stdout+stderr merged, each line timestamped into
    `log` (not echoed). Blocks until exit or `timeout`; on timeout the whole
    group is killed. Output past `cap` bytes is drained and dropped."""
    t0 = time.monotonic()
    proc = spawn(argv, cwd=cwd, env=env, stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    os.set_blocking(fd, False)
    sel = selectors.DefaultSelector()
    sel.register(fd, selectors.EVENT_READ)
    if stop.fd() is not None:  # a stop ends the wait (stop.check below raises)
        sel.register(stop.fd(), selectors.EVENT_READ)
    deadline = t0 + timeout
    partial, written, timed_out = b"", 0, False
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                timed_out = True
                break
            if not sel.select(left):
                continue
            stop.check()
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                break
            partial += chunk
            *lines, partial = partial.split(b"\n")
            if written < cap and lines:
                data = b"".join(_stamp(ln) for ln in lines)
                log.write(data)
                written += len(data)
        if partial and written < cap:
            log.write(_stamp(partial))
        if not timed_out:
            timed_out = not wait_exit(proc, max(0.0, deadline - time.monotonic()))
    finally:
        sel.close()
        proc.stdout.close()
        kill_group(proc, 0.2 if not timed_out else KILL_GRACE)
    log.flush()
    return Result(None if timed_out else proc.returncode, timed_out,
                  time.monotonic() - t0, written)


def _stamp(line: bytes) -> bytes:
    return time.strftime("[%H:%M:%S] ").encode() + line.rstrip(b"\r") + b"\n"
