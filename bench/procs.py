"""Process plumbing for the bench: a registry of everything started, /proc
helpers, polling with deadlines, and the final sweep.

Every process the bench starts carries LOOOP_BENCH_TAG=<tag> in its
environment and/or runs under the run's temp dir, so the final sweep can find
anything a peer left behind even when its daemon died mid-figure. looop's own
processes wipe their environ (setproctitle), but their titles name the data
dir, which lives under the temp dir.
"""
from __future__ import annotations

import os
import signal
import subprocess
import time
from typing import Any, Callable, Sequence

import psutil


class FigureFailed(Exception):
    """A figure could not be measured (peer crashed, hung, lost bytes)."""


def now() -> float:
    return time.perf_counter()


def wait_until(cond: Callable[[], Any], timeout: float, what: str, poll: float = 0.001) -> Any:
    """Poll `cond` every `poll` s until truthy; FigureFailed after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() >= deadline:
            raise FigureFailed(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(poll)


def children(pid: int) -> list[int]:
    """Direct children of pid, from /proc/<pid>/task/*/children (cheap, no scan)."""
    out: list[int] = []
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            try:
                with open(f"/proc/{pid}/task/{tid}/children") as f:
                    out += [int(x) for x in f.read().split()]
            except OSError:
                continue
    except OSError:
        pass
    return out


def descendants(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        for c in children(todo.pop()):
            out.append(c)
            todo.append(c)
    return out


def comm(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return ""


def cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode("utf-8", "replace").strip()
    except OSError:
        return ""


def alive(pid: int) -> bool:
    """Exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def running_named(pid: int, name: str) -> list[int]:
    """Descendants of pid whose comm is `name` (and not zombies)."""
    return [p for p in descendants(pid) if comm(p) == name and alive(p)]


def mem(pid: int) -> dict[str, int]:
    """USS, PSS and RSS in bytes (smaps_rollup)."""
    m = psutil.Process(pid).memory_full_info()
    return {"uss": m.uss, "pss": m.pss, "rss": m.rss}


def timed(argv: Sequence[str], env: dict[str, str] | None = None, timeout: float = 30,
          cwd: str | None = None) -> tuple[float, subprocess.CompletedProcess]:
    """Run argv to completion; (wall seconds, result). FigureFailed on a
    non-zero exit or a timeout."""
    t0 = now()
    try:
        r = subprocess.run(list(argv), env=env, cwd=cwd, stdin=subprocess.DEVNULL,
                           capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise FigureFailed(f"{argv[0]} hung (> {timeout:g}s)") from None
    dt = now() - t0
    if r.returncode != 0:
        err = (r.stderr or r.stdout).decode("utf-8", "replace").strip().splitlines()
        raise FigureFailed(f"{os.path.basename(argv[0])} exited {r.returncode}: {err[-1] if err else ''}")
    return dt, r


class Registry:
    """Everything the bench started, stopped in reverse order at the end of
    each figure (and again, to be sure, at the end of the run)."""

    def __init__(self, tag: str, tmp: str, nofile: int | None = None):
        self.tag, self.tmp = tag, tmp
        self.nofile = nofile  # RLIMIT_NOFILE for every daemon started (a box that cannot hold N)
        self.home = os.path.join(tmp, "home")
        os.makedirs(self.home, exist_ok=True)
        self.popens: list[subprocess.Popen] = []
        self.cleanups: list[tuple[str, Callable[[], None]]] = []
        self.notes: list[str] = []  # what the per-figure sweeps had to kill

    def env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        """The environment of everything the bench starts: tagged, and with a
        clean HOME so a `bash -l` sources no user dotfiles (see README)."""
        e = dict(os.environ)
        e["LOOOP_BENCH_TAG"] = self.tag
        e["HOME"] = self.home
        e.update(extra or {})
        return e

    def popen(self, argv: Sequence[str], **kw: Any) -> subprocess.Popen:
        if self.nofile:
            kw.setdefault("preexec_fn", self.limit)
        p = subprocess.Popen(list(argv), **kw)
        self.popens.append(p)
        return p

    def limit(self) -> None:
        """preexec: the lowered limits of --limit-nofile."""
        import resource
        if self.nofile:
            resource.setrlimit(resource.RLIMIT_NOFILE, (self.nofile, self.nofile))

    def on_teardown(self, what: str, fn: Callable[[], None]) -> None:
        self.cleanups.append((what, fn))

    def teardown(self) -> list[str]:
        """Run cleanups (newest first), kill every Popen and its descendants,
        then sweep by tag/temp dir. Returns a note per thing that had to be killed."""
        notes: list[str] = []
        while self.cleanups:
            what, fn = self.cleanups.pop()
            try:
                fn()
            except Exception as e:  # a cleanup failing must not stop the others
                notes.append(f"cleanup {what} failed: {e}")
        while self.popens:
            p = self.popens.pop()
            if p.poll() is None:
                kill_tree(p.pid)
                try:
                    p.wait(5)
                except subprocess.TimeoutExpired:
                    notes.append(f"pid {p.pid} would not die")
        return self.notes + notes + sweep(self.tag, self.tmp)


def kill_tree(pid: int, sig: int = signal.SIGKILL) -> None:
    for p in [pid] + descendants(pid):
        try:
            os.kill(p, sig)
        except OSError:
            pass


def leftovers(tag: str, tmp: str) -> list[psutil.Process]:
    """Live processes that belong to this run: tagged env, or the temp dir in
    their command line (looop titles carry the data dir)."""
    mine = {os.getpid()} | {a.pid for a in psutil.Process().parents()}
    found = []
    for p in psutil.process_iter(["cmdline", "environ", "status"]):
        try:
            if p.pid in mine or p.info["status"] == psutil.STATUS_ZOMBIE:
                continue
            cl = " ".join(p.info["cmdline"] or [])
            env = p.info["environ"] or {}
            if env.get("LOOOP_BENCH_TAG") == tag or (tmp and tmp in cl):
                found.append(p)
        except psutil.Error:
            continue
    return found


def sweep(tag: str, tmp: str) -> list[str]:
    notes = []
    for p in leftovers(tag, tmp):
        try:
            notes.append(f"swept pid {p.pid}: {' '.join(p.cmdline())[:80]}")
            p.kill()
        except psutil.Error:
            pass
    if notes:
        time.sleep(0.2)
    return notes


def request_all(sock: Any, ops: Sequence[dict]) -> list[dict]:
    """Every op to the control socket in one sendall (as a script would
    pipeline them), then one JSON reply per op."""
    import json
    sock.sendall(b"".join(json.dumps(o).encode() + b"\n" for o in ops))
    buf, replies = b"", []
    while len(replies) < len(ops):
        chunk = sock.recv(1 << 16)
        if not chunk:
            raise FigureFailed(f"root closed the socket after {len(replies)} of {len(ops)} replies")
        buf += chunk
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            replies.append(json.loads(line))
    return replies


def cpu_wakes(pid: int) -> tuple[int, int]:
    """(ns on CPU, times scheduled in) summed over the process's threads,
    from /proc/<pid>/task/*/schedstat (ns precise, unlike the 10 ms ticks of
    /proc/<pid>/stat); (0, 0) once it is gone."""
    ns = runs = 0
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return 0, 0
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                v = f.read().split()
            ns, runs = ns + int(v[0]), runs + int(v[2])
        except (OSError, ValueError, IndexError):
            continue
    return ns, runs


def tree_parts(root: int, worker_commands: bool = False) -> dict[str, list[int]]:
    """A looop tree's processes by part: the root, its worker children, the
    pulse child, the pulse's command and whatever that runs — and, if asked,
    the workers' commands (the user's programs, not looop's)."""
    parts: dict[str, list[int]] = {"root": [root], "worker children": [], "pulse child": [],
                                   "pulse command": []}
    if worker_commands:
        parts["worker commands"] = []
    for c in children(root):
        cl = cmdline(c)
        if cl.startswith("looop: pulse"):
            parts["pulse child"].append(c)
            parts["pulse command"] += descendants(c)
        elif cl.startswith("looop: worker"):
            parts["worker children"].append(c)
            if worker_commands:
                parts["worker commands"] += descendants(c)
    return parts
