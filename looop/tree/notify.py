"""sd_notify, spoken directly: one datagram per message to $NOTIFY_SOCKET.

A leading '@' means the Linux abstract namespace. Without NOTIFY_SOCKET every
call is a no-op, so the root calls it unconditionally.
"""
from __future__ import annotations

import os
import socket


class Notifier:
    def __init__(self) -> None:
        addr = os.environ.get("NOTIFY_SOCKET", "")
        self.addr = ("\0" + addr[1:]) if addr.startswith("@") else addr
        self.sock: socket.socket | None = None
        usec = os.environ.get("WATCHDOG_USEC", "")
        pid = os.environ.get("WATCHDOG_PID", "")
        ok = usec.isdigit() and int(usec) > 0 and (not pid or pid == str(os.getpid()))
        self.watchdog_every = int(usec) / 2e6 if ok else None  # half the timeout, in seconds
        if self.addr:
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)

    def send(self, msg: str) -> None:
        if self.sock is None:
            return
        try:
            self.sock.sendto(msg.encode(), self.addr)
        except OSError:
            pass  # systemd gone or socket full: never fail the tree for it
