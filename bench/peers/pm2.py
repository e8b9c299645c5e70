"""pm2 from npm, installed with its own prefix and PM2_HOME under the temp dir.

The daemon ("God") is started by `pm2 ping`; requests go through `pm2`:
- start: `pm2 start eco.json` (N apps, interpreter none, absolute `sleep`)
  → N `sleep` children of the daemon;
- list: `pm2 jlist`;
- stop: `pm2 kill` → daemon and every program gone (kill_timeout = grace);
- restart: autorestart, SIGKILL the program → a new `sleep`.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from typing import Any

from peers.base import HOLD, Peer, Skip, shell
from procs import alive, descendants, kill_tree, mem, now, running_named, timed, wait_until


class Pm2(Peer):
    name = "pm2"
    supports = frozenset({"list", "start", "stop", "memory", "restart"})

    def __init__(self, *a: Any, **kw: Any):
        super().__init__(*a, **kw)
        self.home = ""
        self.god = 0
        self.n = 0
        self.eco = ""

    def install(self) -> None:
        npm = shutil.which("npm")
        if not npm or not shutil.which("node"):
            raise Skip("node/npm not on PATH")
        self.prefix = os.path.join(self.tmp, "npm")
        os.makedirs(self.prefix, exist_ok=True)
        r = subprocess.run([npm, "install", "--silent", "--no-audit", "--no-fund", "--prefix", self.prefix,
                            "pm2@latest"], capture_output=True, text=True, timeout=600,
                           env=dict(os.environ, npm_config_cache=os.path.join(self.tmp, "npm-cache")))
        if r.returncode != 0:
            raise Skip(f"npm install pm2 failed: {r.stderr.strip().splitlines()[-1:]}")
        self.bin = os.path.join(self.prefix, "node_modules", ".bin", "pm2")
        self.sleep = shutil.which("sleep") or "/bin/sleep"
        self.home = os.path.join(self.tmp, "pm2-home-version")
        self.version = subprocess.run([self.bin, "--version"], capture_output=True, text=True,
                                      env=self._env(), timeout=60).stdout.strip().splitlines()[-1]
        self._kill_daemon()

    def _env(self) -> dict[str, str]:
        return self.reg.env({"PM2_HOME": self.home, "PM2_DISCRETE_MODE": "true"})

    def pm2(self, *args: str, timeout: float = 60) -> float:
        return timed([self.bin, *args], self._env(), timeout=timeout)[0]

    def _god(self) -> int:
        try:
            with open(os.path.join(self.home, "pm2.pid")) as f:
                return int(f.read().strip())
        except (OSError, ValueError):
            return 0

    def boot(self, n: int, program: str = "sleep", autorestart: bool = False) -> None:
        self.teardown()
        d = self.fresh_dir("home")
        self.home, self.n = d, n
        self.pm2("ping")
        self.god = wait_until(self._god, 30, "the pm2 daemon pid", poll=0.02)
        self.reg.on_teardown("pm2 daemon", self._kill_daemon_of(d))
        if program == "sleep":
            script, args = self.sleep, [HOLD]
        else:
            script, args = "/bin/sh", ["-c", shell(program)]
        apps = [{"name": f"p{i}", "script": script, "args": args, "interpreter": "none",
                 "autorestart": autorestart, "kill_timeout": int(self.grace * 1000),
                 "out_file": "/dev/null", "error_file": "/dev/null"} for i in range(n)]
        self.eco = os.path.join(d, "eco.json")
        with open(self.eco, "w") as f:
            json.dump({"apps": apps}, f)

    def programs(self) -> list[int]:
        return running_named(self.god, "sleep") if self.god else []

    def request_start(self) -> None:
        self.pm2("start", self.eco)

    def request_stop(self) -> None:
        self.pm2("delete", "all")

    def list_cmds(self) -> dict[str, tuple[list[str], dict[str, str]]]:
        return {"pm2 jlist": ([self.bin, "jlist"], self._env())}

    def daemon_mem(self) -> dict[str, Any]:
        return {"daemon": mem(self.god)}

    def shutdown(self) -> float:
        pids = [self.god] + descendants(self.god)
        t0 = now()
        self.pm2("kill", timeout=self.grace + 60)
        wait_until(lambda: not any(alive(p) for p in pids), 10, "every program gone")
        self.god = 0
        return now() - t0

    def _kill_daemon_of(self, home: str) -> Any:
        def kill() -> None:
            saved, self.home = self.home, home
            try:
                self._kill_daemon()
            finally:
                self.home = saved
        return kill

    def _kill_daemon(self) -> None:
        god = self._god()
        if god and alive(god):
            pids = [god] + descendants(god)
            try:
                subprocess.run([self.bin, "kill"], env=self._env(), capture_output=True, timeout=30)
            except subprocess.TimeoutExpired:
                pass
            for p in pids:
                if alive(p):
                    kill_tree(p)

    def teardown(self) -> None:
        if self.home and self.god:
            self._kill_daemon()
        self.god = 0


PEER = Pm2
