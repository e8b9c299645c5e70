"""tmux from the OS, on a private server socket (`tmux -L <name>`, no config).

- start: the server is up with one idle session; one tmux invocation
  chains N `new-window -d sleep …` commands (`\\;`) → N `sleep` descendants
  of the server;
- list: `tmux ls`;
- stop: `tmux kill-server` → server and every pane command gone (tmux sends
  SIGHUP and does not wait: a program that ignores it survives, which is
  reported as a failure after the grace);
- capture: a session whose command waits on a fifo, `pipe-pane 'cat > log'`,
  then the fifo is opened and the stream runs; the pane stays open after the
  stream (`; exec sleep`) so pipe-pane can finish writing.
No supervised restart: tmux does not restart programs.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
from typing import Any

from peers.base import HOLD, Peer, Skip, check_bytes, expected, shell
from procs import FigureFailed, alive, descendants, kill_tree, mem, now, running_named, timed, wait_until


class Tmux(Peer):
    name = "tmux"
    supports = frozenset({"list", "start", "stop", "memory", "capture"})

    def __init__(self, *a: Any, **kw: Any):
        super().__init__(*a, **kw)
        self.sock = ""
        self.server = 0
        self.n = 0
        self.program = "sleep"

    def install(self) -> None:
        self.bin = shutil.which("tmux")
        if not self.bin:
            raise Skip("tmux not on PATH")
        self.version = subprocess.run([self.bin, "-V"], capture_output=True, text=True).stdout.strip()

    def t(self, *args: str, timeout: float = 60) -> float:
        return timed([self.bin, "-L", self.sock, "-f", "/dev/null", *args], self.reg.env(), timeout=timeout)[0]

    def _serve(self) -> None:
        self.teardown()
        self.seq += 1
        self.sock = f"{self.reg.tag}-{self.seq}"
        self.t("new-session", "-d", "-s", "base", "-x", "120", "-y", "40")
        out = subprocess.run([self.bin, "-L", self.sock, "display", "-p", "-t", "base", "#{pid}"],
                             capture_output=True, text=True, env=self.reg.env())
        self.server = int(out.stdout.strip())
        sock, server = self.sock, self.server
        self.reg.on_teardown("tmux server", lambda: self._kill(sock, server))

    def boot(self, n: int, program: str = "sleep", autorestart: bool = False) -> None:
        self._serve()
        self.n, self.program = n, program

    def programs(self) -> list[int]:
        return running_named(self.server, "sleep") if self.server else []

    def start_all(self) -> float:
        argv: list[str] = []
        for i in range(self.n):
            argv += ([";"] if i else []) + ["new-window", "-d", "-t", "base"]
            argv += ["sleep", HOLD] if self.program == "sleep" else ["sh", "-c", shell(self.program)]
        t0 = now()
        self.t(*argv)
        wait_until(lambda: len(self.programs()) >= self.n, 60, f"{self.n} programs running")
        return now() - t0

    def stop_programs(self) -> None:
        for p in self.programs():
            os.kill(p, signal.SIGKILL)
        wait_until(lambda: not self.programs(), 10, "programs to stop")

    def list_cmds(self) -> dict[str, tuple[list[str], dict[str, str]]]:
        return {"tmux ls": ([self.bin, "-L", self.sock, "ls"], self.reg.env())}

    def daemon_mem(self) -> dict[str, Any]:
        return {"daemon": mem(self.server)}

    def shutdown(self) -> float:
        pids = [self.server] + descendants(self.server)
        t0 = now()
        self.t("kill-server")
        try:
            wait_until(lambda: not any(alive(p) for p in pids), self.grace + 2, "every pane command gone")
        except FigureFailed:
            left = [p for p in pids if alive(p)]
            raise FigureFailed(f"{len(left)} programs survived kill-server (they ignore SIGHUP) "
                               f"{self.grace + 2:g}s later") from None
        dt = now() - t0
        self.server = 0
        return dt

    def capture(self, program: str, size: int) -> float:
        self._serve()
        d = self.fresh_dir("cap")
        gate, log = os.path.join(d, "gate"), os.path.join(d, "pane.log")
        os.mkfifo(gate)
        self.t("new-window", "-d", "-t", "base", "-n", "cap",
               f"cat {gate} > /dev/null; {shell(program, size)}; exec sleep {HOLD}")
        self.t("pipe-pane", "-t", "base:cap", f"cat > {log}")
        want, _ = expected(program, size, pty=True)
        wait_until(lambda: os.path.exists(log), 10, "pipe-pane's log")
        t0 = now()
        fd = os.open(gate, os.O_WRONLY)
        os.close(fd)
        wait_until(lambda: os.path.getsize(log) >= want, 900, f"{want} bytes in the log", poll=0.005)
        dt = now() - t0
        try:
            if os.path.getsize(log) != want:
                raise FigureFailed(f"log has {os.path.getsize(log)} bytes, want {want}")
            check_bytes(log, program, size, pty=True)
        finally:
            self.teardown()
            os.unlink(log)
        return dt

    def _kill(self, sock: str, server: int) -> None:
        if server and alive(server):
            pids = [server] + descendants(server)
            subprocess.run([self.bin, "-L", sock, "kill-server"], capture_output=True, timeout=10)
            for p in pids:
                if alive(p):
                    kill_tree(p)

    def teardown(self) -> None:
        self._kill(self.sock, self.server)
        self.server = 0


PEER = Tmux
