"""What every peer offers the figures, and the managed programs they run.

A peer measures only what it supports; a figure calls a method and gets
seconds (or bytes) back, or FigureFailed with the reason. `teardown()` must
leave nothing running, whatever state the peer is in.
"""
from __future__ import annotations

import hashlib
import os
import signal
import subprocess
from functools import lru_cache
from typing import Any

from procs import FigureFailed, Registry, descendants, now, wait_until

HOLD = "100000"  # sleep argument of the managed program


class Skip(Exception):
    """The peer cannot be installed or run here; the message says why."""


def shell(program: str, size: int = 0) -> str:
    """The managed program as a POSIX shell line."""
    return {
        "sleep": f"exec sleep {HOLD}",
        # ignored signals stay ignored across exec: sleep itself ignores TERM
        "ignore": f"trap '' TERM HUP INT; exec sleep {HOLD}",
        "yes": f"yes | head -c {size}",
        "nonl": f"yes | tr -d '\\n' | head -c {size}",
    }[program]


def expected(program: str, size: int, pty: bool) -> tuple[int, str]:
    """(byte count, sha256) of what the log must hold: through a PTY, ONLCR
    turns each "\\n" of `yes` into "\\r\\n"."""
    unit = {"yes": b"y\r\n" if pty else b"y\n", "nonl": b"y"}[program]
    per = 2 if program == "yes" else 1
    return _digest(unit, size // per)


@lru_cache(maxsize=8)
def _digest(unit: bytes, count: int) -> tuple[int, str]:
    h = hashlib.sha256()
    block = unit * (1 << 16)
    full, rest = divmod(count, 1 << 16)
    for _ in range(full):
        h.update(block)
    h.update(unit * rest)
    return len(unit) * count, h.hexdigest()


def file_digest(path: str, offset: int = 0, length: int | None = None) -> tuple[int, str]:
    h = hashlib.sha256()
    n = 0
    with open(path, "rb") as f:
        f.seek(offset)
        while length is None or n < length:
            chunk = f.read(1 << 20 if length is None else min(1 << 20, length - n))
            if not chunk:
                break
            h.update(chunk)
            n += len(chunk)
    return n, h.hexdigest()


def check_bytes(path: str, program: str, size: int, pty: bool, offset: int = 0) -> None:
    """FigureFailed unless `path` (from offset) holds exactly the expected stream."""
    want_n, want_h = expected(program, size, pty)
    got_n, got_h = file_digest(path, offset, want_n)
    if (got_n, got_h) != (want_n, want_h):
        raise FigureFailed(f"log not byte-exact: {got_n} of {want_n} bytes, sha256 "
                           f"{'match' if got_h == want_h else 'differs'}")


class Peer:
    name = "?"
    version = "?"
    supports: frozenset[str] = frozenset()

    def __init__(self, reg: Registry, tmp: str, grace: float):
        self.reg, self.tmp, self.grace = reg, tmp, grace
        self.seq = 0

    def fresh_dir(self, what: str) -> str:
        self.seq += 1
        d = os.path.join(self.tmp, f"{self.name}-{what}-{self.seq}")
        os.makedirs(d, exist_ok=True)
        return d

    def install(self) -> None:
        """Raise Skip(reason) if the peer cannot run here; set self.version."""

    # daemon with n programs configured, not yet started
    def boot(self, n: int, program: str = "sleep", autorestart: bool = False) -> None:
        raise NotImplementedError

    def request_start(self) -> None:
        """Ask the daemon to start all n configured programs (the tool's own command)."""
        raise NotImplementedError

    def request_stop(self) -> None:
        """Ask the daemon to stop every program."""
        raise NotImplementedError

    def start_all(self) -> float:
        """Timed: the start request → all n managed programs running (/proc)."""
        t0 = now()
        self.request_start()
        wait_until(lambda: len(self.programs()) >= self.n, 60, f"{self.n} programs running")
        return now() - t0

    def stop_programs(self) -> None:
        """Untimed: back to n configured, none running."""
        self.request_stop()
        wait_until(lambda: not self.programs(), self.grace + 15, "programs to stop")

    def list_cmds(self) -> dict[str, tuple[list[str], dict[str, str]]]:
        return {}

    def daemon_mem(self) -> dict[str, Any]:
        raise NotImplementedError

    def shutdown(self) -> float:
        """Timed: ask the whole thing to stop → daemon and programs gone."""
        raise NotImplementedError

    def programs(self) -> list[int]:
        """Pids of the managed programs running now."""
        raise NotImplementedError

    def restart_rep(self) -> float:
        """Timed: SIGKILL one managed program → its replacement running
        (the peer's own autorestart)."""
        old = self.programs()
        if not old:
            raise FigureFailed("no running program to kill")
        t0 = now()
        os.kill(old[0], signal.SIGKILL)
        wait_until(lambda: [p for p in self.programs() if p != old[0]], 30, "the program to restart")
        return now() - t0

    def stop_daemon(self) -> None:
        """Teardown for a peer whose daemon is our Popen `self.proc`: SIGTERM,
        SIGKILL if it lingers, then kill whatever it left behind."""
        p, self.proc = getattr(self, "proc", None), None
        if p is None or p.poll() is not None:
            return
        pids = descendants(p.pid)
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(self.grace + 5)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(5)
        for q in pids:
            try:
                os.kill(q, signal.SIGKILL)
            except OSError:
                pass

    def capture(self, program: str, size: int) -> float:
        raise NotImplementedError

    def teardown(self) -> None:
        """Idempotent; the registry's sweep backs it up."""
