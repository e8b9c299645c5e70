"""One command in a PTY, in its own session and process group, and the
process helpers of a subreaper (sweep, create_time, prctl).

The worker seam of SPEC §14/§17 is `looop.tree.backends`: its `LocalPty`
builds on `PtyCommand`, and every engine client (ssh, srun) runs in one.

The owning child is a child subreaper (PR_SET_CHILD_SUBREAPER), so anything
the command starts — even after `setsid` — is re-parented to it when its parent
dies, and `sweep` finds it among the child's descendants.
"""
from __future__ import annotations

import _signal
import errno
import fcntl
import os
import signal
import struct
import termios
from typing import Any, Sequence

import ptyprocess

from looop.store.perms import user_umask

_RESET_SIGNALS = (signal.SIGPIPE, signal.SIGINT, signal.SIGQUIT, signal.SIGTERM,
                  signal.SIGHUP, signal.SIGCHLD, signal.SIGTSTP, signal.SIGTTIN, signal.SIGTTOU,
                  signal.SIGXFSZ)


def clean_exec_state(pass_fds: Sequence[int] = ()) -> None:
    """preexec: default dispositions and an empty mask, so `yes | head` behaves
    as in a shell (Python ignores SIGPIPE; ignored signals survive exec).
    ptyprocess closes every other fd; the passed ones must survive exec."""
    for sig in _RESET_SIGNALS:
        _signal.signal(sig, _signal.SIG_DFL)  # (no enum wrapping: runs before every exec)
    signal.pthread_sigmask(signal.SIG_SETMASK, [])
    for fd in pass_fds:
        os.set_inheritable(fd, True)
    os.umask(user_umask())  # looop runs under 077; the user's command gets theirs back


class PtyCommand:
    """A command running in a fresh PTY. Not thread-safe; owned by one child."""

    def __init__(self, argv: Sequence[str], cwd: str, env: dict[str, str],
                 cols: int, rows: int, onlcr: bool = True, pass_fds: Sequence[int] = ()):
        self.argv, self.cwd, self.env = list(argv), cwd, env
        self.cols, self.rows, self.onlcr, self.pass_fds = cols, rows, onlcr, tuple(pass_fds)
        self.pid = 0
        self.fd = -1
        self._proc: ptyprocess.PtyProcess | None = None  # keep a ref: its fileobj owns fd

    def spawn(self) -> int:
        """Start the command; returns its pid. Blocks until exec (or raises
        FileNotFoundError/OSError from the exec, re-raised by ptyprocess)."""
        if not os.path.isdir(self.cwd):  # ptyprocess would raise it in the forked copy of us
            raise FileNotFoundError(errno.ENOENT, "no such directory", self.cwd)
        self._proc = ptyprocess.PtyProcess.spawn(
            self.argv, cwd=self.cwd, env=self.env, dimensions=(self.rows, self.cols),
            preexec_fn=lambda: clean_exec_state(self.pass_fds), pass_fds=self.pass_fds)
        self.pid, self.fd = self._proc.pid, self._proc.fd
        os.set_blocking(self.fd, False)
        if not self.onlcr:
            attrs = termios.tcgetattr(self.fd)
            attrs[1] &= ~termios.ONLCR
            termios.tcsetattr(self.fd, termios.TCSANOW, attrs)
        return self.pid

    def read(self, n: int = 1 << 16) -> bytes | None:
        """Non-blocking read: bytes, None if nothing is ready, b"" at EOF/EIO."""
        try:
            return os.read(self.fd, n)
        except BlockingIOError:
            return None
        except OSError as e:
            if e.errno == errno.EIO:  # every slave fd is closed
                return b""
            raise

    def write(self, data: bytes) -> int:
        """Write what the PTY accepts now (non-blocking); returns the count."""
        try:
            return os.write(self.fd, data)
        except BlockingIOError:
            return 0
        except OSError as e:
            if e.errno in (errno.EIO, errno.EBADF):
                return len(data)  # the command is gone: drop the input
            raise

    def resize(self, cols: int, rows: int) -> None:
        self.cols, self.rows = cols, rows
        fcntl.ioctl(self.fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))

    def signal(self, sig: int) -> None:
        """Signal the command's process group. The pid is ours until we reap
        it, so it cannot have been reused."""
        try:
            os.killpg(self.pid, sig)
        except ProcessLookupError:
            pass

    def close(self) -> None:
        """Close the master side. The kernel hangs up the session."""
        if self._proc is not None:
            self._proc.closed = True  # we reap ourselves; keep __del__ from waiting
            try:
                self._proc.fileobj.close()
            except OSError:
                pass
            self._proc = None
        self.fd = -1


def sweep(sig: int = signal.SIGKILL) -> int:
    """Signal every descendant of this process (the subreaper), whatever
    session or group it moved to; psutil checks create times, so a reused pid
    is never hit. Returns how many were signalled."""
    import psutil
    n = 0
    try:
        kids = psutil.Process().children(recursive=True)
    except psutil.Error:
        return 0
    for p in kids:
        try:
            if sig != signal.SIGKILL:
                p.send_signal(signal.SIGCONT)
            p.send_signal(sig)
            n += 1
        except psutil.Error:
            pass
    return n


def direct_children() -> list[int] | None:
    """Pids of this process's children, from /proc/self/task/*/children (one
    small read each; a psutil children() scan reads every process's stat).
    None when the kernel does not offer it: callers fall back to psutil."""
    try:
        tasks = os.listdir("/proc/self/task")
    except OSError:
        return None
    pids: list[int] = []
    for tid in tasks:
        try:
            with open(f"/proc/self/task/{tid}/children", "rb") as f:
                pids += [int(x) for x in f.read().split()]
        except OSError:
            return None
    return pids


_CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def create_time(pid: int) -> float | None:
    """The process's start time, half of its identity: (pid, created).
    psutil's value, computed as psutil does (starttime / CLK_TCK + btime)
    but from two small reads: a psutil.Process costs the child ~0.2 MiB of
    pages it would otherwise share with the root (bench/FINDINGS §3)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
        with open("/proc/stat", "rb") as f:
            btime = next(float(ln.split()[1]) for ln in f if ln.startswith(b"btime"))
        start = float(data[data.rfind(b")") + 2:].split()[19])
    except FileNotFoundError:
        return None  # gone already
    except (OSError, ValueError, IndexError, StopIteration):
        import psutil  # not Linux's /proc layout
        try:
            return psutil.Process(pid).create_time()
        except psutil.Error:
            return None
    return start / _CLK_TCK + btime


_PRCTL: Any = None  # libc's prctl, looked up once (in the root): children inherit it


def set_subreaper_and_pdeathsig(sig: int) -> None:
    """Linux: become a child subreaper and get `sig` when the parent dies."""
    global _PRCTL
    try:
        if _PRCTL is None:
            import ctypes
            _PRCTL = ctypes.CDLL(None, use_errno=True).prctl
        _PRCTL(36, 1, 0, 0, 0)   # PR_SET_CHILD_SUBREAPER
        _PRCTL(1, int(sig), 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass  # not Linux: the link EOF and the getppid check still catch root death
