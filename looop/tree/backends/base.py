"""The worker seam of SPEC §14/§17, as types: what a worker child may ask of
the thing that runs its command, wherever that runs.

A backend owns one command and everything it starts. The child only ever
calls the `Backend` methods below; it never signals, reaps or scans past
them. Every backend today runs a *local* PTY (the command itself, or an
engine client — ssh, srun — that carries the PTY to the engine), so read,
write and resize are the local PTY's; what differs is how a stop is asked
for, what "everything it started" means, and how it is named.

Nothing here imports the tree: spec.py (plain data) uses `Placement`.
"""
from __future__ import annotations

import functools
import hashlib
import os
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Protocol


class Stop(str, Enum):
    GRACEFUL = "graceful"  # ask: the command may run its traps (TERM)
    KILL = "kill"          # no more asking: end it and everything it started


@dataclass(frozen=True)
class Placement:
    """Where a worker runs: plain data, chosen once by the root, kept in
    meta.json (a restart runs where the first start did)."""
    kind: str = "local"                          # local | ssh | slurm
    host: str = ""                               # ssh: the host it was given
    name: str = ""                               # looop-<sid>-<h>: its identity on the engine
    opts: tuple[str, ...] = field(default=())    # engine arguments (srun -p/-t/--mem, ssh -o)
    pidns: bool = True                           # ssh: a PID namespace where the host allows it
    max_per_host: int = 8                        # ssh: handshakes at once per host

    @property
    def engine(self) -> str:
        """The engine it lives on, as a person names it: ssh:HOST, slurm."""
        return f"{self.kind}:{self.host}" if self.host else self.kind

    def as_meta(self) -> dict[str, Any]:
        return {"kind": self.kind, "host": self.host, "name": self.name, "opts": list(self.opts),
                "pidns": self.pidns, "max_per_host": self.max_per_host}

    @classmethod
    def from_meta(cls, m: dict[str, Any] | None) -> "Placement":
        if not m:
            return LOCAL
        return cls(kind=str(m.get("kind") or "local"), host=str(m.get("host") or ""),
                   name=str(m.get("name") or ""), opts=tuple(str(x) for x in m.get("opts") or ()),
                   pidns=bool(m.get("pidns", True)), max_per_host=int(m.get("max_per_host") or 8))


LOCAL = Placement()


class Backend(Protocol):
    """One command and everything it starts, as a worker child sees it.
    Every method returns at once unless its docstring gives a bound."""
    pid: int    # the local process the child reaps (the command, or the engine client)
    fd: int     # the PTY master the child selects on
    cols: int
    rows: int

    def spawn(self) -> int:
        """Start; returns the local pid. Raises OSError if it cannot start."""

    def read(self, n: int = 1 << 16) -> bytes | None:
        """Non-blocking: bytes, None if nothing is ready, b"" at EOF."""

    def write(self, data: bytes) -> int:
        """Non-blocking: how many bytes were taken."""

    def resize(self, cols: int, rows: int) -> None: ...

    def signal(self, how: Stop) -> None:
        """GRACEFUL: ask it to stop (its TERM trap runs). KILL: end it and
        everything it started (bounded, a few seconds at most for an engine)."""

    def wait(self, timeout: float = 0.0) -> int | None:
        """Reap what ended (up to `timeout` s); the exit code once the command
        ended (128+N for signal N), else None."""

    def sweep(self) -> int:
        """After the command ended: remove whatever it left (setsid'd
        descendants, engine-side processes). Bounded. Returns how many."""

    def identity(self) -> dict[str, Any] | None:
        """{"engine", "host", "id"} for ls and leftovers; None when local
        (a local command is named by pid + create time in status.json)."""

    def retry(self) -> bool:
        """The command ended before its engine session began and may be
        started again (ssh's 255 before the first byte)."""

    def close(self) -> None: ...


@functools.lru_cache(maxsize=16)
def data_dir_hash(d: str) -> str:
    """h = sha256(machine-id + realpath(data dir))[:10]: one engine, many
    data dirs, never touching each other's jobs or processes. Cached: the
    root asks twice per start (0.5 ms each at N=200, bench/FINDINGS §9)."""
    mid = ""
    for p in ("/etc/machine-id", "/var/lib/dbus/machine-id"):
        try:
            with open(p, encoding="ascii") as f:
                mid = f.read().strip()
        except OSError:
            continue
        if mid:
            break
    if not mid:
        import socket
        mid = socket.gethostname()
    return hashlib.sha256((mid + os.path.realpath(d)).encode()).hexdigest()[:10]


def engine_name(sid: str, h: str) -> str:
    """The name a session carries on every engine: looop-<sid>-<h>."""
    return f"looop-{sid}-{h}"
