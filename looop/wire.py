"""JSON lines over a connected stream socket, blocking: a request line out,
lines in. The one client side of looop's control protocol (the format is
tree/control.py's): the CLI's `control.Client` (a connection per verb) and
the pulse's `link.Link` (the socketpair the root handed down) are this, each
with its own words for a silent or closed peer.

A leaf below the tree and the pulse (errors and store.jsonio only), so both
use it without importing each other.
"""
from __future__ import annotations

import socket
from typing import Any

from looop.errors import LooopError, NotRunning
from looop.store import jsonio


def request(op: str, **args: Any) -> bytes:
    """One request line."""
    return jsonio.dumpb({"op": op, **args}) + b"\n"


def checked(reply: Any, op: str) -> dict[str, Any]:
    """The reply if it says ok; LooopError with its error line otherwise."""
    if not isinstance(reply, dict) or not reply.get("ok"):
        err = reply.get("error") if isinstance(reply, dict) else None
        raise LooopError(str(err or f"{op} failed"))
    return reply


class LineClient:
    """Blocking reads and writes under the socket's own timeout: a silent
    peer raises `socket.timeout` (callers word it), a closed one NotRunning
    with `gone`."""

    gone = "the other end closed the connection"

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.buf = b""

    def send(self, op: str, **args: Any) -> None:
        try:
            self.sock.sendall(request(op, **args))
        except socket.timeout:
            raise
        except OSError:
            raise NotRunning(self.gone) from None

    def fill(self) -> None:
        """One recv into `buf` (blocks up to the socket's timeout)."""
        try:
            chunk = self.sock.recv(65536)
        except socket.timeout:
            raise
        except OSError:
            chunk = b""
        if not chunk:
            raise NotRunning(self.gone)
        self.buf += chunk

    def next_line(self) -> bytes | None:
        """A whole line already in `buf` (taken out of it), else None."""
        if b"\n" not in self.buf:
            return None
        line, self.buf = self.buf.split(b"\n", 1)
        return line

    def read_msg(self) -> Any:
        """The next line, parsed (ValueError if it is not JSON)."""
        while (line := self.next_line()) is None:
            self.fill()
        return jsonio.loads(line)
