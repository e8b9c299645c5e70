"""The pulse's line to the root: the socketpair fd in `LOOOP_PULSE_FD`,
speaking the control protocol (JSON lines, one request → one reply).

This is the only way pulse code reaches the tree (STYLE: pulse/ talks to the
tree through link messages). The root trusts this connection; everything
else about the wire is `looop.tree.control`'s format, and the client side
is `looop.wire`'s, shared with the CLI.

The root also pushes event lines (`{"event": "worker_exited", ...}`, no
"ok" key) at any time; `call` sets them aside and `sleep` returns early on
them, so the pulse prints worker starts and exits in its own stream and
beats soon after a worker ends.

Replies carry no request id, so after a timeout a late reply could be taken
for the next one. Instead the link is marked broken and the pulse exits:
the root restarts it (it is `permanent`) with a fresh socketpair, and since
the pulse keeps nothing in memory, nothing is lost — let it crash.
"""
from __future__ import annotations

import os
import socket
import time
from typing import Any

from looop import wire
from looop.errors import LooopError, NotRunning
from looop.pulse import stop
from looop.store import jsonio

ENV = "LOOOP_PULSE_FD"


class Link(wire.LineClient):
    """A blocking request/reply client over an inherited socket."""

    gone = "the root closed the pulse link"

    def __init__(self, sock: socket.socket):
        super().__init__(sock)
        self.broken = False
        self.events: list[dict[str, Any]] = []

    @classmethod
    def from_env(cls) -> "Link | None":
        """The link handed down by the root, or None (e.g. under `looop tick`).

        Removes the variable so nothing the pulse starts inherits it."""
        raw = os.environ.pop(ENV, None)
        if not raw:
            return None
        try:
            sock = socket.socket(fileno=int(raw))
        except (ValueError, OSError):
            return None
        os.set_inheritable(sock.fileno(), False)
        return cls(sock)

    def call(self, op: str, timeout: float = 10.0, **args: Any) -> dict[str, Any]:
        """One request, one reply. Blocks up to `timeout`. LooopError on
        {"ok": false} or no answer; NotRunning if the root is gone."""
        if self.broken:
            raise NotRunning("the link to the root is broken")
        self.sock.settimeout(timeout)
        stop.check()  # asked to stop already: the move is not sent (its reply would never be read)
        deadline = time.monotonic() + timeout
        try:
            self.send(op, **args)
            while self._is_event(reply := self._reply(deadline)):
                pass
        except socket.timeout:
            self.broken = True
            raise LooopError(f"the root did not answer {op!r} within {timeout:g}s") from None
        except BaseException:  # NotRunning, Shutdown mid-wait: its reply may still come
            self.broken = True
            raise
        return wire.checked(reply, op)

    def _reply(self, deadline: float) -> Any:
        """The next line, parsed; the wait for it ends on a stop request too
        (stop.Shutdown): a root that does not answer (stopped, swamped) must
        not hold a SIGTERMed pulse for the whole `timeout`."""
        while (line := self.next_line()) is None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise socket.timeout
            if stop.wait([self.sock.fileno()], left):
                self.fill()
        return jsonio.loads(line)

    def _is_event(self, msg: Any) -> bool:
        if isinstance(msg, dict) and "event" in msg and "ok" not in msg:
            self.events.append(msg)
            return True
        return False

    def sleep(self, secs: float, wake: int | None = None) -> None:
        """Wait up to `secs`, returning as soon as an event line arrived
        (they are then in `events`), `wake` (an fd) is readable, or a stop
        was asked (`stop.Shutdown`)."""
        if self.broken or self.events:
            return
        try:
            fds = [self.sock.fileno()] + ([wake] if wake is not None else [])
            if self.sock.fileno() not in stop.wait(fds, secs):
                return
            self.sock.settimeout(1.0)
            self.fill()
            while (line := self.next_line()) is not None:
                try:
                    msg = jsonio.loads(line)
                except ValueError:
                    msg = None
                if not self._is_event(msg):
                    self.broken = True  # a reply nobody asked for: out of step
                    return
        except (OSError, NotRunning):
            self.broken = True

    def notify(self, status: str) -> None:
        """Best effort: a STATUS= line for systemd; never fails the beat."""
        try:
            self.call("notify", timeout=2.0, status=status)
        except LooopError:
            pass

    def beat(self, within_s: float) -> None:
        """Best effort: tell the root the next sign of progress comes within
        `within_s` (the root restarts a pulse that misses it by its grace)."""
        try:
            self.call("beat", timeout=2.0, within_s=round(within_s, 3))
        except LooopError:
            pass

    def close(self) -> None:
        self.sock.close()
