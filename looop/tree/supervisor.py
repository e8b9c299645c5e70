"""The root supervisor: owns the lock, the control socket and every child.

Single-threaded by design: one selector over child links, child sentinels,
the control socket and its clients, and a signal wakeup fd. That is what
makes `fork` safe, and `fork` is what makes children cheap: a child forked
from a root that already imported the child code costs ~2.7 MiB USS and a
few ms, against ~6 MiB / 13 ms for forkserver and ~12 MiB / 45 ms for spawn
(SPEC §13). Never start a thread in this process.

Shutdown (Ctrl-C, SIGTERM, SIGHUP): every child is told to stop at once and
runs its own ladder in parallel (HUP/TERM, SIGKILL after the grace); the root
waits on sentinels up to grace + 2 s, then SIGKILLs what is left and sweeps
orphans (the root is a child subreaper too). A second Ctrl-C skips the grace.
"""
from __future__ import annotations

import gc
import itertools
import multiprocessing
import os
import selectors
import shlex
import signal
import socket
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from looop import settings
from looop.errors import AlreadyRunning, LooopError
from looop.store import atomic, config, events, jsonio, lock, paths, perms, prompts, sessions, title
from looop.store.sessions import State
from looop.tree import backends, control, leftovers, links, notify, ptycmd, stopping, tracker
from looop.tree.child import child_main
from looop.tree.ops import Conn, ControlServer
from looop.tree.respawn import Respawns
from looop.tree.restart import Policy, Restart
from looop.tree import spec as spec_mod
from looop.tree.spec import ChildSpec
from looop.ui.out import Printer

# fork, explicitly (the default changed in 3.14): see the module docstring.
CTX = multiprocessing.get_context("fork")
from multiprocessing.process import _children as _mp_children  # noqa: E402 (see Root._fork)
# Each asks for a clean stop of the tree. SIGQUIT too: a terminal's Ctrl-\
# would otherwise kill the root (and the children) without any teardown.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)


@dataclass
class Kid:
    spec: ChildSpec
    proc: Any
    conn: Any
    status: dict[str, Any] = field(default_factory=dict)
    start_waiters: list["Conn"] = field(default_factory=list)
    pulse_end: socket.socket | None = None
    born: float = field(default_factory=time.monotonic)
    stop_asked: bool = False       # a `kill` was sent: its end is not a crash
    fail_reason: str | None = None  # killed by the recovery ladder: its end is `failed`
    link: Any = None               # links.ChildLink over `conn`: never blocks the root
    writing: bool = False          # its link fd is registered for EVENT_WRITE


def env_float(name: str, default: float | None = None) -> float:
    """A numeric knob from looop.settings (its default unless given)."""
    return float(settings.get(name, None, default))


