"""Shared pieces of the fault tests (tests/faults/, marker `faults`): a
small tmpfs as the data dir (root only), a fast-beating tree, and polls."""
from __future__ import annotations

import os
import subprocess
from typing import Any, Iterator

import pytest

from conftest import ls


def need_root(why: str) -> None:
    if os.geteuid() != 0:
        pytest.skip(f"needs root: {why}")


@pytest.fixture
def tmpfs_data_dir(data_dir: str) -> Iterator[str]:
    """The test's data dir on a 2 MiB tmpfs (a disk that fills in a second)."""
    need_root("mounts a 2 MiB tmpfs to fill the disk")
    os.makedirs(data_dir, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m,mode=0700", "tmpfs", data_dir], check=True)
    try:
        yield data_dir
    finally:
        subprocess.run(["umount", "-l", data_dir], check=False)


def fast_env(**extra: str) -> dict[str, str]:
    return {**os.environ, "LOOOP_INTERVAL": "0.3", **extra}


def row(sid: str) -> dict[str, Any] | None:
    return next((r for r in ls() if r["id"] == sid), None)


def free_bytes(d: str) -> int:
    st = os.statvfs(d)
    return st.f_bavail * st.f_frsize


class Decoy:
    """A `sleep` that leads its own session and group, on a chosen pid."""

    def __init__(self, pid: int, proc: "subprocess.Popen | None"):
        self.pid, self.proc = pid, proc

    def alive(self) -> bool:
        if self.proc is not None:
            return self.proc.poll() is None
        try:
            with open(f"/proc/{self.pid}/stat") as f:
                return f.read().rsplit(")", 1)[1].split()[0] != "Z"
        except OSError:
            return False

    def kill(self) -> None:
        try:
            os.kill(self.pid, 9)
        except ProcessLookupError:
            pass
        if self.proc is not None:
            self.proc.wait()


def take_pid(pid: int, orphan: bool = False, tries: int = 20) -> Decoy | None:
    """Start a decoy on the freed `pid` via ns_last_pid (root). `orphan`: not
    our child (double fork), as a stranger's process would be. None if other
    forks on the machine kept winning the race."""
    env = {"PATH": os.environ["PATH"]}  # untagged: not a process of the tree
    for _ in range(tries):
        try:
            with open("/proc/sys/kernel/ns_last_pid", "w") as f:
                f.write(str(pid - (2 if orphan else 1)))
        except OSError:
            return None
        if orphan:
            out = subprocess.run(["sh", "-c", "setsid sleep 60 >/dev/null 2>&1 </dev/null & echo $!"],
                                 capture_output=True, text=True, env=env, timeout=10).stdout
            d = Decoy(int(out), None)
        else:
            p = subprocess.Popen(["sleep", "60"], start_new_session=True, env=env)
            d = Decoy(p.pid, p)
        if d.pid == pid:
            return d
        d.kill()
    return None


def gone(pid: int) -> bool:
    """No process (not even a zombie) holds `pid`: it is free for reuse."""
    return not os.path.exists(f"/proc/{pid}")
