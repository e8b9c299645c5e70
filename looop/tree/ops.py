"""The control socket's server side, in the root: accept, read JSON lines,
dispatch through OPS, reply (see control.py for the wire format).

A mixin of Root (looop.tree.supervisor): it uses the root's selector, its
children (`kids`), `pending` requests, `start_worker`, `worker_spec`, `_fork`, `_send`.
Handlers run in the root's single loop and never block for long: a request
for a child is forwarded over its link and answered when the child replies
(`pending`), or by the root when the child dies first.
"""
from __future__ import annotations

import os
import selectors
import socket
import errno
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

from looop.errors import LooopError
from looop.store import jsonio, paths, sessions
from looop.tree import control, links, restart

if TYPE_CHECKING:
    from looop.tree.supervisor import Kid


@dataclass
class Conn:
    """One control connection (a CLI verb, or the pulse's link: trusted).

    Never written blocking: replies wait in `out` (bounded by
    links.CLIENT_MAX) until the socket takes them."""
    sock: socket.socket
    trusted: bool = False
    buf: bytes = b""
    out: bytearray = field(default_factory=bytearray)
    writing: bool = False       # registered for EVENT_WRITE
    close_after: bool = False   # drop once `out` is flushed
    skipping: bool = False      # inside an oversized request: discard to its newline


ACCEPT_PAUSE = 0.5  # out of fds: stop accepting this long, keep serving the rest


