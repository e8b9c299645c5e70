"""Attached terminals, inside a child: `looop attach` clients whose sockets
the root handed over (SCM_RIGHTS), so attached bytes never pass through the
root. Frames are control.py's. A mixin of Child (looop.tree.child): it uses
the child's selector, link, command, screen and `_write_input`/`_resize`.

A terminal that reads slower than the command writes is buffered up to
CLIENT_MAX_BUF, then dropped (the log keeps everything); garbage from it
drops it too. Neither ever stops the command.
"""
from __future__ import annotations

import selectors
import socket
from typing import Any

from looop.screen import size_error
from looop.store import sessions
from looop.tree import control

REPLAY = 1 << 16          # bytes replayed to a new attach
CLIENT_MAX_BUF = 8 << 20  # a slower attached terminal is dropped past this


class Client:
    """One attached terminal (the socket was handed over by the root)."""

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.reader = control.FrameReader()
        self.out = bytearray()


class Terminals:
    """The attached-terminal half of Child; see the module docstring."""

    spec: Any
    clients: dict[int, Client]
    sel: selectors.BaseSelector
    conn: Any
    cmd: Any
    cmd_alive: bool
    d: str

    def _cmd_detach(self, req: int) -> None:
        n = len(self.clients)
        for c in list(self.clients.values()):
            self._client_send(c, control.frame(control.DETACH))
            self._drop_client(c, flush=True)
        self.reply(req, {"ok": True, "detached": n})

    def _cmd_attach(self, req: int) -> None:
        from multiprocessing import reduction
        fd = reduction.recv_handle(self.conn)
        sock = socket.socket(fileno=fd)
        c = Client(sock)
        cols, rows = (self.cmd.cols, self.cmd.rows) if self.cmd else (self.spec.cols, self.spec.rows)
        sock.setblocking(True)
        sock.settimeout(2)
        try:
            sock.sendall(b'{"ok":true,"cols":%d,"rows":%d}\n' % (cols, rows))
            sock.sendall(control.frame(control.OUT, sessions.tail_bytes(self.d, self.spec.sid, REPLAY)))
        except OSError:
            sock.close()
            return
        sock.setblocking(False)
        self.clients[sock.fileno()] = c
        self.sel.register(sock, selectors.EVENT_READ, self._on_client)

    def _on_client(self, sock: socket.socket, mask: int) -> None:
        c = self.clients.get(sock.fileno())
        if c is None:
            return
        if mask & selectors.EVENT_WRITE:
            self._client_flush(c)
        if not mask & selectors.EVENT_READ:
            return
        data = control.recv_some(sock)
        if data is None:
            return
        if not data:
            self._drop_client(c)
            return
        try:
            for kind, payload in c.reader.feed(data):
                if kind == control.IN:
                    self._write_input(payload)
                elif kind == control.RESIZE:
                    cols, rows = (int(v) for v in payload.split(b"x"))
                    if self.cmd_alive and size_error(cols, rows) is None:
                        self._resize(cols, rows)
                elif kind == control.DETACH:
                    self._drop_client(c)
                    return
        except ValueError:
            self._drop_client(c)  # garbage from the terminal side: drop it, keep running

    def _client_send(self, c: Client, data: bytes) -> None:
        c.out += data
        if len(c.out) > CLIENT_MAX_BUF:
            self._drop_client(c)
            return
        self._client_flush(c)

    def _client_flush(self, c: Client) -> None:
        try:
            n = c.sock.send(c.out)
            del c.out[:n]
        except BlockingIOError:
            pass
        except OSError:
            self._drop_client(c)
            return
        events = selectors.EVENT_READ | (selectors.EVENT_WRITE if c.out else 0)
        try:
            self.sel.modify(c.sock, events, self._on_client)
        except (KeyError, ValueError):
            pass

    def _drop_client(self, c: Client, flush: bool = False) -> None:
        fd = c.sock.fileno()
        if self.clients.pop(fd, None) is None:
            return
        try:
            self.sel.unregister(c.sock)
        except (KeyError, ValueError):
            pass
        if flush and c.out:
            try:
                c.sock.setblocking(True)
                c.sock.settimeout(1)
                c.sock.sendall(c.out)
            except OSError:
                pass
        c.sock.close()
