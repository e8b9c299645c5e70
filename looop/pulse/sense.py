"""Sense: run every `sensors/*.sh` at once, each under a deadline and a size
cap, and leave the readings in `snapshots/` (wiped first: a reading is only
ever this beat's).

One selector loop over all the sensors' stdout pipes — no threads, so the
pulse stays single-threaded — then a bounded wait for their exits. A sensor
that overflows the cap is killed at once (its reading is already the error
object); one that outlives the deadline gets its group killed and exit 124.
"""
from __future__ import annotations

import os
import re
import selectors
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from typing import Any, Mapping

from looop.pulse import runner, stop
from looop.store import jsonio, space
from looop.store.atomic import write_atomic


@dataclass
class Reading:
    name: str
    code: int | None = None
    data: bytes = b""
    oversize: int = 0             # bytes seen when over the cap, else 0
    problem: str | None = None    # why it counts as failed
    cached: bool = False          # not run: its `looop:interval` reading is still fresh
    warning: str | None = None    # said once per process (e.g. not executable)

    @property
    def ok(self) -> bool:
        return self.problem is None


@dataclass
class _Run:
    reading: Reading
    proc: subprocess.Popen
    buf: bytearray = field(default_factory=bytearray)
    seen: int = 0


def list_sensors(d: str) -> list[str]:
    """Sensor names (file stems), sorted: `sensors/<name>.sh`."""
    try:
        names = os.listdir(os.path.join(d, "sensors"))
    except FileNotFoundError:
        return []
    return sorted(n[:-3] for n in names if n.endswith(".sh") and not n.startswith(".")
                  and os.path.isfile(os.path.join(d, "sensors", n)))


def snap_path(d: str, name: str, ext: str = "json") -> str:
    return os.path.join(d, "snapshots", f"sensor-{name}.{ext}")


_INTERVAL = re.compile(rb"^#\s*looop:interval=(\S+)\s*$", re.M)


def interval_of(d: str, name: str) -> float | None:
    """`# looop:interval=DUR` in the first 2 KiB of the script, in seconds."""
    from looop.pulse.goals import duration
    try:
        with open(os.path.join(d, "sensors", name + ".sh"), "rb") as f:
            m = _INTERVAL.search(f.read(2048))
    except OSError:
        return None
    return duration(m.group(1).decode("ascii", "replace")) if m else None


def _fresh(d: str, names: list[str], now: float) -> dict[str, tuple[bytes, float]]:
    """Readings of interval sensors whose snapshot is younger than their
    interval: kept (bytes, mtime) instead of running the sensor again."""
    keep = {}
    for n in names:
        every = interval_of(d, n)
        try:
            st = os.stat(snap_path(d, n))
            if every and now - st.st_mtime < every and not os.path.exists(snap_path(d, n, "err")):
                with open(snap_path(d, n), "rb") as f:
                    keep[n] = (f.read(), st.st_mtime)
        except OSError:
            continue
    return keep


def sense(d: str, env: Mapping[str, str], timeout: float, cap: int) -> list[Reading]:
    """Wipe snapshots/, run all sensors concurrently, write their readings.
    A sensor with `# looop:interval=DUR` whose last reading is younger than
    that is not run: its reading is kept.

    Blocks about max(sensor time) and never more than `timeout` + ~2 s."""
    snaps = os.path.join(d, "snapshots")
    names = list_sensors(d)
    keep = _fresh(d, names, time.time())
    shutil.rmtree(snaps, ignore_errors=True)
    os.makedirs(snaps, exist_ok=True)
    for n, (data, mtime) in keep.items():
        write_atomic(snap_path(d, n), data, fsync=False)
        os.utime(snap_path(d, n), (mtime, mtime))  # fresh until its interval is over
    runs = [_start(d, n, env) for n in names if n not in keep]
    _pump(runs, time.monotonic() + timeout, cap)
    for r in runs:
        _finish(d, r, cap)
    got = {r.reading.name: r.reading for r in runs}
    got.update({n: Reading(n, 0, data, cached=True) for n, (data, _m) in keep.items()})
    return [got[n] for n in names]


def last_readings(d: str) -> list[Reading]:
    """The readings the last beat left in snapshots/, without running any
    sensor (a dry run beside a live pulse must not touch its files)."""
    out = []
    for n in list_sensors(d):
        try:
            with open(snap_path(d, n), "rb") as f:
                out.append(Reading(n, 0, f.read(), cached=True))
        except OSError:
            out.append(Reading(n, None, b"", problem="no reading yet"))
    return out


_WARNED: set[str] = set()  # sensor paths already warned about (this process)


def _start(d: str, name: str, env: Mapping[str, str]) -> _Run:
    path = os.path.join(d, "sensors", name + ".sh")
    argv = [path] if os.access(path, os.X_OK) else ["bash", path]
    warning = None
    if len(argv) == 2 and path not in _WARNED:
        _WARNED.add(path)
        warning = f"sensor {name} is not executable: run with bash (chmod +x sensors/{name}.sh)"
    try:
        err: Any = open(snap_path(d, name, "err"), "wb")
    except OSError as e:  # a full disk: the sensor still runs, its stderr is dropped
        if not space.is_full(e):
            raise
        space.note(e)
        err = subprocess.DEVNULL
    try:
        proc = runner.spawn(argv, cwd=d, env=env, stdout=subprocess.PIPE, stderr=err)
    except OSError as e:  # e.g. a bad shebang: the sensor fails, the beat goes on
        if err is not subprocess.DEVNULL:
            space.tolerate(err.write, f"cannot start: {e}\n".encode())
        proc = runner.spawn(["false"], cwd=d, env=env, stdout=subprocess.PIPE)
    finally:
        if err is not subprocess.DEVNULL:
            space.tolerate(err.close)
    return _Run(Reading(name, warning=warning), proc)


