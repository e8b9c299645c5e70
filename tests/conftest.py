"""Fixtures for real-process tests: a temp data dir, a live `looop` tree, and
a leak check that fails the test if any process of the tree survives it."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import psutil
import pytest

BIN = str(Path(sys.executable).with_name("looop"))
if not os.access(BIN, os.X_OK):  # pragma: no cover - running from an odd venv
    BIN = shutil.which("looop") or BIN


def wait_until(cond: Callable[[], Any], timeout: float = 10.0, what: str = "condition") -> Any:
    """Poll `cond` every 20 ms until truthy; fail the test after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() >= deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.02)


def tree_processes(d: str) -> list[psutil.Process]:
    """Every process that belongs to the profile `d`: titled with it, or
    carrying LOOOP_DATA_DIR=d in its environment (worker commands and
    everything they started)."""
    found = []
    for p in psutil.process_iter(["cmdline", "environ", "status"]):
        try:
            if p.info["status"] == psutil.STATUS_ZOMBIE:
                continue
            cl = " ".join(x for x in (p.info["cmdline"] or []) if x)
            env = p.info["environ"] or {}
            if (cl.startswith("looop:") and cl.endswith(" " + d)) or env.get("LOOOP_DATA_DIR") == d:
                if p.pid != os.getpid():
                    found.append(p)
        except psutil.Error:
            continue
    return found


def alive(pid: int) -> bool:
    """Is `pid` a live process? A zombie is dead: it only waits for a reaper
    (an orphan's reaper may be a slow init in a container)."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def wait_gone(pids: list[int], timeout: float, what: str = "every pid gone") -> None:
    wait_until(lambda: not [p for p in pids if alive(p)], timeout,
               f"{what}: still alive {[p for p in pids if alive(p)]}")


def kill_tmux(*server: str, env: dict[str, str] | None = None) -> None:
    """Stop a test's tmux server (`server`: its -L/-S arguments) and wait
    until it and everything in its panes are gone: `kill-server` returns
    before the server exits, and the leak check that follows must not
    catch the panes' processes still dying (CI once did)."""
    def tmux(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["tmux", *server, *args], env=env, capture_output=True, text=True, timeout=10)
    try:
        procs = [psutil.Process(int(tmux("display-message", "-p", "#{pid}").stdout.strip()))]
        procs += procs[0].children(recursive=True)
    except (ValueError, psutil.Error):
        procs = []  # no server (never started, or already gone)
    tmux("kill-server")
    deadline = time.monotonic() + 5
    while (left := [p for p in procs if alive(p.pid)]) and time.monotonic() < deadline:
        time.sleep(0.02)
    for p in left:
        try:
            p.kill()
        except psutil.Error:
            pass
    if "-L" in server:
        path = os.path.join((env or os.environ).get("TMUX_TMPDIR") or "/tmp", f"tmux-{os.getuid()}",
                            server[server.index("-L") + 1])
        try:
            os.unlink(path)  # tmux leaves its socket file behind
        except FileNotFoundError:
            pass


def use_profile(mp: pytest.MonkeyPatch, d: str) -> str:
    """Point os.environ at the test profile `d` with fast knobs, through `mp`
    (undone with it).

    HOME is an empty dir next to d: every `bash -lc` of the tree (workers,
    runners) then reads no user profile — hermetic and fast, and no shared
    lock of this machine's profile (pyenv's rehash lock, held for a moment by
    every login shell) can be left stale by a test that SIGKILLs a worker
    mid-login, which would stall every login shell on the box for 60 s."""
    home = os.path.join(os.path.dirname(d), "home")
    os.makedirs(home, exist_ok=True)
    mp.setenv("HOME", home)
    mp.setenv("LOOOP_DATA_DIR", d)
    mp.setenv("LOOOP_SHUTDOWN_GRACE", "1")
    mp.setenv("LOOOP_INTERVAL", "3600")
    mp.setenv("LOOOP_TMUX_SURFACE", "0")
    mp.setenv("NO_COLOR", "1")
    mp.delenv("LOOOP_CONFIG", raising=False)
    mp.delenv("NOTIFY_SOCKET", raising=False)
    return d


def assert_no_leftovers(d: str) -> None:
    """Fail if any process of the profile `d` survived (and kill it)."""
    left = tree_processes(d)
    for p in left:
        try:
            p.kill()
        except psutil.Error:
            pass
    assert not left, f"processes of the tree survived the test: {[(p.pid, p.info['cmdline']) for p in left]}"


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    # the test's own `monkeypatch` (one undo stack with the test's changes)
    d = use_profile(monkeypatch, str(tmp_path / "data"))
    yield d
    assert_no_leftovers(d)


@pytest.fixture(scope="module")
def module_tree(tmp_path_factory: pytest.TempPathFactory) -> Iterator["Tree"]:
    """One tree shared by a module's tests (they must use distinct session ids)."""
    d = str(tmp_path_factory.mktemp("mod") / "data")
    with pytest.MonkeyPatch.context() as mp:
        use_profile(mp, d)
        t = Tree(d)
        yield t
        if t.proc.poll() is None:
            t.stop(signal.SIGTERM)
        else:
            t.out.close()
    assert_no_leftovers(d)


def run(*args: str, timeout: float = 30, check: bool = False, input: str | None = None,
        env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    r = subprocess.run([BIN, *args], capture_output=True, text=True, timeout=timeout,
                       input=input, env=env)
    if check and r.returncode != 0:
        pytest.fail(f"looop {' '.join(args)} exited {r.returncode}: {r.stderr.strip()}")
    return r


def ls(*extra: str) -> list[dict[str, Any]]:
    return json.loads(run("ls", "--json", *extra, check=True).stdout)


class Tree:
    """A running `looop` root in the test's data dir."""

    def __init__(self, d: str, args: tuple[str, ...] = (), env: dict[str, str] | None = None,
                 new_group: bool = False):
        """`new_group`: the root leads its own process group (and session),
        as in a terminal, so a test can signal the whole group like a tty does."""
        self.d = d
        os.makedirs(d, exist_ok=True)
        self.out_path = os.path.join(os.path.dirname(d), "root.out")
        self.out = open(self.out_path, "wb")
        self.proc = subprocess.Popen([BIN, *args], stdout=self.out, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, env=env, start_new_session=new_group)
        self.pid = self.proc.pid
        wait_until(self.pulse_running, 15, "the pulse to run")

    def pulse_running(self) -> dict[str, Any] | None:
        if self.proc.poll() is not None:
            pytest.fail(f"looop exited early ({self.proc.returncode}): {self.output()}")
        rows = [r for r in ls() if r["id"] == "pulse" and r["alive"] and r["state"] == "running"]
        return rows[0] if rows else None

    def output(self) -> str:
        with open(self.out_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def start(self, sid: str, script: str, **kw: Any) -> dict[str, Any]:
        run("start-session", sid, script, "--command", "bash {{prompt_file}}", check=True)
        return wait_until(lambda: next((r for r in ls() if r["id"] == sid and r["alive"]), None),
                          10, f"worker {sid} to be live")

    def pids(self) -> list[int]:
        """The root and everything below it, now."""
        try:
            root = psutil.Process(self.pid)
            return [self.pid] + [p.pid for p in root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        finally:
            self.out.close()


@pytest.fixture
def tree(data_dir: str):
    t = Tree(data_dir)
    yield t
    if t.proc.poll() is None:
        t.stop(signal.SIGTERM)
    else:
        t.out.close()
