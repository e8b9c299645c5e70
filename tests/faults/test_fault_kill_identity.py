"""Item 2: no signal reaches a process looop did not start. A decoy that
takes the pid of a reaped sensor (or runner) leader, as a group leader of its
own, must survive the group kill that follows."""
from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from conftest import BIN, wait_until
from fakes import sensor, setup_fake
from faultkit import gone, need_root, take_pid

from looop.pulse import runner

pytestmark = pytest.mark.faults


def test_a_decoy_on_a_finished_sensors_pid_survives_the_beat(data_dir, tmp_path):
    need_root("takes a freed pid through /proc/sys/kernel/ns_last_pid")
    d = data_dir
    setup_fake(d, str(tmp_path / "ctl"))
    pidfile = str(tmp_path / "fast.pid")
    sensor(d, "fast", f"echo $$ > {pidfile}; echo '{{}}'")
    # done with its stdout but still running: holds the beat in the waits after
    # the pipes closed, the window of the bug
    sensor(d, "slow", "echo '{}'; exec >&-; sleep 3")
    tick = subprocess.Popen([BIN, "tick"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    decoy = None
    try:
        pid = int(wait_until(lambda: os.path.exists(pidfile) and open(pidfile).read().strip(), 10,
                             "the fast sensor's pid"))
        # (with the fix the pid is freed only once its group was killed, at ~3 s)
        wait_until(lambda: gone(pid), 8, "the fast sensor reaped")
        decoy = take_pid(pid)
        if decoy is None:
            pytest.skip("could not take the freed pid (a busy machine kept forking)")
        out, _ = tick.communicate(timeout=20)
        time.sleep(0.2)
        assert decoy.alive(), f"the decoy on pid {pid} was killed by the beat: {out!r}"
        print(f"decoy on the fast sensor's pid {pid} alive after the beat")
    finally:
        if tick.poll() is None:
            tick.kill()
            tick.wait()
        if decoy is not None:
            decoy.kill()


def test_kill_group_after_the_leader_was_reaped_spares_a_decoy():
    """run_logged and rules reap their command, then kill its group."""
    need_root("takes a freed pid through /proc/sys/kernel/ns_last_pid")
    proc = runner.spawn([sys.executable, "-c", "pass"], cwd="/", env=os.environ)
    proc.wait(10)  # reaped: the pid is free
    decoy = take_pid(proc.pid, orphan=True)
    if decoy is None:
        pytest.skip("could not take the freed pid (a busy machine kept forking)")
    try:
        runner.kill_group(proc, 0.1)
        time.sleep(0.1)
        assert decoy.alive(), "kill_group signalled a group it no longer owned"
    finally:
        decoy.kill()


def test_kill_group_still_kills_a_live_groups_members():
    proc = runner.spawn(["bash", "-c", "sleep 60 & echo $!; wait"], cwd="/", env=os.environ,
                        stdout=subprocess.PIPE)
    member = int(proc.stdout.readline())
    runner.kill_group(proc, 0.5)
    proc.stdout.close()
    wait_until(lambda: gone(member) or open(f"/proc/{member}/stat").read().split()[2] == "Z",
               3, "the background member killed")
