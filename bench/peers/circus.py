"""circus from PyPI, in its own venv under the run's temp dir.

circusd runs in the foreground as our child, with ipc:// endpoints in a
private dir; requests go through `circusctl`:
- start: one watcher with numprocesses=N, autostart=false, `circusctl start p0`
  → N `sleep` children of circusd;
- list: `circusctl status`;
- stop: `circusctl quit` → circusd and every program gone
  (graceful_timeout = the bench's grace);
- restart: SIGKILL the program → circus respawns it.
"""
from __future__ import annotations

import os
import subprocess
from typing import Any

from peers.base import HOLD, Peer, Skip, shell
from peers.supervisord import venv_install
from procs import FigureFailed, alive, descendants, mem, now, running_named, timed, wait_until


class Circus(Peer):
    name = "circus"
    supports = frozenset({"list", "start", "stop", "memory", "restart"})

    def __init__(self, *a: Any, **kw: Any):
        super().__init__(*a, **kw)
        self.proc: subprocess.Popen | None = None
        self.endpoint = ""
        self.n = 0

    def install(self) -> None:
        self.bin = venv_install(self.tmp, ["circus"])
        r = subprocess.run([os.path.join(self.bin, "circusd"), "--version"], capture_output=True, text=True)
        if r.returncode != 0:
            raise Skip(f"circusd --version failed: {(r.stderr or r.stdout).strip()[-200:]}")
        self.version = r.stdout.strip() or r.stderr.strip()

    def ctl(self, *args: str, timeout: float = 60) -> float:
        return timed([os.path.join(self.bin, "circusctl"), "--endpoint", self.endpoint,
                      "--timeout", "30", *args], self.reg.env(), timeout=timeout)[0]

    def boot(self, n: int, program: str = "sleep", autorestart: bool = False) -> None:
        self.teardown()
        d = self.fresh_dir("conf")
        self.n = n
        self.endpoint = f"ipc://{d}/ctl"
        lines = ["[circus]", f"endpoint = {self.endpoint}", f"pubsub_endpoint = ipc://{d}/pub",
                 f"stats_endpoint = ipc://{d}/stats", "statsd = false", "check_delay = 5",
                 "loglevel = WARNING", ""]
        if program == "sleep":
            cmd, args = "sleep", HOLD
        else:
            cmd, args = "sh", f"-c \"{shell(program)}\""
        # one watcher running N copies: circus skips autostart=false watchers
        # in a multi-watcher `start`, and numprocesses is its native way
        for i in range(1):
            lines += [f"[watcher:p{i}]", f"cmd = {cmd}", f"args = {args}", f"numprocesses = {n}",
                      "autostart = false", "warmup_delay = 0", f"graceful_timeout = {self.grace:g}",
                      f"respawn = {str(autorestart).lower()}", "copy_env = true", ""]
        conf = os.path.join(d, "circus.ini")
        with open(conf, "w") as f:
            f.write("\n".join(lines))
        self.proc = self.reg.popen([os.path.join(self.bin, "circusd"), conf], env=self.reg.env(),
                                   stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                   stderr=open(os.path.join(d, "circusd.err"), "wb"))
        wait_until(self._answers, 30, "circusd to answer", poll=0.05)

    def _answers(self) -> bool:
        if self.proc is None or self.proc.poll() is not None:
            raise FigureFailed("circusd exited while starting")
        r = subprocess.run([os.path.join(self.bin, "circusctl"), "--endpoint", self.endpoint,
                            "--timeout", "2", "list"], capture_output=True, env=self.reg.env())
        return r.returncode == 0

    def programs(self) -> list[int]:
        assert self.proc is not None
        return running_named(self.proc.pid, "sleep")

    def request_start(self) -> None:
        self.ctl("start", "p0")

    def request_stop(self) -> None:
        self.ctl("stop", "p0")

    def list_cmds(self) -> dict[str, tuple[list[str], dict[str, str]]]:
        return {"circusctl status": ([os.path.join(self.bin, "circusctl"), "--endpoint", self.endpoint,
                                     "status"], self.reg.env())}

    def daemon_mem(self) -> dict[str, Any]:
        assert self.proc is not None
        return {"daemon": mem(self.proc.pid)}

    def shutdown(self) -> float:
        assert self.proc is not None
        pids = [self.proc.pid] + descendants(self.proc.pid)
        t0 = now()
        self.ctl("quit", timeout=self.grace + 30)
        try:
            self.proc.wait(self.grace + 30)
        except subprocess.TimeoutExpired:
            raise FigureFailed("circusd still up after quit") from None
        wait_until(lambda: not any(alive(p) for p in pids), 10, "every program gone")
        self.proc = None
        return now() - t0

    def teardown(self) -> None:
        self.stop_daemon()


PEER = Circus
