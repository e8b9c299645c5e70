"""supervisord 4.x from PyPI, in its own venv under the run's temp dir.

supervisord runs in the foreground (nodaemon) as our child; requests go
through its own CLI, `supervisorctl` (that is what a user types):
- start: `supervisorctl start all` → N `sleep` children of supervisord;
- list: `supervisorctl status`;
- stop: SIGTERM to supervisord (its documented shutdown) → it and every
  program gone; stopwaitsecs = the bench's grace;
- restart: autorestart=true, SIGKILL the program → a new `sleep` child;
- capture: a program `sh -c "<stream>"` with stdout_logfile (no rotation):
  `supervisorctl start cap` → the log holds every byte (a pipe, no PTY, so
  no ONLCR: fewer bytes than the PTY tools write).
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from typing import Any

from peers.base import Peer, Skip, check_bytes, expected, shell
from procs import FigureFailed, alive, descendants, mem, now, running_named, timed, wait_until


def venv_install(tmp: str, packages: list[str]) -> str:
    """A venv under tmp with packages from PyPI; returns its bin dir. Shared by
    supervisord and circus (one venv per package set)."""
    d = os.path.join(tmp, "venv-" + "-".join(packages))
    if not os.path.isdir(d):
        r = subprocess.run([sys.executable, "-m", "venv", d], capture_output=True, text=True, timeout=120)
        if r.returncode != 0:
            raise Skip(f"venv failed: {r.stderr.strip()[-200:]}")
        r = subprocess.run([os.path.join(d, "bin", "pip"), "install", "-q", "--disable-pip-version-check",
                            *packages], capture_output=True, text=True, timeout=600)
        if r.returncode != 0:
            raise Skip(f"pip install {' '.join(packages)} failed: {r.stderr.strip().splitlines()[-1:]}")
    return os.path.join(d, "bin")


class Supervisord(Peer):
    name = "supervisord"
    supports = frozenset({"list", "start", "stop", "memory", "restart", "capture"})

    def __init__(self, *a: Any, **kw: Any):
        super().__init__(*a, **kw)
        self.proc: subprocess.Popen | None = None
        self.conf = ""
        self.n = 0

    def install(self) -> None:
        self.bin = venv_install(self.tmp, ["supervisor"])
        r = subprocess.run([os.path.join(self.bin, "supervisord"), "--version"], capture_output=True, text=True)
        if r.returncode != 0:
            raise Skip(f"supervisord --version failed: {r.stderr.strip()}")
        self.version = r.stdout.strip()

    def ctl(self, *args: str, timeout: float = 60) -> float:
        return timed([os.path.join(self.bin, "supervisorctl"), "-c", self.conf, *args],
                     self.reg.env(), timeout=timeout)[0]

    def _write_conf(self, d: str, programs: dict[str, dict[str, str]]) -> None:
        self.conf = os.path.join(d, "supervisord.conf")
        lines = [
            "[unix_http_server]", f"file={d}/s.sock", "",
            "[supervisord]", f"logfile={d}/supervisord.log", f"pidfile={d}/supervisord.pid",
            f"childlogdir={d}", "nodaemon=true", "loglevel=warn", "",
            "[rpcinterface:supervisor]",
            "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface", "",
            "[supervisorctl]", f"serverurl=unix://{d}/s.sock", "",
        ]
        for name, opts in programs.items():
            lines.append(f"[program:{name}]")
            lines += [f"{k}={v}" for k, v in opts.items()]
            lines.append("")
        with open(self.conf, "w") as f:
            f.write("\n".join(lines))

    def _up(self, d: str) -> None:
        self.proc = self.reg.popen([os.path.join(self.bin, "supervisord"), "-c", self.conf],
                                   env=self.reg.env(), stdin=subprocess.DEVNULL,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(lambda: self._answers(), 30, "supervisord to answer", poll=0.02)

    def _answers(self) -> bool:
        if self.proc is None or self.proc.poll() is not None:
            raise FigureFailed("supervisord exited while starting")
        r = subprocess.run([os.path.join(self.bin, "supervisorctl"), "-c", self.conf, "pid"],
                           capture_output=True, env=self.reg.env())
        return r.returncode == 0 and r.stdout.strip().isdigit()

    def boot(self, n: int, program: str = "sleep", autorestart: bool = False) -> None:
        self.teardown()
        d = self.fresh_dir("conf")
        self.n = n
        cmd = f"sleep {shell('sleep').split()[-1]}" if program == "sleep" else \
            f"sh -c \"{shell(program)}\""
        opts = {"command": cmd, "autostart": "false", "autorestart": str(autorestart).lower(),
                "startsecs": "0", "stopwaitsecs": f"{self.grace:g}", "stdout_logfile": "NONE",
                "stderr_logfile": "NONE", "stopsignal": "TERM"}
        self._write_conf(d, {f"p{i}": opts for i in range(n)})
        self._up(d)

    def programs(self) -> list[int]:
        assert self.proc is not None
        return running_named(self.proc.pid, "sleep")

    def request_start(self) -> None:
        self.ctl("start", "all")

    def request_stop(self) -> None:
        self.ctl("stop", "all")

    def list_cmds(self) -> dict[str, tuple[list[str], dict[str, str]]]:
        return {"supervisorctl status": ([os.path.join(self.bin, "supervisorctl"), "-c", self.conf, "status"],
                                         self.reg.env())}

    def daemon_mem(self) -> dict[str, Any]:
        assert self.proc is not None
        return {"daemon": mem(self.proc.pid)}

    def shutdown(self) -> float:
        assert self.proc is not None
        pids = [self.proc.pid] + descendants(self.proc.pid)
        t0 = now()
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(self.grace + 30)
        except subprocess.TimeoutExpired:
            # supervisord stops its program groups one at a time (each
            # [program:x] is a group; ordered_stop_groups_phase_1/2), each
            # waiting up to stopwaitsecs: N × grace when programs ignore TERM
            raise FigureFailed(f"supervisord still up {self.grace + 30:g}s after SIGTERM (it stops "
                               f"program groups one at a time: ≈ N × stopwaitsecs)") from None
        wait_until(lambda: not any(alive(p) for p in pids), 10, "every program gone")
        self.proc = None
        return now() - t0

    def capture(self, program: str, size: int) -> float:
        d = self.fresh_dir("cap")
        log = os.path.join(d, "cap.log")
        self.teardown()
        self._write_conf(d, {"cap": {"command": f"sh -c \"{shell(program, size)}\"", "autostart": "false",
                                     "autorestart": "false", "startsecs": "0", "stdout_logfile": log,
                                     "stdout_logfile_maxbytes": "0", "stdout_logfile_backups": "0",
                                     "stderr_logfile": os.path.join(d, "cap.err")}})
        self._up(d)
        want, _ = expected(program, size, pty=False)
        t0 = now()
        self.ctl("start", "cap")
        wait_until(lambda: os.path.exists(log) and os.path.getsize(log) >= want, 900,
                   f"{want} bytes in the log", poll=0.005)
        dt = now() - t0
        try:
            if os.path.getsize(log) != want:
                raise FigureFailed(f"log has {os.path.getsize(log)} bytes, want {want}")
            check_bytes(log, program, size, pty=False)
        finally:
            self.teardown()
            os.unlink(log)
        return dt

    def teardown(self) -> None:
        self.stop_daemon()


PEER = Supervisord
