"""Every child's body: one PTY command, supervised from inside a forked child.

The child is single-threaded and blocks in one selector over: the PTY master,
its link to the root, a signal wakeup fd, and any attached terminals. Signal
handlers only record (the wakeup byte); the loop acts.

Link protocol (pickled tuples over the multiprocessing Pipe):
    root → child  ("stop",) | (op, req_id, *args) for op in COMMANDS
    child → root  ("status", {...}) on every state change | ("reply", req_id, {...})

States (looop.store.sessions.State):
    STARTING → RUNNING   the command was exec'd
    RUNNING  → EXITED    it ended by itself (exit code kept)
    RUNNING  → KILLED    stopped on request: kill, shutdown, root gone
    RUNNING  → RUNNING   restart: same session, new command pid
"""
from __future__ import annotations

import _signal
import dataclasses
import multiprocessing
import os
import selectors
import signal
import socket
import sys
import time
from typing import Any, Callable, Iterable

from looop import screen as screens
from looop.screen.keys import input_bytes
from looop.screen.live import LiveScreen
from looop.store import sessions, title
from looop.store.sessions import State
from looop.tree import activity, backends, control, ptycmd, stopping
from looop.tree.attached import Client, Terminals
from looop.tree.spec import ChildSpec
from looop.tree.tracker import Tracker, pending_ask

CHUNK = 1 << 16           # PTY read size; one wake reads up to BURST bytes
BURST = 1 << 20
DRAIN = 0.5               # after the command exits, wait this long for EIO


def child_main(spec: ChildSpec, conn: Any, root_pid: int, keep: tuple[int, ...], sentinel: int) -> None:
    """Entry point of the forked multiprocessing child. Never returns normally
    into multiprocessing's error path: exceptions end the PTY group first.
    `keep`: the fds of ours the root knows (link, pass_fds) and the one the
    root's sentinel of us reads the other end of; `sentinel`: where
    multiprocessing put our end of the root's liveness pipe (see Root._fork)."""
    got = multiprocessing.parent_process().sentinel
    if got != sentinel:
        # then `keep` may name another fd than our sentinel pipe: closing
        # it would look like our death to the root. Fail the start instead.
        raise RuntimeError(f"multiprocessing's pipes are not at the fds looop expects ({got} != {sentinel})")
    # (multiprocessing opened /dev/null as our stdin at the lowest free fd:
    # kept, or sys.stdin would wrap whatever fd is opened next)
    close_all_but((*keep, sentinel, *_stdin_fd()))
    # Our own process group: a SIGKILL of the root's group (`kill -9 -PGID`)
    # then spares us, we see the root die (PDEATHSIG) and stop our command
    # tree within stopping.ORPHAN_GRACE — nothing outlives it. Ignored TTOU/TTIN: a
    # background group may still write the terminal (the pulse's tee) under
    # `stty tostop`; the command gets defaults back (ptycmd.clean_exec_state).
    try:
        os.setpgid(0, 0)
    except OSError:
        pass
    _signal.signal(signal.SIGTTOU, _signal.SIG_IGN)
    _signal.signal(signal.SIGTTIN, _signal.SIG_IGN)
    child = Child(spec, conn, root_pid)
    try:
        child.run()
    finally:
        child.teardown()


def _stdin_fd() -> tuple[int, ...]:
    try:
        return (sys.stdin.fileno(),) if sys.stdin is not None else ()
    except (ValueError, OSError):
        return ()


def fd_gaps(keep: Iterable[int], lo: int, hi: int) -> list[tuple[int, int]]:
    """The [start, end) ranges of fds in [lo, hi) that are not in `keep`."""
    gaps = []
    for fd in sorted(set(keep)):
        if fd >= hi:
            break
        if fd >= lo:
            if fd > lo:
                gaps.append((lo, fd))
            lo = fd + 1
    if lo < hi:
        gaps.append((lo, hi))
    return gaps


CLOSERANGE_MAX = 65536  # fd limit up to which closerange's per-fd fallback is cheap


