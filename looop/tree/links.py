"""The root's side of its links, never blocking: child links and control
clients are written from bounded queues and read as they become readable.

Why: the root is one thread. A blocking `Connection.send` of a 1 MB input to
a child that is not reading (busy, or SIGSTOPped) used to freeze the whole
tree, SIGTERM included; a blocking reply to a client that does not read did
the same, 2 s at a time. Here every write is non-blocking: what does not fit
waits in the peer's queue and goes out when the selector says it can.

Child link wire format: exactly multiprocessing.Connection's (a 4-byte
big-endian signed length, -1 + 8-byte length past 2 GiB, then a pickle), so
the child keeps using its plain Connection. `queue_fd` passes an fd the way
multiprocessing.reduction.send_handle does (one byte + SCM_RIGHTS), in order
with the messages queued before it.
"""
from __future__ import annotations

import array
import os
import socket
import struct
from multiprocessing.reduction import ForkingPickler
from typing import Any

LINK_MAX = 8 << 20      # bytes queued for one child before requests to it are refused
CLIENT_MAX = 16 << 20   # bytes of replies queued for one client before it is dropped

_LEN = struct.Struct("!i")
_BIG = struct.Struct("!Q")


class Full(Exception):
    """The peer's queue is over its bound: it is not reading."""


class ChildLink:
    """Root end of one child's duplex pipe (a socketpair), non-blocking."""

    def __init__(self, conn: Any):
        self.conn = conn  # the multiprocessing Connection: owns the fd
        self.fd = conn.fileno()
        os.set_blocking(self.fd, False)
        self.sock = socket.socket(fileno=os.dup(self.fd))  # for sendmsg (SCM_RIGHTS)
        self.sock.setblocking(False)
        self.out: list[bytes | int] = []  # bytes, or an fd (int) to pass
        self.queued = 0
        self.inbuf = bytearray()
        self.eof = False

    def queue(self, msg: tuple, force: bool = False) -> None:
        """Queue one message; raises Full (unless `force`) past LINK_MAX."""
        if not force and self.queued > LINK_MAX:
            raise Full(f"{self.queued >> 10} KiB already waiting")
        data = bytes(ForkingPickler.dumps(msg))
        n = len(data)
        head = _LEN.pack(n) if n <= 0x7FFFFFFF else _LEN.pack(-1) + _BIG.pack(n)
        self.out.append(head + data)
        self.queued += len(head) + n

    def queue_fd(self, fd: int) -> None:
        """Pass a dup of `fd` after what is queued (the caller may close its own)."""
        self.out.append(os.dup(fd))

    def flush(self) -> bool:
        """Write what the pipe takes now; True once nothing is left.
        Raises OSError if the pipe is broken (the child is gone)."""
        while self.out:
            item = self.out[0]
            if isinstance(item, int):
                try:
                    self.sock.sendmsg([b"\x01"], [(socket.SOL_SOCKET, socket.SCM_RIGHTS,
                                                   array.array("i", [item]))])
                except BlockingIOError:
                    return False
                os.close(item)
                self.out.pop(0)
                continue
            try:
                n = os.write(self.fd, item)
            except BlockingIOError:
                return False
            self.queued -= n
            if n < len(item):
                self.out[0] = item[n:]
                return False
            self.out.pop(0)
        return True

    def read(self) -> list[tuple]:
        """Every whole message readable now; sets `eof` when the child closed."""
        while True:
            try:
                chunk = os.read(self.fd, 1 << 16)
            except BlockingIOError:
                break
            except OSError:
                chunk = b""
            if not chunk:
                self.eof = True
                break
            self.inbuf += chunk
            if len(chunk) < 1 << 16:
                break
        msgs = []
        while len(self.inbuf) >= 4:
            n, = _LEN.unpack_from(self.inbuf)
            head = 4
            if n == -1:
                if len(self.inbuf) < 12:
                    break
                n, = _BIG.unpack_from(self.inbuf, 4)
                head = 12
            if len(self.inbuf) < head + n:
                break
            msgs.append(ForkingPickler.loads(bytes(self.inbuf[head:head + n])))
            del self.inbuf[:head + n]
        return msgs

    def close(self) -> None:
        for item in self.out:
            if isinstance(item, int):
                os.close(item)
        self.out.clear()
        self.sock.close()
        self.conn.close()
