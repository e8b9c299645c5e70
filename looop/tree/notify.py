"""sd_notify, spoken directly: one datagram per message to $NOTIFY_SOCKET.

Why not libsystemd: the protocol is one `sendto` of `KEY=value` lines, and a
dependency (or a ctypes load) in the root costs more than these lines. A
leading '@' means the Linux abstract namespace (systemd hands those to
containers). Without NOTIFY_SOCKET every call is a no-op, so the root calls it
unconditionally. The root is the main pid systemd knows (NotifyAccess=main)
and strips NOTIFY_SOCKET/WATCHDOG_* from its children's environment, so no
descendant can speak for it.

The watchdog interval is half of $WATCHDOG_USEC (sd_watchdog_enabled's
advice), and only if $WATCHDOG_PID is unset or names us. Sending never
raises: systemd being gone must not take the tree down.
"""
from __future__ import annotations

import os
import socket


def parse_address(value: str) -> str:
    """$NOTIFY_SOCKET → a sockaddr for AF_UNIX ('' if unset or unusable)."""
    if value.startswith("@") and len(value) > 1:
        return "\0" + value[1:]
    return value if value.startswith("/") else ""


def watchdog_interval(usec: str, pid: str, me: int) -> float | None:
    """Seconds between WATCHDOG=1 pings, or None when the watchdog is off."""
    if not usec.isdigit() or int(usec) <= 0 or (pid and pid != str(me)):
        return None
    return int(usec) / 2e6


class Notifier:
    def __init__(self) -> None:
        self.addr = parse_address(os.environ.get("NOTIFY_SOCKET", ""))
        self.sock: socket.socket | None = None
        self.watchdog_every = watchdog_interval(os.environ.get("WATCHDOG_USEC", ""),
                                                os.environ.get("WATCHDOG_PID", ""), os.getpid())
        if self.addr:
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)

    def send(self, msg: str) -> None:
        """One datagram; never blocks for long (datagram send), never raises."""
        if self.sock is None:
            return
        try:
            self.sock.sendto(msg.encode(), self.addr)
        except OSError:
            pass  # systemd gone or socket full: never fail the tree for it