def _pump(runs: list[_Run], deadline: float, cap: int) -> None:
    """Read every sensor's stdout until EOF, the cap, or the deadline.

    Each sensor's exit is watched too (a pidfd, on Linux): a sensor that
    leaves a background child holding its stdout would otherwise keep the
    beat waiting until the deadline. When the leader exits, what it wrote is
    drained and the pipe is closed; the group is killed in `_finish`."""
    sel = selectors.DefaultSelector()
    for r in runs:
        assert r.proc.stdout is not None
        os.set_blocking(r.proc.stdout.fileno(), False)
        sel.register(r.proc.stdout.fileno(), selectors.EVENT_READ, ("out", r))
        pidfd = runner._pidfd(r.proc.pid)
        if pidfd is not None:
            sel.register(pidfd, selectors.EVENT_READ, ("exit", r))
    if stop.fd() is not None:  # a stop ends the wait (stop.check below raises)
        sel.register(stop.fd(), selectors.EVENT_READ, ("stop", None))
    try:
        while any(kind == "out" for kind, _ in (k.data for k in sel.get_map().values())):
            left = deadline - time.monotonic()
            if left <= 0:
                break
            ready = sel.select(left)
            stop.check()
            for key, _ in ready:
                if sel.get_map().get(key.fd) is not key:
                    continue  # an earlier key of this batch (its exit) already closed it
                kind, r = key.data
                if kind == "exit":
                    sel.unregister(key.fd)
                    os.close(key.fd)
                    _drain(sel, r, cap)
                elif not _read(r, key.fd, cap):
                    sel.unregister(key.fd)
                    if r.seen > cap:
                        runner.kill_group(r.proc, 0)
        for r in runs:  # pipes closed; the processes get what is left of the deadline
            runner.wait_exit(r.proc, max(0.0, deadline - time.monotonic()))  # (not reaped)
    finally:
        for key in list(sel.get_map().values()):
            if key.data[0] == "exit":
                os.close(key.fd)
        sel.close()


def _read(r: _Run, fd: int, cap: int) -> bool:
    """One read; False at EOF or once over the cap (stop reading)."""
    try:
        chunk = os.read(fd, 1 << 16)
    except BlockingIOError:
        return True
    r.seen += len(chunk)
    if chunk and r.seen <= cap:
        r.buf += chunk
    return bool(chunk) and r.seen <= cap


def _drain(sel: selectors.BaseSelector, r: _Run, cap: int) -> None:
    """The leader exited: take what is already in its pipe, then stop."""
    assert r.proc.stdout is not None
    fd = r.proc.stdout.fileno()
    if fd not in sel.get_map():
        return
    while True:
        before = r.seen
        if not _read(r, fd, cap) or r.seen == before:
            break
    sel.unregister(fd)


def _finish(d: str, r: _Run, cap: int) -> None:
    rd = r.reading
    assert r.proc.stdout is not None
    timed_out = not runner.exited(r.proc)
    runner.kill_group(r.proc, 0)  # reaps the leader, after its group
    r.proc.stdout.close()
    rd.code = 124 if timed_out else r.proc.returncode
    err = snap_path(d, rd.name, "err")
    if timed_out:
        space.tolerate(_append, err, b"looop: sensor timed out (exit 124)\n")
        rd.problem = "timed out"
    if r.seen > cap:
        rd.oversize = r.seen
        # the hash reads only `signal` (stable), so how far over the cap a
        # sensor went this beat cannot change the world
        rd.data = jsonio.dumpb({"signal": {"error": "sensor output too large", "cap": cap},
                                "error": "sensor output too large", "bytes": r.seen, "cap": cap})
        rd.problem = rd.problem or f"output over {cap} bytes"
    else:
        rd.data = bytes(r.buf)
        if rd.problem is None and rd.code != 0:
            rd.problem = f"exit {rd.code}"
        elif rd.problem is None and not _is_object(rd.data):
            rd.problem = "not one JSON object"
    space.tolerate(write_atomic, snap_path(d, rd.name), rd.data, fsync=False)  # the reading is in memory
    if os.path.exists(err) and os.path.getsize(err) == 0:
        os.unlink(err)


def _append(path: str, data: bytes) -> None:
    with open(path, "ab") as f:
        f.write(data)


def _is_object(data: bytes) -> bool:
    try:
        return isinstance(jsonio.loads(data), dict)
    except ValueError:
        return False


def summary(readings: list[Reading], secs: float) -> str:
    """`N sensors ok (Xs)` or `k/N sensors ok · failed: a (why), b (why)`:
    the reason in the line a human reads, not only in snapshots/*.err."""
    n = len(readings)
    bad = [f"{r.name} ({r.problem})" for r in readings if not r.ok]
    if not bad:
        return f"{n} sensors ok ({secs:.1f}s)"
    return f"{n - len(bad)}/{n} sensors ok · failed: {', '.join(bad)} ({secs:.1f}s)"