class Root(ControlServer, Respawns):
    def __init__(self, d: str, json_mode: bool = False, printer: Printer | None = None):
        self.d = d
        self.json = json_mode
        self.out = printer or Printer(json=json_mode)
        self.grace = env_float("LOOOP_SHUTDOWN_GRACE")
        self.log_max = int(env_float("LOOOP_LOG_MAX_BYTES"))  # 0 = never rotate
        # the pulse: permanent, restarted at once, within 5 restarts in 60 s
        self.pulse_policy = Policy(Restart.PERMANENT, int(env_float("LOOOP_RESTART_MAX")),
                                   env_float("LOOOP_RESTART_PERIOD"), backoff=0.0)
        self._init_respawns()
        self.kids: dict[str, Kid] = {}
        # live workers per host ("" here), kept as kids come and go: the cap
        # and ssh placement read it at every start (a scan of kids: O(N²))
        self.hosts: Counter[str] = Counter()
        self.by_fd: dict[int, Kid] = {}
        self.pending: dict[int, tuple[Conn, str, str]] = {}  # req id → (client, session, op)
        self.req_ids = itertools.count(1)
        self.sel = selectors.DefaultSelector()
        self.stopping = False
        self.stop_deadline: float | None = None
        self.stopped_workers: list[str] = []
        self.exit_code = 0
        self.notifier = notify.Notifier()
        self.ready_sent = False
        self.next_watchdog: float | None = None
        self.conns: dict[int, Conn] = {}
        self.accept_resume: float | None = None  # out of fds: when to accept again
        self.pulse_grace = env_float("LOOOP_PULSE_GRACE")
        self.pulse_due: float | None = None  # the pulse's next progress report is due by then
        self.accept_paused = False
        self._env: dict[str, str] | None = None

    # -- lifecycle ----------------------------------------------------------

    def run(self) -> int:
        """Blocks until the tree is down; returns the process exit code."""
        paths.ensure_layout(self.d)
        self._lock()
        self._tidy()
        title.set_title("root", "root", "running", False, self.d)
        self.listener = control.listen(self.d)
        self.sel.register(self.listener, selectors.EVENT_READ, self._on_accept)
        sock = paths.socket_path(self.d)
        if os.path.dirname(sock) != self.d:
            self.out.line("info", "root.socket", f"data dir path too long for a Unix socket: "
                          f"control socket at {sock}", socket=sock)
        self._setup_signals()
        ptycmd.set_subreaper_and_pdeathsig(0)
        self._recover()
        prompts.contract()  # read once, here: every worker's prompt starts with it
        events.emit(self.d, "root_start", pid=os.getpid())
        self._start_pulse()
        if self.notifier.watchdog_every:
            self.next_watchdog = time.monotonic()
        try:
            while not (self.stopping and not self.kids):
                timeout = self._timeout()
                for key, mask in self.sel.select(timeout):
                    key.data(key.fileobj, mask)
                self._on_timers()
        finally:
            self._final_sweep()
        return self._report_stop()

    def _lock(self) -> None:
        try:
            fd = lock.take(self.d)
        except lock.Held as e:
            raise AlreadyRunning(f"already running (pid {e.pid}) — watch it with: looop watch pulse") from None
        self.lock_fd = fd  # held for our lifetime; closed in every child right after fork

    def _tidy(self) -> None:
        """Once per start, under the lock: owner-only modes (a data dir that
        existed with looser ones is tightened, and said so), and the temp
        files of writers that died mid-write removed."""
        old, n = perms.tighten(self.d)
        if n:
            self.out.line("warn", "root.perms", f"made {self.d} owner-only: {n} {'entry' if n == 1 else 'entries'} had "
                          f"group/other access (the dir was {old:04o})", changed=n)
        atomic.sweep_tmp(self.d)

    def _recover(self) -> None:
        """Clean up after a previous root of this data dir that died hard."""
        pids = leftovers.sweep(self.d)
        if pids:
            self.out.line("warn", "root.swept", f"killed {len(pids)} leftover processes of a "
                          f"previous looop of this data dir", pids=pids)
            events.emit(self.d, "leftovers_swept", pids=pids)
        gone = backends.leftovers(self.d, backends.placements_left(self.d))
        if gone:
            self.out.line("warn", "root.swept_remote", f"removed {len(gone)} leftovers of a previous "
                          f"looop of this data dir on its engines", remote=gone)
            events.emit(self.d, "leftovers_swept", remote=gone)
        leftovers.bury_stale_sessions(self.d)

    def _setup_signals(self) -> None:
        r, w = socket.socketpair()
        r.setblocking(False)
        w.setblocking(False)
        self._wake = (r, w)
        for sig in (*STOP_SIGNALS, signal.SIGCHLD):
            signal.signal(sig, lambda *_: None)  # record only: the loop reads the wakeup byte
        signal.set_wakeup_fd(w.fileno(), warn_on_full_buffer=False)
        self.sel.register(r, selectors.EVENT_READ, self._on_signal)

    def _on_signal(self, sock: socket.socket, _mask: int) -> None:
        try:
            sigs = sock.recv(4096)
        except BlockingIOError:
            return
        for sig in sigs:
            if sig in STOP_SIGNALS:
                if self.stopping:
                    self.stop_deadline = time.monotonic()  # second signal: no more grace
                else:
                    if sig == signal.SIGINT:
                        self.out.end_echo()
                    self.shutdown(f"got {signal.Signals(sig).name}")
            elif sig == signal.SIGCHLD:
                self._reap_orphans()

    def shutdown(self, why: str, code: int = 0) -> None:
        """Ask every child to stop, all at once; the loop waits for proof of death."""
        if self.stopping:
            return
        self.stopping = True
        self.exit_code = code
        self.notifier.send("STOPPING=1")
        events.emit(self.d, "root_stop", reason=why)
        self.stopped_workers = sorted(k for k, kid in self.kids.items()
                                      if kid.spec.role == "worker")
        for kid in self.kids.values():
            self._send(kid, ("stop",), force=True)
        self.stop_deadline = time.monotonic() + stopping.bound(self.grace)

    def _timeout(self) -> float | None:
        times = [t for t in (self.stop_deadline, self.next_watchdog, self._next_due(), self.accept_resume,
                             self.pulse_due)
                 if t is not None]
        return max(0.0, min(times) - time.monotonic()) if times else None

    def _on_timers(self) -> None:
        now = time.monotonic()
        if self.next_watchdog is not None and now >= self.next_watchdog:
            if self.pulse_due is None or now < self.pulse_due:  # only while the pulse progresses
                self.notifier.send("WATCHDOG=1")
            self.next_watchdog = now + (self.notifier.watchdog_every or 1.0)
        if self.pulse_due is not None and now >= self.pulse_due:
            self._pulse_stalled(now)
        if self.due:
            self._fire_due(now)
        if self.accept_resume is not None and now >= self.accept_resume:
            self._resume_accepts()
        if self.stop_deadline is not None and now >= self.stop_deadline:
            for kid in list(self.kids.values()):  # past the bound: no more asking
                self._kill(kid)

    def _pulse_stalled(self, now: float) -> None:
        """No beat report in time: alive is not enough, restart it (the
        restart counts toward the intensity like a crash)."""
        self.pulse_due = None
        kid = self.kids.get("pulse")
        if kid is None or self.stopping or kid.proc.exitcode is not None:
            return
        self.out.line("error", "supervisor.stalled", "the pulse made no progress past its deadline "
                      f"(+{self.pulse_grace:g}s grace) — restarting it")
        events.emit(self.d, "pulse_stalled", child_pid=kid.proc.pid)
        kid.proc.kill()  # (unreaped: still ours); its sentinel brings the restart

    def _kill(self, kid: Kid) -> None:
        """SIGKILL a child (not reaped yet, so its pid is still ours) and
        wait, bounded, for the proof."""
        if kid.proc.exitcode is None:
            kid.proc.kill()
        kid.proc.join(1)
        self._on_death(kid)

    def _final_sweep(self) -> None:
        """Whatever happened above, nothing we started survives us."""
        for kid in list(self.kids.values()):
            self._kill(kid)
        self._reap_orphans(kill=True)
        try:
            self.listener.close()
            os.unlink(paths.socket_path(self.d))
        except OSError:
            pass

    def _report_stop(self) -> int:
        ids = self.stopped_workers
        self.out.line("ok", "root.stopped",
                      f"stopped {len(ids)} worker{'s' * (len(ids) != 1)}" + (f" ({', '.join(ids)})" if ids else ""),
                      workers=ids)
        self.out.line("ok", "pulse.stopped", "pulse stopped")
        return self.exit_code

    # -- children -------------------------------------------------------------

    def _fork(self, spec: ChildSpec, keep: tuple[int, ...] = ()) -> Kid:
        parent_end, child_end = CTX.Pipe(duplex=True)
        sys.stdout.flush()
        sys.stderr.flush()
        # What exists now is shared with the child copy-on-write; frozen, the
        # child's garbage collections never write those objects' GC headers
        # (a full collection would otherwise copy most of the inherited heap).
        gc.freeze()
        # The child closes every fd but its own (child.close_all_but): ours
        # and its siblings'. Its own are the link end, `keep`, and the two
        # that start() makes: two os.pipe() calls take the four lowest free
        # fds (POSIX), in order parent_r (our sentinel), child_w (the child
        # holds it until death), child_r (its parent sentinel), parent_w.
        # So no listing of our fds (O(N) per start at N workers) is needed.
        # An fd opened or closed in between would move them: the child checks
        # the third and fails the start if it is off.
        free = _lowest_free_fds(child_end.fileno(), 4)
        own = (child_end.fileno(), *keep, free[1])
        proc = CTX.Process(target=child_main, name=f"looop-{spec.sid}", daemon=True,
                           args=(spec, child_end, os.getpid(), own, free[2]))
        proc.start()
        if proc.sentinel != free[0]:
            # moved by two fds at once (the child's check sees one): the child
            # would close its own end of our sentinel pipe. It must not run;
            # it is unreaped, so the pid is ours, and its death is reported
            # as any start that died.
            os.kill(proc.pid, signal.SIGKILL)
        # multiprocessing keeps every started Process in a module set and
        # polls all of them (waitpid) on each start(): O(N²) for N workers.
        # The root reaps its children itself (sentinels, join by pid), so
        # ours leave that set at once.
        _mp_children.discard(proc)
        child_end.close()
        kid = Kid(spec, proc, parent_end, link=links.ChildLink(parent_end))
        self.kids[spec.sid] = kid
        if spec.role == "worker":
            self.hosts[spec.where.host] += 1
        self.by_fd[parent_end.fileno()] = kid
        self.sel.register(parent_end.fileno(), selectors.EVENT_READ, self._on_link)
        self.sel.register(proc.sentinel, selectors.EVENT_READ, self._on_sentinel)
        return kid

    def _base_env(self) -> dict[str, str]:
        """The environment every child's command gets (a fresh copy): built
        once, the root never changes its own environment."""
        if self._env is None:
            self._env = self._make_base_env()
        return dict(self._env)

    def _make_base_env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.pop("LOOOP_PULSE_FD", None)
        env.pop("NOTIFY_SOCKET", None)
        env.pop("WATCHDOG_USEC", None)
        env.pop("WATCHDOG_PID", None)
        env.setdefault("TERM", "xterm-256color")
        env.update(LOOOP_DATA_DIR=self.d, LOOOP_BIN=paths.looop_bin(),
                   LOOOP_CONFIG=paths.config_path(self.d))
        return env

    def _start_pulse(self) -> None:
        mine, theirs = socket.socketpair()
        env = self._base_env()
        env["LOOOP_PULSE_FD"] = str(theirs.fileno())
        if self.json:
            env["LOOOP_LOG_FORMAT"] = "json"
        # the pulse writes to a PTY (always a TTY); colors follow the root's stdout
        env.setdefault("LOOOP_COLOR", "1" if self.out.color else "0")
        os.makedirs(paths.session_dir(self.d, "pulse"), exist_ok=True)
        spec = ChildSpec(sid="pulse", role="pulse", data_dir=self.d, cwd=self.d,
                         argv=(sys.executable, "-m", "looop", "_pulse"),
                         env=tuple(env.items()), restart=self.pulse_policy, grace=self.grace,
                         tee_stdout=True, onlcr=False, pass_fds=(theirs.fileno(),),
                         log_max=self.log_max)
        try:
            sessions.write_meta(self.d, "pulse", {"id": "pulse", "role": "pulse",
                                                  "command": "looop _pulse", "cwd": self.d,
                                                  "started_at": sessions.rfc3339()})
        except OSError:
            pass  # informational; a full disk must not stop the pulse from starting
        kid = self._fork(spec, keep=(theirs.fileno(),))
        theirs.close()
        mine.setblocking(False)
        kid.pulse_end = mine
        self.sel.register(mine, selectors.EVENT_READ, self._on_client)
        self.conns[mine.fileno()] = Conn(mine, trusted=True)

    def start_worker(self, sid: str, brief: str, runner: str | None, command: str | None,
                     policy: Policy | None = None, on: str | None = None,
                     cwd: str | None = None, env: dict[str, str] | None = None) -> Kid:
        """Validate and fork a worker; raises LooopError with a one-line reason."""
        sid = paths.check_id(sid, "session")
        cwd, env = spec_mod.check_cwd_env(cwd, env)
        if sid in self.kids:
            raise LooopError(f"session {sid} is already running")
        if self.stopping:
            raise LooopError("looop is shutting down")
        cfg = config.load_cached(self.d)
        cap = int(settings.get("LOOOP_MAX_WORKERS", cfg))
        live = sum(self.hosts.values())
        if cap > 0 and live >= cap:
            raise LooopError(f"worker cap reached: {live} live workers (LOOOP_MAX_WORKERS={cap}) — "
                             f"kill one, or raise the cap")
        name, r = config.runner(cfg, runner)
        act = tracker.knobs(cfg, name)  # a bad activity regex refuses the start, before any file
        template = command or r.get("interactive", "")
        if "{{prompt_file}}" not in template:
            raise LooopError("the worker command must contain {{prompt_file}}")
        resume = None if command else r.get("resume")
        if resume is not None and (not isinstance(resume, str) or "{{prompt_file}}" not in resume):
            raise LooopError(f"runner {name!r}: 'resume' must contain {{{{prompt_file}}}}")
        policy = policy or Policy()
        where = backends.place(r.get("backend"), on, sid, self.d, self.hosts)
        self._forget(sid)  # a new session: no pending restart, a fresh history
        sessions.remove(self.d, sid)  # a finished session of that id is replaced
        os.makedirs(paths.session_dir(self.d, sid))
        as_script = template.strip().startswith("bash {{prompt_file}}")
        prompt_file = prompts.write(self.d, sid, brief, as_script=as_script)
        cmd = template.replace("{{prompt_file}}", shlex.quote(prompt_file))
        meta = {"id": sid, "role": "worker", "command": cmd, "runner": name, "cwd": cwd or self.d,
                "env": env or None,
                "prompt_file": prompt_file, "started_at": sessions.rfc3339(),
                "restart": policy.to_json(),
                # the recovery ladder types into, restarts and stops agents it
                # knows: a runner's own template, unless the runner opts out
                "ladder": command is None and r.get("ladder", True) is not False,
                "where": where.as_meta() if where.kind != "local" else None}
        if resume:
            meta["resume"] = resume.replace("{{prompt_file}}", shlex.quote(prompt_file))
        sessions.write_meta(self.d, sid, meta)
        return self._fork(self.worker_spec(sid, cmd, cwd or self.d, policy=policy, where=where,
                                           prompt_file=prompt_file, meta=meta, act=act))

    def worker_spec(self, sid: str, cmd: str, cwd: str, policy: Policy | None = None,
                    where: backends.Placement | None = None, prompt_file: str = "",
                    meta: dict[str, Any] | None = None, act: dict[str, Any] | None = None) -> ChildSpec:
        """A worker: `cmd` as its backend runs it (locally under `bash -lc`,
        the user's login environment, SPEC §6; remotely wrapped for the
        engine). A restart (no `where`) runs where meta.json says. A new
        start passes the `meta` it just wrote and its runner's `act`ivity
        knobs (tracker.knobs), read from disk otherwise."""
        if meta is None:
            meta = sessions.read_meta(self.d, sid)
        if where is None:
            where = backends.Placement.from_meta(meta.get("where"))
            prompt_file = meta.get("prompt_file") or ""
        env = self._base_env()
        env.update(meta.get("env") or {})  # start-session --env K=V (kept for restarts)
        env["LOOOP_SESSION_ID"] = sid
        argv = backends.prepare(where, sid, cmd, prompt_file, self.d)
        if act is None:
            act = tracker.knobs(config.load_cached(self.d), meta.get("runner"))
        return ChildSpec(sid=sid, role="worker", data_dir=self.d, cwd=cwd, argv=argv,
                         env=tuple(env.items()), grace=self.grace, log_max=self.log_max, where=where,
                         restart=policy or Policy(), **act)

    def _on_link(self, fd: int, mask: int) -> None:
        kid = self.by_fd.get(fd)
        if kid is None:
            return
        if mask & selectors.EVENT_WRITE:
            self._flush_link(kid)
        if not mask & selectors.EVENT_READ:
            return
        for msg in kid.link.read():
            self._on_link_msg(kid, msg)
        if kid.link.eof and fd in self.by_fd:
            self.sel.unregister(fd)  # the sentinel reports the death itself
            del self.by_fd[fd]

    def _on_link_msg(self, kid: Kid, msg: tuple) -> None:
        if msg[0] == "status":
            self._on_status(kid, msg[1])
        elif msg[0] == "reply":
            conn, _sid, _op = self.pending.pop(msg[1], (None, None, None))
            if conn is not None:
                self._reply(conn, msg[2])

    def _on_status(self, kid: Kid, st: dict[str, Any]) -> None:
        before = kid.status
        kid.status = st
        if st.get("state") == State.RUNNING.value and st.get("pid") != before.get("pid"):
            # a new command pid: the first start, or an in-place restart
            role = kid.spec.role
            events.emit(self.d, f"{role}_started", id=kid.spec.sid, pid=st.get("pid"),
                        child_pid=kid.proc.pid, restart=bool(before))
            if role == "worker":
                self._tell_pulse("worker_started", id=kid.spec.sid, pid=st.get("pid"),
                                 restart=bool(before))
            if role == "pulse":  # its first beat report is due soon (it reports at once);
                # READY=1 waits for that report (ops.op_beat): exec'd is not up
                self.pulse_due = time.monotonic() + self.pulse_grace + 30.0
        for conn in kid.start_waiters:
            if st.get("state") == State.RUNNING.value:
                self._reply(conn, {"ok": True, "id": kid.spec.sid, "pid": st.get("pid"),
                                   "child_pid": kid.proc.pid})
            else:
                self._reply(conn, {"ok": False, "error": st.get("error") or
                                   f"session {kid.spec.sid} exited at once (code {st.get('exit_code')})"})
        kid.start_waiters.clear()

    def _on_sentinel(self, sentinel: int, _mask: int) -> None:
        for kid in list(self.kids.values()):
            if kid.proc.sentinel == sentinel:
                kid.proc.join(1)
                self._on_death(kid)
                return

    def _on_death(self, kid: Kid) -> None:
        """Proof of death arrived (sentinel): record it, sweep, apply policy."""
        sid = kid.spec.sid
        if self.kids.get(sid) is not kid:
            return
        if kid.conn.fileno() in self.by_fd:
            # the sentinel may be seen before the link's last words (the final
            # status, replies): read them first, or we would record a death
            # over an exit the child reported
            for msg in kid.link.read():
                self._on_link_msg(kid, msg)
        if kid.spec.role == "pulse":
            self.pulse_due = None  # the next pulse is held to its own reports
        del self.kids[sid]
        if kid.spec.role == "worker":
            self.hosts[kid.spec.where.host] -= 1
            if not self.hosts[kid.spec.where.host]:
                del self.hosts[kid.spec.where.host]
        for fobj in (kid.proc.sentinel, kid.conn.fileno()):
            try:
                self.sel.unregister(fobj)
            except (KeyError, ValueError):
                pass
        self.by_fd.pop(kid.conn.fileno(), None)
        kid.link.close()
        if kid.pulse_end is not None:
            self._drop(self.conns.get(kid.pulse_end.fileno()))
        code = kid.proc.exitcode
        if code is not None:
            kid.proc.close()  # (raises while it is unreaped: an unkillable child)
        state = kid.status.get("state")
        if state not in (State.EXITED.value, State.KILLED.value):
            # the child vanished without its final word (SIGKILL, crash)
            state = State.KILLED.value if self.stopping else State.DEAD.value
            st = dict(kid.status or sessions.read_status(self.d, sid), id=sid, state=state)
            try:
                sessions.write_status(self.d, sid, st)
            except OSError:
                pass  # full disk: ls still shows it dead (no title carries it)
            self._reap_orphans(kill=True)
        for req, (conn, target, op) in list(self.pending.items()):
            if target == sid:  # the child died before answering
                del self.pending[req]
                ended = {"state": state or "dead", "exit_code": kid.status.get("exit_code")}
                self._reply(conn, {"ok": True, **ended} if op == "kill" else
                            {"ok": False, "error": f"session {sid} ended ({state or 'dead'})"})
        for conn in kid.start_waiters:
            self._reply(conn, {"ok": False, "error": f"session {sid} died while starting"})
        if kid.spec.role == "worker":
            events.emit(self.d, "worker_exited", id=sid, state=state or "dead",
                        exit_code=kid.status.get("exit_code"))
        if not self.stopping:
            # the command's exit code (the child reported it), else the child's own
            cmd_code = kid.status.get("exit_code") if state == State.EXITED.value else None
            self._ended(kid, state, code if cmd_code is None else cmd_code)  # restart policy (looop.tree.respawn)

    def _tell_pulse(self, event: str, **fields: Any) -> bool:
        """Push one event line down the pulse's link (never blocks for long:
        a pulse busy in a beat reads it later). False if there is no pulse."""
        kid = self.kids.get("pulse")
        sock = kid.pulse_end if kid is not None else None
        if sock is None or sock.fileno() < 0:
            return False
        conn = self.conns.get(sock.fileno())
        if conn is None:
            return False
        self._queue(conn, jsonio.dumpb({"event": event, **fields}) + b"\n")  # (never blocks)
        return conn.sock.fileno() >= 0

    def _reap_orphans(self, kill: bool = False) -> None:
        """Descendants re-parented to us (we are a subreaper) are not children
        we started: kill (if asked) and reap them by pid — never waitpid(-1)."""
        ours = {kid.proc.pid for kid in self.kids.values()}
        direct = ptycmd.direct_children()  # cheap: this runs on every SIGCHLD
        if direct is not None and not set(direct) - ours:
            return
        import psutil
        try:
            kids = psutil.Process().children()
        except psutil.Error:
            return
        for p in kids:
            if p.pid in ours:
                continue
            if kill:
                try:
                    for q in p.children(recursive=True) + [p]:
                        q.kill()
                except psutil.Error:
                    pass
            try:
                os.waitpid(p.pid, 0 if kill else os.WNOHANG)
            except ChildProcessError:
                pass

    def _send(self, kid: Kid, msg: tuple, fd: int | None = None, force: bool = False) -> None:
        """Queue a message (and an fd to pass after it) on the child's link and
        write what fits now; never blocks. LooopError if the child has not read
        its link for a while (unless `force`: a stop always goes)."""
        try:
            kid.link.queue(msg, force=force)
        except links.Full as e:
            raise LooopError(f"session {kid.spec.sid} is not reading its link ({e}) — try again later") from None
        if fd is not None:
            kid.link.queue_fd(fd)
        self._flush_link(kid)

    def _flush_link(self, kid: Kid) -> None:
        try:
            done = kid.link.flush()
        except OSError:
            done = True  # dying: its sentinel will tell
            kid.link.out.clear()
        if done == kid.writing and kid.link.fd in self.by_fd:
            kid.writing = not done
            ev = selectors.EVENT_READ | (selectors.EVENT_WRITE if kid.writing else 0)
            self.sel.modify(kid.link.fd, ev, self._on_link)


def _lowest_free_fds(fd: int, n: int) -> list[int]:
    """The `n` lowest fd numbers not in use, ascending (each dup of `fd`
    takes the lowest free one; all are closed again)."""
    taken: list[int] = []
    try:
        for _ in range(n):
            taken.append(os.dup(fd))
    finally:
        for t in taken:
            os.close(t)
    return taken
