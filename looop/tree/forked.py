"""A forked child process: the part of multiprocessing's fork Process the root uses.

The root forks every child itself (os.fork) instead of through
multiprocessing.Process: the child then runs only `target`, not
multiprocessing's bootstrap (its after-fork hooks, finalizer registry,
process bookkeeping) — code whose every call writes pages the child would
otherwise share with the root (bench/FINDINGS §3), and the root skips the
module-wide poll of every earlier child on each start.

Same interface as multiprocessing.Process for what the root needs: pid,
sentinel (readable once the child is gone), exitcode, join, kill, close.
The child's exit status follows multiprocessing's: 0 on return, the
SystemExit code, 1 (with a traceback on stderr) on any other exception.
"""
from __future__ import annotations

import os
import selectors
import signal
import sys
from typing import Any, Callable


class Forked:
    def __init__(self, target: Callable[..., Any], args: tuple, name: str):
        self.target, self.args, self.name = target, args, name
        self.pid = 0
        self.sentinel = -1
        self.returncode: int | None = None

    def start(self) -> None:
        r, w = os.pipe()  # the child holds w (close-on-exec): EOF on r = the child is gone
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                os.close(r)
                code = self._bootstrap()
            finally:
                os._exit(code)
        os.close(w)
        self.pid, self.sentinel = pid, r

    def _bootstrap(self) -> int:
        _close_stdin()
        try:
            self.target(*self.args)
            code = 0
        except SystemExit as e:
            if e.code is None:
                code = 0
            elif isinstance(e.code, int):
                code = e.code
            else:
                sys.stderr.write(f"{e.code}\n")
                code = 1
        except BaseException:
            import traceback
            sys.stderr.write(f"Process {self.name}:\n")
            traceback.print_exc()
            code = 1
        for f in (sys.stdout, sys.stderr):
            try:
                f.flush()
            except (AttributeError, ValueError, OSError):
                pass
        return code

    @property
    def exitcode(self) -> int | None:
        """None while running (polls waitpid without blocking)."""
        if self.returncode is None and self.pid:
            try:
                pid, sts = os.waitpid(self.pid, os.WNOHANG)
            except OSError:
                return None  # not ours to reap (already reaped elsewhere)
            if pid == self.pid:
                self.returncode = os.waitstatus_to_exitcode(sts)
        return self.returncode

    def join(self, timeout: float | None = None) -> None:
        """Wait up to `timeout` for the sentinel, then reap if it is gone."""
        if self.returncode is not None:
            return
        if self.sentinel >= 0:
            with selectors.DefaultSelector() as sel:
                sel.register(self.sentinel, selectors.EVENT_READ)
                if not sel.select(timeout):
                    return
        # the sentinel closes a moment before the child is reapable: block
        # (as multiprocessing does), it is exiting
        try:
            pid, sts = os.waitpid(self.pid, 0)
        except OSError:
            return
        if pid == self.pid:
            self.returncode = os.waitstatus_to_exitcode(sts)

    def kill(self) -> None:
        if self.returncode is None:
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def close(self) -> None:
        if self.exitcode is None:
            raise ValueError("Cannot close a process while it is still running.")
        if self.sentinel >= 0:
            os.close(self.sentinel)
            self.sentinel = -1


def _close_stdin() -> None:
    """As multiprocessing does in its children: stdin becomes /dev/null."""
    if sys.stdin is None:
        return
    try:
        sys.stdin.close()
    except (OSError, ValueError):
        pass
    try:
        fd = os.open(os.devnull, os.O_RDONLY)
        try:
            sys.stdin = open(fd, encoding="utf-8", closefd=False)
        except BaseException:
            os.close(fd)
            raise
    except (OSError, ValueError):
        pass
