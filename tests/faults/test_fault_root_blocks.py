"""Items 5 and 9: the single-threaded root never blocks. A child that does not
read its link (busy, deaf or SIGSTOPped), a client that does not read, or
running out of fds slows nobody else; any request gets a reply."""
from __future__ import annotations

import json
import os
import resource
import signal
import socket
import threading
import time

import psutil
import pytest

from conftest import wait_until
from faultkit import row

from looop.errors import LooopError
from looop.store import paths
from looop.tree import control

pytestmark = pytest.mark.faults
MB = 1_000_000


def big_send(d: str, sid: str) -> threading.Thread:
    """A 1 MB `input` request in the background (a thread of the test)."""
    def go() -> None:
        try:
            control.call(d, "input", timeout=30, id=sid, data="y" * MB)
        except LooopError:
            pass  # refused or timed out: fine, it only has to be in flight
    t = threading.Thread(target=go, daemon=True)
    t.start()
    return t


def timed_send(d: str, sid: str) -> float:
    t0 = time.monotonic()
    control.call(d, "input", timeout=10, id=sid, data="ping\r")
    return time.monotonic() - t0


def test_a_deaf_or_stopped_worker_never_slows_a_send_to_another(tree):
    d = tree.d
    tree.start("deaf", "exec sleep 600")   # never reads its tty: input backs up
    tree.start("ok", "exec cat")
    senders = [big_send(d, "deaf"), big_send(d, "deaf")]
    time.sleep(0.5)  # both in flight
    first = timed_send(d, "ok")
    child = row("deaf")["child_pid"]
    os.kill(child, signal.SIGSTOP)
    try:
        senders += [big_send(d, "deaf"), big_send(d, "deaf")]
        time.sleep(0.5)
        second = timed_send(d, "ok")
        assert first <= 1.0 and second <= 1.0, (first, second)
        t0 = time.monotonic()
        code = tree.stop(signal.SIGTERM, timeout=15)
        took = time.monotonic() - t0
    finally:
        try:
            os.kill(child, signal.SIGCONT)
        except ProcessLookupError:
            pass
    assert code == 0
    assert took <= 1 + 2 + 1, f"SIGTERM stop took {took:.1f}s with a SIGSTOPped child (grace 1 s)"
    print(f"send to another worker: {first:.3f}s (deaf), {second:.3f}s (stopped); stop {took:.2f}s")


def test_root_cpu_stays_low_with_1100_idle_connections_over_its_fd_limit(tree):
    resource.prlimit(tree.pid, resource.RLIMIT_NOFILE, (1024, 1024))
    path = paths.socket_path(tree.d)
    socks, refused = [], 0
    try:
        while len(socks) < 1100:
            s = _connect(path, patience=2.0)
            if s is None:  # the backlog stayed full: the root is not accepting
                refused = 1100 - len(socks)
                break
            socks.append(s)
        root = psutil.Process(tree.pid)
        wait_until(lambda: len(os.listdir(f"/proc/{tree.pid}/fd")) >= 1000, 10,
                   f"the root at its fd limit ({len(socks)} connected, {refused} refused, "
                   f"{len(os.listdir(f'/proc/{tree.pid}/fd'))} fds)")
        c0, t0 = sum(root.cpu_times()[:2]), time.monotonic()
        time.sleep(2.0)
        cpu = (sum(root.cpu_times()[:2]) - c0) / (time.monotonic() - t0)
        assert cpu < 0.10, f"root CPU {cpu:.0%} with {len(socks)} idle connections at its fd limit"
        # keeps serving: a connection it accepted still gets answers
        s = socks[0]
        s.setblocking(True)
        s.settimeout(5)
        s.sendall(b'{"op": "ping"}\n')
        assert json.loads(s.recv(65536).split(b"\n")[0])["ok"] is True
    finally:
        for s in socks:
            s.close()
    # room again: new clients are accepted
    wait_until(lambda: _pings(tree.d), 10, "a new connection served once fds are free")
    print(f"root CPU {cpu:.1%} with {len(socks)} connections ({refused} past the backlog)")


def _connect(path: str, patience: float) -> socket.socket | None:
    """A connection, retried while the listener's backlog is full (a
    non-blocking AF_UNIX connect says EAGAIN then) for up to `patience`."""
    deadline = time.monotonic() + patience
    while True:
        s = socket.socket(socket.AF_UNIX)
        s.setblocking(False)
        try:
            s.connect(path)
            return s
        except BlockingIOError:
            s.close()
        if time.monotonic() > deadline:
            return None
        time.sleep(0.005)


def _pings(d: str) -> bool:
    try:
        return control.call(d, "ping", timeout=2)["ok"]
    except LooopError:
        return False


def test_a_request_over_the_line_limit_gets_a_clear_reply(tree):
    tree.start("w", "exec cat")
    with pytest.raises(LooopError, match=r"request too large \(over 1 MiB\)"):
        control.call(tree.d, "input", timeout=20, id="w", data="z" * (2 << 20))
    assert control.call(tree.d, "ping")["ok"]  # and the root is fine
