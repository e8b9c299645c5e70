"""The control socket: wire format, the client used by CLI verbs, and the
listening side's helpers for the root.

Wire format — orjson/JSON lines, one request then one reply per line:

    → {"op": "input", "id": "triage", "data": "ls\\r"}
    ← {"ok": true}                       | {"ok": false, "error": "one line"}

Ops (each takes "id" unless noted): ping (no id), start (prompt, runner,
command), input (data: str — `send` and `key` both use it), resize (cols,
rows), restart, kill, flag (note), unflag, shot, detach, prune (no id),
notify (status; from the pulse), attach, event (state, note), look (classify
the worker's activity now: see `nudge`). `attach`
switches the connection to binary frames after its reply (see `frame`), and
the root hands the socket itself to the worker child (SCM_RIGHTS), so attached
bytes never pass through the root.

Security: the socket is bound under umask 077 in the owner-only data dir and
the root checks SO_PEERCRED; other uids are dropped. A line longer than
MAX_LINE or not a JSON object drops the connection; the tree keeps running.
"""
from __future__ import annotations

import os
import socket
import struct
from typing import Any, Iterator

from looop import wire
from looop.errors import LooopError, NotRunning
from looop.store import paths

MAX_LINE = 1 << 20

# Every op the root accepts: looop.tree.ops.OPS dispatches exactly these (a
# unit test holds the two together). Named here, with the wire format, so
# `looop help` lists them without importing the root.
OP_NAMES = ("ping", "start", "input", "resize", "restart", "kill", "flag", "unflag", "shot",
            "detach", "prune", "attach", "notify", "beat", "event", "look")
_HDR = struct.Struct(">cI")

# Attach frames: 1-byte kind + 4-byte big-endian length + payload.
OUT, IN, RESIZE, DETACH, EXIT = b"o", b"i", b"r", b"d", b"x"


def frame(kind: bytes, payload: bytes = b"") -> bytes:
    return _HDR.pack(kind, len(payload)) + payload


class FrameReader:
    """Accumulates bytes; yields complete (kind, payload) frames."""

    def __init__(self) -> None:
        self.buf = bytearray()

    def feed(self, data: bytes) -> Iterator[tuple[bytes, bytes]]:
        self.buf += data
        while len(self.buf) >= _HDR.size:
            kind, n = _HDR.unpack_from(self.buf)
            if n > MAX_LINE * 8:
                raise ValueError("frame too large")
            if len(self.buf) < _HDR.size + n:
                return
            payload = bytes(self.buf[_HDR.size:_HDR.size + n])
            del self.buf[:_HDR.size + n]
            yield kind, payload


def recv_some(sock: socket.socket) -> bytes | None:
    """One non-blocking read: None if nothing is ready, b"" on EOF or a
    broken connection (both mean: drop it)."""
    try:
        return sock.recv(65536)
    except BlockingIOError:
        return None
    except OSError:
        return b""


def peer_uid(sock: socket.socket) -> int | None:
    """The connecting process's uid (Linux SO_PEERCRED), None if unknown."""
    try:
        creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        return struct.unpack("3i", creds)[1]
    except (OSError, AttributeError):
        return None


def listen(d: str) -> socket.socket:
    """Bind the control socket (replacing a stale file only after a connect
    to it fails). Raises LooopError if a live root already answers there."""
    path = paths.socket_path(d)
    if os.path.exists(path):
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        probe.settimeout(0.5)
        try:
            probe.connect(path)
        except OSError:
            os.unlink(path)  # stale: nobody listens
        else:
            raise LooopError(f"another process answers on {path}")
        finally:
            probe.close()
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o077)
    try:
        s.bind(path)
    finally:
        os.umask(old)
    os.chmod(path, 0o600)
    s.listen(64)
    s.setblocking(False)
    return s


class Client(wire.LineClient):
    """A blocking client connection with a deadline on every call."""

    gone = "looop closed the connection (is it shutting down?)"

    def __init__(self, d: str, timeout: float = 10.0):
        self.path = paths.socket_path(d)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        try:
            sock.connect(self.path)
        except (FileNotFoundError, ConnectionRefusedError, NotADirectoryError):
            sock.close()
            raise NotRunning("looop is not running for this data dir — start it with `looop`") from None
        except OSError as e:
            sock.close()
            raise NotRunning(f"cannot reach looop at {self.path}: {e.strerror or e}") from None
        super().__init__(sock)

    def call(self, op: str, **args: Any) -> dict[str, Any]:
        """Send one request and wait for its reply; raises LooopError on
        {"ok": false} and NotRunning if the root goes away."""
        try:
            self.send(op, **args)
        except socket.timeout:
            raise NotRunning(self.gone) from None
        return wire.checked(self.read_line(), op)

    def read_line(self) -> dict[str, Any]:
        """The next reply line; LooopError if none comes within the timeout."""
        try:
            return self.read_msg()
        except socket.timeout:
            raise LooopError("the running looop did not answer in time") from None

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def call(d: str, op: str, timeout: float = 10.0, **args: Any) -> dict[str, Any]:
    with Client(d, timeout) as c:
        return c.call(op, **args)


NUDGE_TIMEOUT = 1.0


def nudge(d: str, sid: str) -> None:
    """Best effort: have worker `sid` classify its activity now (a new or
    answered ask is evidence that comes without output). Never raises and
    never waits long: with no tree running the connect fails at once, and
    the ask files stay the truth either way."""
    try:
        call(d, "look", timeout=NUDGE_TIMEOUT, id=sid)
    except (LooopError, OSError, ValueError):
        pass
