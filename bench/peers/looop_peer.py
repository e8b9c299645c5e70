"""looop itself: a foreground root per data dir, driven through its control
socket (start/kill) and its CLI (ls, prune, tick).

What is timed:
- start N (daemon up): one connection to <data>/.looop.sock, N `start`
  requests written with one sendall, then read N replies (each comes once
  that worker's PTY command runs), then every reply's pid is checked in
  /proc to be running `sleep`. Clock: before sendall → last pid seen.
- stop: SIGINT to the root's process group (what a terminal Ctrl-C does;
  the bench starts the root in its own session) → root reaped and every pid
  of the tree (children and PTY commands) gone.
- restart: SIGKILL the pulse child → a new child of the root titled
  `looop: pulse [running]`.
- capture: start request → output.log holds the expected byte count, then
  the worker has exited and the bytes are checked by sha256.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from typing import Any

from peers.base import Peer, Skip, check_bytes, expected, shell
from procs import FigureFailed, alive, children, cmdline, comm, mem, now, request_all, wait_until


def looop_bin() -> str:
    here = os.path.join(os.path.dirname(sys.executable), "looop")
    return here if os.access(here, os.X_OK) else (shutil.which("looop") or "looop")


def interpreter(bin_path: str) -> str:
    """The python behind the looop script (its shebang), for the floors."""
    try:
        with open(bin_path, "rb") as f:
            first = f.readline().decode().strip()
        if first.startswith("#!") and os.access(first[2:].split()[0], os.X_OK):
            return first[2:].split()[0]
    except OSError:
        pass
    return sys.executable


class Looop(Peer):
    name = "looop"
    supports = frozenset({"list", "start", "cold", "stop", "memory", "restart", "capture", "pulse"})

    def __init__(self, *a: Any, **kw: Any):
        super().__init__(*a, **kw)
        self.bin = looop_bin()
        self.py = interpreter(self.bin)
        self.proc: subprocess.Popen | None = None
        self.d = ""
        self.n = 0
        self.program = "sleep"
        self.live: dict[str, int] = {}   # id -> PTY command pid
        self.rep = 0
        self.out_path = ""

    def install(self) -> None:
        r = subprocess.run([self.bin, "version"], capture_output=True, text=True)
        if r.returncode != 0:
            raise Skip(f"`looop version` failed: {r.stderr.strip()}")
        self.version = r.stdout.strip().split()[-1]
        self.bytecode = self.compile()

    def compile(self) -> str:
        """Write looop's .pyc files, as `pip install` does for every package:
        an editable checkout run under PYTHONDONTWRITEBYTECODE=1 (this box's
        environment) has none, and every CLI start then compiles each looop
        module again (~20 ms of `looop send`, measured), while the floors'
        psutil was compiled at install. compileall writes regardless of that
        variable; an unwritable tree is left as it is (and said)."""
        code = ("import compileall, os, sys, looop; d = os.path.dirname(looop.__file__); "
                "print(d); sys.exit(0 if compileall.compile_dir(d, quiet=1) else 1)")
        r = subprocess.run([self.py, "-c", code], capture_output=True, text=True, timeout=300)
        where = r.stdout.strip().splitlines()[0] if r.stdout.strip() else "?"
        return f"compiled in {where}" if r.returncode == 0 else f"not compiled ({where}): {r.stderr.strip()[-200:]}"

    def env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        return self.reg.env({"LOOOP_DATA_DIR": self.d, "LOOOP_SHUTDOWN_GRACE": f"{self.grace:g}",
                             "LOOOP_INTERVAL": "3600", "LOOOP_LOG_MAX_BYTES": "0",
                             "LOOOP_RESTART_MAX": "100000", "LOOOP_TMUX_SURFACE": "0",
                             "LOOOP_MAX_WORKERS": "0",
                             "NO_COLOR": "1", **(extra or {})})

    # -- the tree -----------------------------------------------------------

    def boot(self, n: int = 0, program: str = "sleep", autorestart: bool = False,
             data_dir: str | None = None) -> float:
        """Start a root on a fresh data dir; returns exec → pulse running."""
        self.teardown()
        self.d = data_dir or self.fresh_dir("data")
        self.n, self.program, self.live = n, program, {}
        self.out_path = os.path.join(self.tmp, os.path.basename(self.d) + ".root.out")
        out = open(self.out_path, "wb")
        t0 = now()
        self.proc = self.reg.popen([self.bin], env=self.env(), stdout=out, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, start_new_session=True)
        out.close()
        self.wait_pulse(exclude=0, timeout=30)
        return now() - t0

    def pulse_child(self) -> int:
        assert self.proc is not None
        for c in children(self.proc.pid):
            if cmdline(c).startswith("looop: pulse [running]"):
                return c
        return 0

    def wait_pulse(self, exclude: int, timeout: float) -> int:
        def up() -> int:
            if self.proc is None or self.proc.poll() is not None:
                raise FigureFailed(f"looop root exited ({self.proc.returncode if self.proc else '?'})"
                                   f": {self.root_out()}")
            p = self.pulse_child()
            return p if p and p != exclude else 0
        try:
            return wait_until(up, timeout, "the pulse to run")
        except FigureFailed as e:
            kids = [cmdline(c)[:60] for c in children(self.proc.pid)] if self.proc else []
            raise FigureFailed(f"{e}; root's children: {kids}; root said: {self.root_out()}") from None

    def root_out(self) -> str:
        try:
            with open(self.out_path, "rb") as f:
                return " / ".join(f.read().decode("utf-8", "replace").strip().splitlines()[-3:])
        except OSError:
            return ""

    def tree_pids(self) -> list[int]:
        from procs import descendants
        return [self.proc.pid] + descendants(self.proc.pid) if self.proc else []

    def _requests(self, ops: list[dict[str, Any]], timeout: float = 120) -> list[dict[str, Any]]:
        """Send every request on one connection with one sendall; read as
        many reply lines."""
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(timeout)
        try:
            s.connect(os.path.join(self.d, ".looop.sock"))
            return request_all(s, ops)
        except socket.timeout:
            raise FigureFailed("control socket: no reply in time") from None
        finally:
            s.close()

    def start_ids(self, ids: list[str], script: str) -> dict[str, int]:
        replies = self._requests([{"op": "start", "id": i, "prompt": script,
                                   "command": "bash {{prompt_file}}"} for i in ids])
        bad = [r for r in replies if not r.get("ok")]
        if bad:  # (replies come as each start ends: a refusal comes first)
            raise FigureFailed(f"{len(bad)} of {len(ids)} starts refused ({len(ids) - len(bad)} "
                               f"started); first: {bad[0].get('error')}")
        return {r["id"]: r["pid"] for r in replies}

    def start_all(self) -> float:
        self.rep += 1
        ids = [f"r{self.rep}w{i}" for i in range(self.n)]
        t0 = now()
        pids = self.start_ids(ids, shell(self.program))
        wait_until(lambda: all(comm(p) == "sleep" for p in pids.values()), 30, "sleep in /proc")
        dt = now() - t0
        self.live.update(pids)
        return dt

    def stop_programs(self) -> None:
        ids = list(self.live)
        if ids:
            before = {c for c in children(self.proc.pid) if cmdline(c).startswith("looop: worker")}
            self._requests([{"op": "kill", "id": i} for i in ids])
            wait_until(lambda: not any(alive(p) for p in list(self.live.values()) + list(before)),
                       self.grace + 10, "killed workers to go")
        self.live = {}
        subprocess.run([self.bin, "prune"], env=self.env(), capture_output=True, timeout=30)

    def list_cmds(self) -> dict[str, tuple[list[str], dict[str, str]]]:
        e = self.env()
        return {"looop ls": ([self.bin, "ls"], e), "looop ls --json": ([self.bin, "ls", "--json"], e)}

    def floors(self) -> dict[str, tuple[list[str], dict[str, str]]]:
        e = self.reg.env()
        return {"python -c pass": ([self.py, "-c", "pass"], e),
                "python -c 'import psutil'": ([self.py, "-c", "import psutil"], e)}

    def daemon_mem(self) -> dict[str, Any]:
        """USS/PSS of looop's own processes: root, pulse child, the pulse's
        PTY command (`python -m looop _pulse`), each worker child."""
        assert self.proc is not None
        root = self.proc.pid
        out: dict[str, Any] = {"root": mem(root), "workers": []}
        for c in children(root):
            cl = cmdline(c)
            if cl.startswith("looop: pulse"):
                out["pulse_child"] = mem(c)
                cmd = children(c)
                if cmd:
                    out["pulse_cmd"] = mem(cmd[0])
            elif cl.startswith("looop: worker"):
                out["workers"].append(mem(c))
        return out

    def shutdown(self) -> float:
        assert self.proc is not None
        pids = self.tree_pids()
        t0 = now()
        os.killpg(self.proc.pid, signal.SIGINT)
        deadline = self.grace + 10
        try:
            code = self.proc.wait(deadline)
        except subprocess.TimeoutExpired:
            raise FigureFailed(f"root still up {deadline:g}s after Ctrl-C") from None
        wait_until(lambda: not any(alive(p) for p in pids), 10, "every pid of the tree gone")
        dt = now() - t0
        if code != 0:
            raise FigureFailed(f"root exited {code} after Ctrl-C")
        self.proc = None
        return dt

    def restart_rep(self) -> float:
        old = self.pulse_child()
        if not old:
            raise FigureFailed("no running pulse to kill")
        t0 = now()
        os.kill(old, signal.SIGKILL)
        self.wait_pulse(exclude=old, timeout=10)
        dt = now() - t0
        # let the new pulse's command finish starting before the next kill
        wait_until(lambda: children(self.pulse_child() or 1), 10, "the new pulse command")
        time.sleep(0.3)
        return dt

    def capture(self, program: str, size: int) -> float:
        if self.proc is None or self.proc.poll() is not None:
            self.boot(0)
        self.rep += 1
        sid = f"cap{self.rep}"
        log = os.path.join(self.d, "sessions", sid, "output.log")
        want, _ = expected(program, size, pty=True)
        t0 = now()
        self.start_ids([sid], shell(program, size))
        wait_until(lambda: os.path.exists(log) and os.path.getsize(log) >= want, 900,
                   f"{want} bytes in output.log", poll=0.005)
        dt = now() - t0
        status = os.path.join(self.d, "sessions", sid, "status.json")

        def exited() -> bool:
            try:
                with open(status) as f:
                    return json.load(f).get("state") in ("exited", "killed", "dead")
            except (OSError, ValueError):
                return False
        wait_until(exited, 30, "the capture worker to exit", poll=0.01)
        if os.path.getsize(log) != want:
            raise FigureFailed(f"output.log has {os.path.getsize(log)} bytes, want {want}")
        try:
            check_bytes(log, program, size, pty=True)
        finally:
            os.unlink(log)
        return dt

    def tick(self) -> tuple[float, subprocess.CompletedProcess]:
        """`looop tick` against self.d (no root running)."""
        from procs import timed
        return timed([self.bin, "tick"], env=self.env(), timeout=120)

    def teardown(self) -> None:
        p, self.proc = self.proc, None
        if p is None or p.poll() is not None:
            return
        pids = [p.pid] + __import__("procs").descendants(p.pid)
        try:
            os.killpg(p.pid, signal.SIGTERM)
            p.wait(self.grace + 5)
        except (OSError, subprocess.TimeoutExpired):
            pass
        for q in pids:
            try:
                os.kill(q, signal.SIGKILL)
            except OSError:
                pass
        try:
            p.wait(5)
        except subprocess.TimeoutExpired:
            pass