class ControlServer:
    """The ops half of Root; see the module docstring."""

    d: str
    kids: dict[str, "Kid"]
    pending: dict[int, tuple[Conn, str, str]]
    conns: dict[int, Conn]
    sel: selectors.BaseSelector

    def _on_accept(self, listener: socket.socket, _mask: int) -> None:
        try:
            sock, _ = listener.accept()
        except OSError as e:
            if e.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                self._pause_accepts(e)  # the listener stays readable: no busy loop
            return
        self.accept_paused = False  # (a new episode is said again)
        if control.peer_uid(sock) not in (None, os.getuid()):
            sock.close()  # other users never drive our tree
            return
        sock.setblocking(False)
        self.conns[sock.fileno()] = Conn(sock)
        self.sel.register(sock, selectors.EVENT_READ, self._on_client)

    def _pause_accepts(self, e: OSError) -> None:
        self.sel.unregister(self.listener)
        self.accept_resume = time.monotonic() + ACCEPT_PAUSE
        if not self.accept_paused:
            self.accept_paused = True
            self.out.line("warn", "control.emfile", f"control socket: {e.strerror} with "
                          f"{len(self.conns)} connections open — accepting again every "
                          f"{ACCEPT_PAUSE:g}s, serving the others meanwhile")

    def _resume_accepts(self) -> None:
        """Timer: try accepting again (pauses again at once if still out of fds)."""
        self.accept_resume = None
        self.sel.register(self.listener, selectors.EVENT_READ, self._on_accept)

    def _on_client(self, sock: socket.socket, mask: int) -> None:
        conn = self.conns.get(sock.fileno())
        if conn is None:
            return
        if mask & selectors.EVENT_WRITE:
            self._flush(conn)
            if conn.sock.fileno() < 0 or not mask & selectors.EVENT_READ:
                return
        data = control.recv_some(sock)
        if data is None:
            return
        if not data:
            self._drop(conn)
            return
        if conn.skipping:  # the rest of a request already answered as too large
            if b"\n" not in data:
                return
            conn.close_after = True  # answered; the line is over: done with this client
            self._flush(conn)
            return
        conn.buf += data
        if len(conn.buf) > control.MAX_LINE and b"\n" not in conn.buf:
            # answer it (the client reads its reply once its send is done)
            # and discard the rest of the line; the connection stays usable
            self._reply(conn, {"ok": False, "error": f"request too large (over "
                               f"{control.MAX_LINE >> 20} MiB): send long input in parts"})
            conn.buf, conn.skipping = b"", True
            return
        while b"\n" in conn.buf and conn.sock.fileno() >= 0:
            line, conn.buf = conn.buf.split(b"\n", 1)
            try:
                req = jsonio.loads(line)
                if not isinstance(req, dict) or not isinstance(req.get("op"), str):
                    raise ValueError("expected a JSON object with an 'op'")
            except ValueError as e:
                self._reply(conn, {"ok": False, "error": f"bad request: {e}"})
                conn.close_after = True  # garbage: drop the connection, keep the tree
                self._flush(conn)
                return
            handler = OPS.get(req["op"])
            try:
                if handler is None:
                    raise LooopError(f"unknown op {req['op']!r}")
                handler(self, conn, req)
            except LooopError as e:
                self._reply(conn, {"ok": False, "error": str(e)})
            except (TypeError, KeyError, ValueError) as e:
                self._reply(conn, {"ok": False, "error": f"bad request: {e!r}"})
            except OSError as e:  # e.g. a session dir we cannot write: the tree keeps running
                self._reply(conn, {"ok": False, "error": f"{req['op']} failed: {e}"})

    def _reply(self, conn: Conn, payload: dict[str, Any]) -> None:
        self._queue(conn, jsonio.dumpb(payload) + b"\n")

    def _queue(self, conn: Conn, data: bytes) -> None:
        """Send what the socket takes now; the rest waits (never blocks)."""
        if conn.sock.fileno() < 0:
            return
        conn.out += data
        self._flush(conn)

    def _flush(self, conn: Conn) -> None:
        try:
            while conn.out:
                n = conn.sock.send(conn.out)
                del conn.out[:n]
        except BlockingIOError:
            pass
        except OSError:
            self._drop(conn)
            return
        if len(conn.out) > links.CLIENT_MAX:
            self.out.line("warn", "control.dropped", f"dropped a control client that does not "
                          f"read its replies ({len(conn.out) >> 10} KiB waiting)")
            self._drop(conn)
            return
        if not conn.out and conn.close_after:
            self._drop(conn)
            return
        if bool(conn.out) != conn.writing:
            conn.writing = bool(conn.out)
            ev = selectors.EVENT_READ | (selectors.EVENT_WRITE if conn.writing else 0)
            self.sel.modify(conn.sock, ev, self._on_client)

    def _drop(self, conn: Conn | None) -> None:
        if conn is None or conn.sock.fileno() < 0:
            return
        self.conns.pop(conn.sock.fileno(), None)
        try:
            self.sel.unregister(conn.sock)
        except (KeyError, ValueError):
            pass
        conn.sock.close()

    def _live(self, req: dict[str, Any], allow_pulse: bool = False) -> Kid:
        sid = paths.check_id(req.get("id", ""), "session", allow_pulse=allow_pulse)
        kid = self.kids.get(sid)
        if kid is None:
            if sessions.exists(self.d, sid):
                raise LooopError(f"session {sid} is not running "
                                 f"({sessions.read_status(self.d, sid).get('state', 'finished')})")
            raise LooopError(f"no session {sid!r}")
        return kid

    def _forward(self, conn: Conn, req: dict[str, Any], op: str, *args: Any) -> tuple[Kid, int]:
        kid = self._live(req, allow_pulse=op in


READ_ONLY_OPS)
        rid = next(self.req_ids)
        self._send(kid, (op, rid, *args))  # (raises if the child is not reading its link)
        self.pending[rid] = (conn, kid.spec.sid, op)
        return kid, rid

    # Each op: (root, conn, request) → reply now, or later through `pending`.
    def op_ping(self, conn: Conn, req: dict[str, Any]) -> None:
        self._reply(conn, {"ok": True, "pid": os.getpid(), "data_dir": self.d,
                           "sessions": sorted(self.kids)})

    def op_notify(self, conn: Conn, req: dict[str, Any]) -> None:
        """The pulse reports each beat's outcome; the root relays it to systemd."""
        text = " ".join(str(req.get("status", "")).split())[:200]
        if text:
            self.notifier.send(f"STATUS={text}")
        self._reply(conn, {"ok": True})

    def op_beat(self, conn: Conn, req: dict[str, Any]) -> None:
        """The pulse's progress report: its next one comes within `within_s`.
        Its first report is the ready handshake: only a pulse that runs its
        loop makes the tree ready for systemd (READY=1), not an exec'd one."""
        if not conn.trusted:
            raise LooopError("beat is the pulse's op")
        self.pulse_due = time.monotonic() + max(0.0, float(req["within_s"])) + self.pulse_grace
        if not self.ready_sent:
            self.ready_sent = True
            self.notifier.send(f"READY=1\nMAINPID={os.getpid()}\nSTATUS=pulse up")
        self._reply(conn, {"ok": True})

    def op_start(self, conn: Conn, req: dict[str, Any]) -> None:
        try:
            policy = restart.policy_from(req.get("restart"), req.get("max_restarts"))
        except ValueError as e:
            raise LooopError(str(e)) from None
        kid = self.start_worker(req["id"], str(req.get("prompt", "")), req.get("runner"),
                                req.get("command"), policy, on=req.get("on"),
                                cwd=req.get("cwd"), env=req.get("env"))
        kid.start_waiters.append(conn)

    def op_kill(self, conn: Conn, req: dict[str, Any]) -> None:
        sid = paths.check_id(req.get("id", ""), "session")
        if self.cancel_restart(sid):  # waiting out its backoff: it stays down
            self._reply(conn, {"ok": True, "state": "killed", "exit_code": None})
            return
        kid, _ = self._forward(conn, req, "kill")
        kid.stop_asked = True
        if req.get("fail"):  # the recovery ladder's last rung: the end is `failed`
            kid.fail_reason = str(req["fail"])[:300]

    def op_input(self, conn: Conn, req: dict[str, Any]) -> None:
        data = req["data"]
        if not isinstance(data, str):
            raise LooopError("'data' must be a string")
        how, suffix = req.get("how") or "raw", req.get("suffix") or ""
        if how not in ("raw", "keys", "paste") or not isinstance(suffix, str):
            raise LooopError("'how' must be raw, keys or paste")
        self._forward(conn, req, "input", data.encode("utf-8", "surrogateescape"), how,
                      suffix.encode("utf-8", "surrogateescape"))

    def op_resize(self, conn: Conn, req: dict[str, Any]) -> None:
        cols, rows = int(req["cols"]), int(req["rows"])
        from looop.screen import size_error
        err = size_error(cols, rows)
        if err:
            raise LooopError(err)
        self._forward(conn, req, "resize", cols, rows)

    def op_flag(self, conn: Conn, req: dict[str, Any]) -> None:
        from looop.store.printable import one_line
        note = one_line(req.get("note"))[:500]  # shown in ls, status, titles: no escapes
        self._forward(conn, req, "flag", note or None)

    def op_event(self, conn: Conn, req: dict[str, Any]) -> None:
        """An agent-native activity event (`looop _event`, SPEC §15)."""
        from looop.tree.activity import EVENT_STATES
        state, note = req.get("state"), req.get("note")
        if state not in EVENT_STATES:
            raise LooopError(f"unknown state {state!r} (known: {', '.join(EVENT_STATES)})")
        self._forward(conn, req, "event", state, str(note)[:500] if note else None)

    def op_restart(self, conn: Conn, req: dict[str, Any]) -> None:
        """`resume`: run the runner's resume command (the recovery ladder);
        `auto`: an automatic restart, counted against the hourly cap."""
        sid = paths.check_id(req.get("id", ""), "session")
        if req.get("auto") and (sid in self.kids or sessions.exists(self.d, sid)):
            refused = self.take_restart_slot(sid)
            if refused:
                raise LooopError(refused)
        meta = sessions.read_meta(self.d, sid)
        if sid in self.kids:
            argv = None
            if req.get("resume") and meta.get("resume"):
                argv = self.worker_spec(sid, meta["resume"], meta.get("cwd") or self.d).argv
            self._forward(conn, req, "restart", argv)
            try:  # an in-place restart: one more run (the child records its start)
                sessions.write_meta(self.d, sid, dict(meta, restarts=int(meta.get("restarts") or 0) + 1))
            except OSError:
                pass  # the count is informational
            return
        if not meta.get("command"):
            raise LooopError(f"no session {sid!r}")
        self._restart_finished(conn, sid, meta)

    def _restart_finished(self, conn: Conn, sid: str, meta: dict[str, Any]) -> None:
        """A finished worker restarts as a new child over the same command,
        appending to the same log (log_base carries over)."""
        if self.stopping:
            raise LooopError("looop is shutting down")
        self._forget(sid)  # an explicit restart supersedes a pending one, with a fresh history
        sessions.write_meta(self.d, sid, sessions.restarted(meta))
        spec = self.worker_spec(sid, meta.get("resume") or meta["command"], meta.get("cwd") or self.d,
                                policy=restart.Policy.from_json(meta.get("restart")))
        self._fork(spec).start_waiters.append(conn)

    def op_prune(self, conn: Conn, req: dict[str, Any]) -> None:
        """Remove every finished worker's dir but those in "keep" (remote
        sessions whose engine side prune could not release). Done by the root
        when it runs, so a session still starting (no title yet) is never pruned."""
        keep = set(req.get("keep") or ())
        gone = [sid for sid in sessions.list_ids(self.d)
                if sid not in self.kids and sid != paths.RESERVED and sid not in keep]
        for sid in gone:
            sessions.remove(self.d, sid)
        self._reply(conn, {"ok": True, "pruned": gone})

    def op_attach(self, conn: Conn, req: dict[str, Any]) -> None:
        """Hand the client's socket to the child: attached bytes bypass the root."""
        kid = self._live(req)
        self._send(kid, ("attach", next(self.req_ids)), fd=conn.sock.fileno())
        self._drop(conn)


READ_ONLY_OPS = ("shot",)  # may target the pulse too


def _simple(op: str) -> Callable[["ControlServer", Conn, dict[str, Any]], None]:
    def handler(root: "ControlServer", conn: Conn, req: dict[str, Any]) -> None:
        root._forward(conn, req, op)
    handler.__name__ = f"op_{op}"
    return handler


OPS: dict[str, Callable[["ControlServer", Conn, dict[str, Any]], None]] = {
    "ping": ControlServer.op_ping,
    "notify": ControlServer.op_notify,
    "beat": ControlServer.op_beat,
    "start": ControlServer.op_start,
    "input": ControlServer.op_input,
    "resize": ControlServer.op_resize,
    "flag": ControlServer.op_flag,
    "event": ControlServer.op_event,
    "restart": ControlServer.op_restart,
    "kill": ControlServer.op_kill,
    "attach": ControlServer.op_attach,
    "prune": ControlServer.op_prune,
    **{op: _simple(op) for op in ("unflag", "shot", "detach", "look")},
}