def close_all_but(keep: Iterable[int], limit: int | None = None) -> None:
    """Close every fd above stdio but `keep`: all we inherited from the
    root (its lock, socket, clients, and every sibling's link and sentinel
    pipes) — the root lists nothing before forking. One close_range(2) per
    gap where the fd limit is small; above it (a container's 1048576) the
    list of our own open fds, since without close_range(2) (a kernel before
    5.9, a seccomp profile, an old libc) closerange closes every number up
    to the limit one by one: seconds per start."""
    if limit is None:
        limit = os.sysconf("SC_OPEN_MAX")  # (no fd of ours is above the fd limit)
    if 0 < limit <= CLOSERANGE_MAX:
        for start, end in fd_gaps(keep, 3, limit):
            os.closerange(start, end)
        return
    kept = set(keep)
    try:
        mine = [int(n) for n in os.listdir("/proc/self/fd")]
    except OSError:
        mine = list(range(3, CLOSERANGE_MAX))
    for fd in mine:
        if fd > 2 and fd not in kept:
            try:
                os.close(fd)
            except OSError:
                pass  # (the listing's own directory fd, already closed)


class Child(Terminals):
    def __init__(self, spec: ChildSpec, conn: Any, root_pid: int):
        self.spec, self.conn, self.root_pid = spec, conn, root_pid
        self.d = spec.data_dir
        self.state = State.STARTING
        self.flagged, self.note = False, None
        self.exit_code: int | None = None
        self.cmd: backends.Backend | None = None
        self.cmd_alive = False
        self.pty_open = False
        self.stop_mode: State | str | None = None   # KILLED, or "restart"
        self.stop_reason: str | None = None         # "kill": asked by `looop kill` (status.json)
        self.stop_rung: stopping.Rung | None = None      # the stop ladder's rung, while stopping
        self.drain_until: float | None = None
        self.waiters: list[int] = []                # req ids answered when the stop completes
        self.live: LiveScreen | None = None       # the screen, from the first output on
        self.clients: dict[int, Client] = {}
        self.done = False
        self.sel = selectors.DefaultSelector()
        # A restarted session (the pulse, or `restart` of a finished worker)
        # appends to its log: offsets stay monotonic across children too.
        # A new worker's dir was removed first, so this is 0 for it.
        self.log_base = int(sessions.read_status(self.d, spec.sid).get("log_base") or 0)
        self.started_at = sessions.rfc3339()
        self.pid_created: float | None = None
        self.log_error: str | None = None           # the log cannot be written (full disk)
        # what the agent is doing (SPEC §15): workers only, off the output path
        pats = activity.compile_patterns(spec.sid, {k: list(v) for k, v in spec.states})
        self.tracker = (Tracker(pats, spec.settle, spec.stuck, starting=spec.starting)
                        if spec.role == "worker" else None)
        self.remote: dict[str, Any] | None = None   # the backend's identity, as last published

    # -- setup and teardown -------------------------------------------------

    def run(self) -> None:
        s = self.spec
        # forked from the root: drop its title before anything can list us
        title.set_title(s.role, s.sid, self.state.value, False, self.d)
        self._setup_signals()
        ptycmd.set_subreaper_and_pdeathsig(signal.SIGTERM)
        if self._root_gone():  # the root died before prctl: close the race
            return
        self._open_log()
        self.sel.register(self.conn.fileno(), selectors.EVENT_READ, self._on_link)
        self._spawn()
        while not self.done:
            for key, mask in self.sel.select(self._timeout()):
                key.data(key.fileobj, mask)
            self._on_timers()
        self.finish()

    def _setup_signals(self) -> None:
        # Ctrl-C / Ctrl-\ reach the whole foreground group: the root handles them, once
        # _signal.signal: signal.signal's enum wrapping of the old handler
        # (the root's lambda: a ValueError inside enum, every call) would
        # copy-on-write ~80 KiB of the root's pages into each child
        _signal.signal(signal.SIGINT, _signal.SIG_IGN)
        _signal.signal(signal.SIGQUIT, _signal.SIG_IGN)
        r, w = socket.socketpair()
        r.setblocking(False)
        w.setblocking(False)
        self._wake_r, self._wake_w = r, w
        for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGCHLD):
            _signal.signal(sig, lambda *_: None)  # record only: the byte on the wakeup fd
        signal.set_wakeup_fd(w.fileno(), warn_on_full_buffer=False)
        self.sel.register(r, selectors.EVENT_READ, self._on_signal)

    def _open_log(self) -> None:
        self.log_path = path = sessions.log_path(self.d, self.spec.sid)
        # O_NONBLOCK: a FIFO put in its place fails the open (ENXIO) instead of hanging us
        self.log_fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC | os.O_NONBLOCK,
                              0o600)
        st = os.fstat(self.log_fd)
        self.log_size, self.log_ino = st.st_size, st.st_ino
        try:
            self.log1_ino: int | None = os.stat(path + ".1").st_ino
        except OSError:
            self.log1_ino = None

    def _root_gone(self) -> bool:
        return os.getppid() != self.root_pid

    def teardown(self) -> None:
        """Last resort on any exit path: nothing of ours may survive."""
        if self.cmd is not None:
            self.cmd.signal(backends.Stop.KILL)
        # the last resort: every descendant, whatever the backend saw; none
        # left iff we have no child (a subreaper), which is one small read
        if ptycmd.direct_children() != []:
            ptycmd.sweep(signal.SIGKILL)
        self._reap_all(wait=0.5)

    # -- the command ----------------------------------------------------------

    def _spawn(self) -> None:
        s = self.spec
        self.cmd = backends.open_backend(s, self.cmd)
        try:
            pid = self.cmd.spawn()
        except OSError as e:
            msg = f"looop: cannot start {s.argv[0]}: {e}\r\n".encode()
            self._output(msg)
            self.exit_code, self.state = 127, State.EXITED
            self._publish(error=str(e))
            self.done = True
            return
        self.cmd_alive = self.pty_open = True
        self.exit_code = None
        if self.tracker is not None:
            self.tracker.restart(time.monotonic())
        self.started_at = sessions.rfc3339()
        self.pid_created = ptycmd.create_time(pid)
        self.sel.register(self.cmd.fd, selectors.EVENT_READ, self._on_pty)
        self.state = State.RUNNING  # STARTING -> RUNNING: exec succeeded
        self._publish(pid=pid)

    def _on_pty(self, _f: Any, _mask: int) -> None:
        """One wake: read up to BURST and hand it on as one piece (one log
        write, not one per ≤ 4 KiB read) — but never past the rotation size,
        so the log rotates where it did read by read."""
        assert self.cmd is not None
        got, chunks, size = 0, [], 0
        room = self.spec.log_max - self.log_size if self.spec.log_max else BURST
        try:
            while got < BURST:
                data = self.cmd.read(CHUNK)
                if data is None:
                    return
                if not data:  # EIO: every holder of the slave is gone
                    self._flush(chunks)
                    chunks = []
                    self._stop_reading()
                    self._maybe_command_done()
                    return
                got += len(data)
                chunks.append(data)
                size += len(data)
                if size >= room:
                    self._flush(chunks)
                    chunks, size = [], 0
                    room = self.spec.log_max - self.log_size if self.spec.log_max else BURST
        finally:
            self._flush(chunks)

    def _flush(self, chunks: list[bytes]) -> None:
        if chunks:
            self._output(chunks[0] if len(chunks) == 1 else b"".join(chunks))

    def _stop_reading(self) -> None:
        """The PTY gave EIO (or we stop draining it): no more reads."""
        if self.pty_open and self.cmd is not None:
            try:
                self.sel.unregister(self.cmd.fd)
            except (KeyError, ValueError):
                pass
        self.pty_open = False

    def _output(self, data: bytes) -> None:
        """Every byte to the log first (nothing parsed on this path)."""
        if self.tracker is not None:
            self.tracker.on_output(time.monotonic())
        err = None
        if self._log_moved():
            try:
                self._reopen_log()  # deleted or moved (a user freeing space): a fresh one now
            except OSError as e:
                err = f"output.log: {e.strerror or e}"  # (bytes go to the old file meanwhile)
        try:
            written = _write_all(self.log_fd, data)
        except OSError as e:
            # a full disk (or a log that went away) must not kill the worker:
            # the screen, attached terminals and the link keep working
            written = getattr(e, "written", 0)
            err = err or f"output.log: {e.strerror or e}"
        if err != self.log_error:
            self.log_error = err
            self._publish()
        self.log_size += written
        if self.spec.log_max and self.log_size >= self.spec.log_max:
            try:
                self._rotate()
            except OSError as e:
                self.log_error = f"output.log rotation: {e.strerror or e}"
        if self.spec.tee_stdout:
            try:
                _write_all(1, data)
            except OSError:
                pass  # the terminal went away; the log still has it
        self._live().output(data)
        self._answer()
        if self.clients:
            f = control.frame(control.OUT, data)
            for c in list(self.clients.values()):
                self._client_send(c, f)

    def _rotate(self) -> None:
        path = sessions.log_path(self.d, self.spec.sid)
        try:
            os.replace(path, path + ".1")
        except FileNotFoundError:
            pass  # deleted meanwhile: the fresh file below is all there is
        self._reopen_log()

    def _log_moved(self) -> bool:
        """Does output.log still name the file we write? One stat per wake
        (~1 µs), so a deleted or moved log is replaced at once."""
        try:
            return os.stat(self.log_path).st_ino != self.log_ino
        except FileNotFoundError:
            return True
        except OSError:
            return False

    def _reopen_log(self) -> None:
        """Start a fresh output.log; offsets stay monotonic (the bytes of the
        old file count as rotated away). Keeps the old fd if that fails."""
        old, base = self.log_fd, self.log_base
        self.log_base += self.log_size
        try:
            self._open_log()
        except OSError:
            self.log_base = base
            raise
        os.close(old)
        self._publish()

    def _on_signal(self, _f: Any, _mask: int) -> None:
        try:
            sigs = self._wake_r.recv(4096)
        except BlockingIOError:
            return
        if signal.SIGCHLD in sigs:
            self._reap_all()
        if signal.SIGTERM in sigs or signal.SIGHUP in sigs:
            if self._root_gone():
                self._orphaned()  # PDEATHSIG: the root died, maybe by SIGKILL
            elif self.stop_mode is None:
                self.stop(State.KILLED)  # someone asked us directly

    def _orphaned(self) -> None:
        """The root is gone: stop now, with a short grace (nothing outlives
        the root by more than ~2 s, whatever LOOOP_SHUTDOWN_GRACE says)."""
        if self.stop_mode != State.KILLED:
            self.stop(State.KILLED, grace=min(self.spec.grace, stopping.ORPHAN_GRACE))
        elif self.stop_rung is not None:  # stopping already: only sooner
            self.stop_rung = stopping.ask(self.stop_rung, time.monotonic(), stopping.ORPHAN_GRACE)

    def _reap_all(self, wait: float = 0.0) -> None:
        """Reap through the backend (the command and any re-parented
        descendant); note the command's exit once."""
        if self.cmd is None:
            return
        code = self.cmd.wait(wait)
        if code is not None and self.cmd_alive:
            self.exit_code = code
            self.cmd_alive = False
            self.drain_until = time.monotonic() + DRAIN
            self._maybe_command_done()

    def _maybe_command_done(self) -> None:
        """The command is finished once it is reaped and the PTY is drained
        (EIO), or the drain window passed because a descendant holds the PTY."""
        if self.cmd_alive or (self.pty_open and time.monotonic() < (self.drain_until or 0)):
            return
        assert self.cmd is not None
        if self.pty_open:
            self._on_pty(None, 0)  # last bytes still buffered
            self._stop_reading()
        self.cmd.sweep()
        self.cmd.close()
        self.pty_open = False
        self.stop_rung, self.drain_until = None, None
        if self.stop_mode is None and self.cmd.retry():  # ssh's 255 before the first byte
            self._spawn()
            return
        if self.stop_mode == "restart":
            self.stop_mode = None
            self._spawn()
            self._answer_waiters({"ok": True, "pid": self.cmd.pid if self.cmd else None})
            return
        # RUNNING -> KILLED (asked) or EXITED (by itself)
        self.state = State.KILLED if self.stop_mode == State.KILLED else State.EXITED
        self.done = True

    def stop(self, mode: State | str, grace: float | None = None) -> None:
        """Begin the ladder: CONT+HUP+TERM to the group now, KILL after grace."""
        self.stop_mode = mode
        if not self.cmd_alive or self.cmd is None:
            if not self.done and not self.cmd_alive:
                self._maybe_command_done()
            return
        self.cmd.signal(backends.Stop.GRACEFUL)
        self.stop_rung = stopping.ask(self.stop_rung, time.monotonic(), self.spec.grace if grace is None else grace)

    def _on_timers(self) -> None:
        if self.live is not None and self.live.due is not None:
            self.live.tick()
            self._answer()
        now = time.monotonic()
        if self.tracker is not None and self.cmd_alive:
            due = self.tracker.due()
            if due is not None and now >= due:
                self._look(now)
        if self.cmd is not None and self.cmd.identity() != self.remote:
            self._publish()  # the engine named it (a Slurm job id)
        if self.drain_until is not None and now >= self.drain_until:
            self._maybe_command_done()
        if self.stop_rung is not None and now >= self.stop_rung.deadline:
            self.stop_rung, send = stopping.escalate(self.stop_rung, now)
            if send is not None and self.cmd is not None:
                self.cmd.signal(backends.Stop(send))  # grace spent: the group and every descendant
            elif self.stop_rung is None:
                self.cmd_alive = False  # unkillable (D state): give up waiting, report
                self.pty_open = False
                self._maybe_command_done()

    def _timeout(self) -> float | None:
        look = self.tracker.due() if self.tracker is not None and self.cmd_alive else None
        times = [t for t in (self.stop_rung and self.stop_rung.deadline, self.drain_until, look,
                             self.live and self.live.due)
                 if t is not None]
        return max(0.0, min(times) - time.monotonic()) if times else None

    # -- activity ---------------------------------------------------------------

    def _look(self, now: float) -> None:
        """Classify the worker's activity (looop.tree.tracker); on a change,
        publish it and record a `worker_state` event."""
        assert self.tracker is not None
        changed = self.tracker.evaluate(now, self._screen_lines, self.flagged, self.note,
                                        pending_ask(self.d, self.spec.sid))
        if changed is None:
            return
        before, v = changed
        self._publish()
        from looop.store import asks, events
        events.emit(self.d, "worker_state", id=self.spec.sid, **{"from": before}, to=v.state,
                    evidence=v.evidence, **({"until": v.until} if v.until else {}))
        if v.state in activity.NEEDS_SOMEONE:
            asks.wake_watchers(self.d)  # notify_command now, not at the next inbox poll

    def _screen_lines(self) -> tuple[list[str], tuple[int, int]]:
        """The settled screen for the classifier: its rows and the cursor."""
        lines, cursor = self._live().text()  # no styles: ~3× cheaper than a snapshot
        self._answer()
        return lines, cursor

    def _tracking(self) -> Tracker:
        if self.tracker is None or not self.cmd_alive:
            raise ValueError(f"session {self.spec.sid} has no live command")
        return self.tracker

    def _cmd_event(self, req: int, state: str, note: str | None) -> None:
        """`looop _event <id> <state> [note]`: an agent-native event (a hook)."""
        tracker = self._tracking()
        if state not in activity.EVENT_STATES:
            raise ValueError(f"unknown state {state!r} (known: {', '.join(activity.EVENT_STATES)})")
        tracker.set_event(state, note, time.monotonic())
        self._cmd_look(req)

    def _cmd_look(self, req: int) -> None:
        """A nudge (`ask`, `answer`; and after an event): classify now, though
        the worker may print nothing — an ask is evidence without output."""
        tracker = self._tracking()
        now = time.monotonic()
        self._look(now)
        self.reply(req, {"ok": True, "activity": tracker.status(now)})

    # -- status -----------------------------------------------------------------

    def _publish(self, **extra: Any) -> None:
        s = self.spec
        tr = self.tracker if self.cmd_alive else None
        if tr is not None:
            extra.setdefault("activity", tr.status(time.monotonic()))
        self.remote = self.cmd.identity() if self.cmd else None
        st = {"id": s.sid, "role": s.role, "state": self.state.value,
              "pid": self.cmd.pid if self.cmd and self.cmd.pid else None,
              "pid_created": self.pid_created, "child_pid": os.getpid(), "exit_code": self.exit_code,
              "flagged": self.flagged, "note": self.note, "started_at": self.started_at,
              "cols": self.cmd.cols if self.cmd else s.cols,
              "rows": self.cmd.rows if self.cmd else s.rows,
              "log_base": self.log_base, "log_ino": self.log_ino, "log1_ino": self.log1_ino,
              "log_error": self.log_error, "stop_reason": self.stop_reason, "remote": self.remote,
              **extra}
        try:
            sessions.write_status(self.d, s.sid, st)
        except OSError:
            pass  # full disk: the link still carries the truth to the root
        # The title last: `ls` takes a live activity's state from the title and
        # its evidence from status.json, so the file must already agree.
        title.set_title(s.role, s.sid, self.state.value, self.flagged, self.d,
                        tr.verdict.state if tr else None, tr.since if tr else None)
        self._send(("status", st))

    def _send(self, msg: tuple) -> None:
        try:
            self.conn.send(msg)
        except OSError:
            pass  # root gone; its death is seen on the link too

    def reply(self, req: int, payload: dict[str, Any]) -> None:
        self._send(("reply", req, payload))

    def _answer_waiters(self, payload: dict[str, Any]) -> None:
        for req in self.waiters:
            self.reply(req, payload)
        self.waiters.clear()

    def finish(self) -> None:
        """Final status to disk and the root; attached terminals told the code."""
        self._publish()
        self._answer_waiters({"ok": True, "exit_code": self.exit_code, "state": self.state.value})
        for c in list(self.clients.values()):
            self._client_send(c, control.frame(control.EXIT, str(self.exit_code).encode()))
            self._drop_client(c, flush=True)

    # -- the link ---------------------------------------------------------------

    def _on_link(self, _f: Any, _mask: int) -> None:
        try:
            msg = self.conn.recv()
        except (EOFError, OSError):
            self.sel.unregister(self.conn.fileno())
            self._orphaned()  # the root is gone: tear down
            return
        op, args = msg[0], msg[1:]
        handler = COMMANDS.get(op)
        if handler is None:
            if args:
                self.reply(args[0], {"ok": False, "error": f"unknown op {op!r}"})
            return
        try:
            handler(self, *args)
        except (OSError, ValueError, TypeError) as e:
            if args:
                self.reply(args[0], {"ok": False, "error": str(e) or type(e).__name__})

    def _write_input(self, data: bytes, timeout: float = 5.0) -> None:
        """Type bytes into the PTY, pumping its output meanwhile so a command
        blocked on a full PTY cannot deadlock us."""
        if not self.cmd_alive or self.cmd is None:
            raise ValueError(f"session {self.spec.sid} has exited")
        view = memoryview(data)
        deadline = time.monotonic() + timeout
        import select
        while view:
            view = view[self.cmd.write(bytes(view)):]
            if not view:
                return
            left = deadline - time.monotonic()
            if left <= 0:
                raise ValueError("the session is not reading its input")
            r, _, _ = select.select([self.cmd.fd], [self.cmd.fd], [], min(left, 0.1))
            if r:
                self._on_pty(None, 0)

    def _cmd_input(self, req: int, data: bytes, how: str = "raw", suffix: bytes = b"") -> None:
        """Type `data` (+ `suffix`, e.g. Enter). how="keys": cursor keys in
        the program's DECCKM form; how="paste": multi-line text bracketed
        when the program enabled mode 2004 — decided here, where the modes
        are current, not by the CLI."""
        if how != "raw":
            data = input_bytes(data, how, self._live().current().modes())
        self._write_input(data + suffix)
        # canonical: the program reads lines, and the tty cuts one at 4095
        # bytes (`looop send` checks before typing)
        self.reply(req, {"ok": True, "canonical": self._canonical()})

    def _canonical(self) -> bool | None:
        import termios
        try:
            return bool(termios.tcgetattr(self.cmd.fd)[3] & termios.ICANON) if self.cmd else None
        except (termios.error, OSError, ValueError):
            return None

    def _resize(self, cols: int, rows: int) -> None:
        if self.cmd is None or not self.cmd_alive:
            raise ValueError(f"session {self.spec.sid} has exited")
        err = screens.size_error(cols, rows)
        if err:
            raise ValueError(err)
        self.cmd.resize(cols, rows)  # first: the program must get its SIGWINCH whatever the screen does
        self._live().resize(cols, rows)  # never raises (looop.screen)
        self._publish()

    def _cmd_resize(self, req: int, cols: int, rows: int) -> None:
        self._resize(cols, rows)
        self.reply(req, {"ok": True, "cols": cols, "rows": rows})

    def _cmd_restart(self, req: int, argv: tuple[str, ...] | None = None) -> None:
        """Restart the command in place; `argv` (the runner's resume command,
        prepared by the root) replaces the command from now on."""
        if self.stop_mode is not None:  # a kill or shutdown wins over a restart
            raise ValueError(f"session {self.spec.sid} is stopping")
        if argv:
            self.spec = dataclasses.replace(self.spec, argv=tuple(argv))
        self.waiters.append(req)
        self.stop("restart")

    def _cmd_kill(self, req: int) -> None:
        self.waiters.append(req)
        if self.stop_mode is None:
            self.stop_reason = "kill"
            self.stop(State.KILLED)

    def _cmd_stop(self) -> None:
        if self.stop_mode is None or self.stop_mode == "restart":
            self.stop(State.KILLED)

    def _cmd_flag(self, req: int, note: str | None) -> None:
        self.flagged, self.note = True, note or None
        self._publish()
        if self.tracker is not None and self.cmd_alive:
            self._look(time.monotonic())
        self.reply(req, {"ok": True})

    def _cmd_unflag(self, req: int) -> None:
        self.flagged, self.note = False, None
        self._publish()
        if self.tracker is not None and self.cmd_alive:
            self._look(time.monotonic())
        self.reply(req, {"ok": True})

    def _live(self) -> LiveScreen:
        if self.live is None:
            cols, rows = (self.cmd.cols, self.cmd.rows) if self.cmd else (self.spec.cols, self.spec.rows)
            self.live = LiveScreen(cols, rows, lnm=not self.spec.onlcr)
        return self.live

    def _answer(self) -> None:
        """Write the screen's answers to terminal queries back to the program,
        unless a real terminal is attached: it answers them itself."""
        data = self.live.replies() if self.live is not None else b""
        if data and not self.clients and self.cmd_alive and self.cmd is not None:
            try:
                self.cmd.write(data)  # non-blocking; a full PTY loses the answer, not us
            except OSError:
                pass

    def _cmd_shot(self, req: int) -> None:
        snap = self._live().snapshot()
        self._answer()
        self.reply(req, {"ok": True, "screen": snap})


def _write_all(fd: int, data: bytes) -> int:
    """os.write until every byte is out (short writes happen on pipes/ttys).
    An OSError carries `.written`, the count that did get out."""
    view = memoryview(data)
    done = 0
    while view:
        try:
            n = os.write(fd, view)
        except OSError as e:
            e.written = done  # type: ignore[attr-defined]
            raise
        view = view[n:]
        done += n
    return done


COMMANDS: dict[str, Callable[..., None]] = {
    "stop": Child._cmd_stop,
    "input": Child._cmd_input,
    "resize": Child._cmd_resize,
    "restart": Child._cmd_restart,
    "kill": Child._cmd_kill,
    "flag": Child._cmd_flag,
    "unflag": Child._cmd_unflag,
    "shot": Child._cmd_shot,
    "event": Child._cmd_event,
    "look": Child._cmd_look,
    "detach": Child._cmd_detach,
    "attach": Child._cmd_attach,
}
