"""LocalPty: the command in a PTY on this machine (SPEC §6), the backend
every other one builds on — an engine client (ssh, srun) is a local command
in a local PTY too.

The owning child is a child subreaper, so anything the command starts —
even after `setsid` — is re-parented to it when its parent dies: `wait`
reaps those too (waitpid(-1) is right here: the child's only children are
its command and such orphans), and `sweep` finds them among the child's
descendants.
"""
from __future__ import annotations

import os
import signal
import time
from typing import Any, Sequence

from looop.tree import ptycmd
from looop.tree.backends.base import LOCAL, Placement, Stop


class LocalPty(ptycmd.PtyCommand):
    kind = "local"

    def __init__(self, argv: Sequence[str], cwd: str, env: dict[str, str], cols: int, rows: int,
                 onlcr: bool = True, pass_fds: Sequence[int] = (), where: Placement = LOCAL):
        super().__init__(argv, cwd, env, cols, rows, onlcr, pass_fds)
        self.where = where
        self.exit_code: int | None = None

    def signal(self, how: Stop | int) -> None:  # type: ignore[override]
        """GRACEFUL: CONT+HUP+TERM to the command's group. KILL: SIGKILL to the
        group and to every descendant, wherever it moved (no wait)."""
        if how is Stop.GRACEFUL:
            for sig in (signal.SIGCONT, signal.SIGHUP, signal.SIGTERM):
                self.killpg(sig)
        elif how is Stop.KILL:
            if self.pid and self.exit_code is None:
                self.killpg(signal.SIGKILL)
            if self._outside_group():
                ptycmd.sweep(signal.SIGKILL)
        else:
            self.killpg(int(how))

    def _outside_group(self) -> bool:
        """Anything below us that the group kill may have missed? Only our
        direct children can tell cheaply (/proc/self/task/*/children): the
        command alone → no; a full psutil sweep reads every process's stat,
        which 200 children stopping at once cannot afford (issue 15: stop
        at N=200 took grace + 3.5 s). What the command's death re-parents
        to us later is swept once it is reaped (`sweep`, `has_descendants`)."""
        direct = ptycmd.direct_children()
        return direct is None or any(p != self.pid for p in direct)

    def killpg(self, sig: int) -> None:
        ptycmd.PtyCommand.signal(self, sig)

    def wait(self, timeout: float = 0.0) -> int | None:
        """Reap the command and any re-parented descendant, for up to
        `timeout` s or until nothing is left; the command's exit code once
        it was reaped (ptyprocess never waits: `closed` is set)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                if time.monotonic() >= deadline:
                    break
                time.sleep(0.01)
                continue
            if pid == self.pid and self.exit_code is None:
                code = os.waitstatus_to_exitcode(status)
                self.exit_code = code if code >= 0 else 128 - code
                self.reaped(self.exit_code)
        return self.exit_code

    def reaped(self, code: int) -> None:
        """Hook: the command's pid was reaped with `code`."""

    def sweep(self) -> int:
        """SIGKILL whatever is still below the child (setsid'd descendants
        holding the PTY), then reap them (≤ 0.2 s)."""
        if not self.has_descendants():
            return 0
        n = ptycmd.sweep(signal.SIGKILL)
        self.wait(0.2)
        return n

    def has_descendants(self) -> bool:
        """Any process left below us? We are a subreaper: every orphan of our
        subtree is re-parented to us, so the subtree is empty iff we have no
        children left once the zombies are reaped."""
        self.wait()
        direct = ptycmd.direct_children()
        if direct is not None:
            return bool(direct)
        import psutil
        try:
            return any(p.status() != psutil.STATUS_ZOMBIE
                       for p in psutil.Process().children(recursive=True))
        except psutil.Error:
            return True  # unsure: the sweep is harmless

    def identity(self) -> dict[str, Any] | None:
        return None

    def retry(self) -> bool:
        return False
