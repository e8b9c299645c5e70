"""`looop attach <id>`: this terminal, raw, wired to a worker's PTY.

The root hands our socket to the worker child, so bytes flow child ↔ us
directly (frames of control.py). Ctrl-\\ Ctrl-\\ detaches; a single Ctrl-\\
followed by anything else is sent as typed. Exit code = the session's when it
ends while attached, 0 on detach.
"""
from __future__ import annotations

import os
import selectors
import signal
import socket
import sys

from looop.cli.args import parser, session_arg
from looop.errors import LooopError
from looop.store import paths
from looop.tree import control

DETACH_KEY = b"\x1c"


def cmd_attach(argv: list[str]) -> int:
    p = parser("attach", "Attach this terminal: replay recent output, then live both ways. "
                         "Detach with Ctrl-\\ Ctrl-\\.")
    session_arg(p)
    sid = paths.check_id(p.parse_args(argv).id, "session")
    _check_session(paths.data_dir(), sid)
    if not os.isatty(0):
        raise LooopError("stdin is not a terminal — attach needs one "
                         "(from a script: `looop send`, `looop log -f`, `looop shot`)")
    client = control.Client(paths.data_dir())
    client.send("attach", id=sid)
    hello = client.read_line()
    if not hello.get("ok"):
        client.close()
        raise LooopError(str(hello.get("error")))
    return Session(client.sock, client.buf).run()


def _check_session(d: str, sid: str) -> None:
    """The refusals that need no terminal, read from disk (as the root would say them)."""
    from looop.store import sessions
    if not sessions.exists(d, sid):
        raise LooopError(f"no session {sid!r}")
    state = sessions.read_status(d, sid).get("state", "finished")
    if state not in ("starting", "running"):
        raise LooopError(f"session {sid} is not running ({state})")


class Session:
    def __init__(self, sock: socket.socket, early: bytes):
        self.sock, self.early = sock, early
        self.sock.settimeout(None)  # the child always reads; a dead one gives EOF
        self.reader = control.FrameReader()
        self.tty = os.isatty(0)
        self.pending_escape = False

    def run(self) -> int:
        import termios
        import tty
        saved = termios.tcgetattr(0) if self.tty else None
        r, w = socket.socketpair()
        r.setblocking(False)
        w.setblocking(False)
        old_wakeup = signal.set_wakeup_fd(w.fileno(), warn_on_full_buffer=False)
        old_winch = signal.signal(signal.SIGWINCH, lambda *_: None)
        code: tuple[str, int] | None = None
        try:
            if saved is not None:
                tty.setraw(0)
                self._send_size()
            sel = selectors.DefaultSelector()
            try:
                sel.register(0, selectors.EVENT_READ, "stdin")
            except PermissionError:
                pass  # epoll refuses regular files and /dev/null: output only
            sel.register(self.sock, selectors.EVENT_READ, "sock")
            sel.register(r, selectors.EVENT_READ, "sig")
            code = self._frames(self.early)
            while code is None:
                for key, _ in sel.select():
                    if key.data == "sig":
                        r.recv(512)
                        self._send_size()
                    elif key.data == "stdin":
                        code = self._stdin(sel)
                    else:
                        data = self.sock.recv(1 << 16)
                        code = self._frames(data) if data else ("detached", 0)
                    if code is not None:
                        break
        except OSError:
            code = ("detached", 0)  # the session's child went away under us
        finally:
            signal.set_wakeup_fd(old_wakeup)
            signal.signal(signal.SIGWINCH, old_winch)
            r.close()
            w.close()
            if saved is not None:
                termios.tcsetattr(0, termios.TCSADRAIN, saved)
            self.sock.close()
        why, status = code
        if why == "detached":
            sys.stderr.write("\r\n[detached]\r\n")
        else:
            sys.stderr.write(f"\r\n[session exited with code {status}]\r\n")
        return status

    def _send_size(self) -> None:
        if self.tty:
            cols, rows = os.get_terminal_size(0)
            self.sock.sendall(control.frame(control.RESIZE, b"%dx%d" % (cols, rows)))

    def _stdin(self, sel: selectors.BaseSelector) -> tuple[str, int] | None:
        data = os.read(0, 4096)
        if not data:
            sel.unregister(0)  # stdin closed: keep showing output
            return None
        out = bytearray()
        for b in data:
            ch = bytes([b])
            if self.pending_escape:
                self.pending_escape = False
                if ch == DETACH_KEY:
                    self.sock.sendall(control.frame(control.DETACH))
                    return ("detached", 0)
                out += DETACH_KEY
            if ch == DETACH_KEY:
                self.pending_escape = True
                continue
            out += ch
        if out:
            self.sock.sendall(control.frame(control.IN, bytes(out)))
        return None

    def _frames(self, data: bytes) -> tuple[str, int] | None:
        for kind, payload in self.reader.feed(data):
            if kind == control.OUT:
                _write_all(1, payload)
            elif kind == control.EXIT:
                try:
                    return ("exited", int(payload))
                except ValueError:
                    return ("exited", 1)
            elif kind == control.DETACH:
                return ("detached", 0)
        return None


def _write_all(fd: int, data: bytes) -> None:
    """A terminal takes what it can per write; loop until all of it is out."""
    view = memoryview(data)
    while view:
        try:
            view = view[os.write(fd, view):]
        except BlockingIOError:
            import select
            select.select([], [fd], [], 1.0)
