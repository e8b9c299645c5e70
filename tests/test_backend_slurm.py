"""Slurm workers against a real single-node Slurm (.ci/engines.sh: munged,
slurmctld, slurmd on this host). Jobs are found in `squeue --me` by the
data dir's hash; nothing of a test may stay listed."""
from __future__ import annotations

import json
import os
import signal
import subprocess

import psutil
import pytest

from conftest import Tree, ls, run, wait_until
from looop.tree.backends import data_dir_hash

pytestmark = pytest.mark.skipif(not os.environ.get("LOOOP_TEST_SLURM"),
                                reason="no Slurm to test against (LOOOP_TEST_SLURM unset: run .ci/engines.sh start)")

READY = 'trap "echo trapped; exit 143" TERM; echo ready; '


def jobs(d: str) -> list[str]:
    """This user's job ids named for data dir `d`."""
    # squeue fails now and then on a loaded box (slurmctld slow to answer):
    # an empty stdout then is not "no jobs"
    out = wait_until(lambda: (r := subprocess.run(["squeue", "--me", "-h", "-o", "%i %j"], capture_output=True,
                                                  text=True, timeout=10)).returncode == 0 and [r.stdout],
                     30, "squeue to answer")[0]
    h = data_dir_hash(d)
    return [ln.split()[0] for ln in out.splitlines() if ln.split()[-1].endswith("-" + h)]


def job_procs(d: str) -> list[int]:
    """Processes of this data dir's Slurm jobs on this host (the node): the
    job's environment names it (SLURM_JOB_NAME=looop-<sid>-<h>)."""
    tail = "-" + data_dir_hash(d)
    out = []
    for p in psutil.process_iter(["environ", "status"]):
        if ((p.info.get("environ") or {}).get("SLURM_JOB_NAME") or "").endswith(tail) \
                and p.info["status"] != psutil.STATUS_ZOMBIE:
            out.append(p.pid)
    return out


@pytest.fixture
def slurm_dir(data_dir):
    os.makedirs(data_dir, exist_ok=True)
    cfg = {"default": "rules",
           "runners": {"hpc": {"interactive": "bash {{prompt_file}}", "tick": '"$LOOOP_BIN" _rules',
                               "backend": {"kind": "slurm", "partition": "debug", "time": "10"}}}}
    with open(os.path.join(data_dir, "looop.json"), "w") as f:
        json.dump(cfg, f)
    yield data_dir
    left = jobs(data_dir)
    if left:
        subprocess.run(["scancel", *left], timeout=10)
    assert not left, f"Slurm jobs survived the test: {left}"


def start(sid: str, script: str) -> dict:
    run("start-session", sid, script, "hpc", check=True, timeout=60)
    return wait_until(lambda: next((r for r in ls() if r["id"] == sid and r["alive"]
                                    and (r["remote"] or {}).get("id")), None),
                      20, f"worker {sid} running with its job id")


def expect(sid: str, regex: str, timeout: str = "15s") -> None:
    r = run("expect", sid, regex, "--timeout", timeout, timeout=40)
    assert r.returncode == 0, (r.stderr, run("log", sid).stdout[-2000:])


def test_every_verb_through_a_slurm_worker(slurm_dir):
    """ls WHERE slurm:<job>, send, shot, resize (stty size in the job
    follows), wait (the job's exit code), kill = scancel --signal=TERM: the
    trap runs, 143 (srun alone would turn TERM into SIGKILL: 137)."""
    t = Tree(slurm_dir)
    try:
        row = start("s1", READY + 'while read -r l; do echo "got:$l"; '
                              '[ "$l" = size ] && stty size; done')
        job = row["remote"]["id"]
        assert row["remote"]["engine"] == "slurm" and job in jobs(slurm_dir)
        assert f"slurm:{job}" in run("ls", check=True).stdout
        assert json.load(open(os.path.join(slurm_dir, "sessions", "s1", "status.json")))["remote"]["id"] == job
        expect("s1", "ready")
        run("send", "s1", "hello", check=True)
        expect("s1", "got:hello")
        assert "got:hello" in run("shot", "s1", check=True).stdout
        run("resize", "s1", "90x20", check=True)
        run("send", "s1", "size", check=True)
        expect("s1", "^20 90", "10s")
        run("start-session", "s2", "echo bye; exit 7", "hpc", check=True, timeout=60)
        assert run("wait", "s2", "--timeout", "20s", timeout=30).returncode == 7
        assert run("kill", "s1", timeout=30).returncode == 0
        st = {r["id"]: r for r in ls()}["s1"]
        assert (st["state"], st["exit_code"]) == ("killed", 143)
        assert "trapped" in run("log", "s1").stdout
        wait_until(lambda: not jobs(slurm_dir), 10, "the jobs to leave squeue")
    finally:
        t.stop()


def test_root_sigkill_cancels_every_job_and_the_next_root_starts_clean(slurm_dir):
    t = Tree(slurm_dir)
    for i in range(3):
        start(f"k{i}", READY + "sleep 1000")
    assert len(jobs(slurm_dir)) == 3
    os.kill(t.pid, signal.SIGKILL)
    t.proc.wait(5)
    t.out.close()
    wait_until(lambda: not jobs(slurm_dir), 1 + 5, "squeue --me empty of our jobs (grace + 5 s)")
    t2 = Tree(slurm_dir)
    assert all(r["state"] in ("killed", "dead") for r in ls() if r["id"].startswith("k"))
    t2.stop()


def test_the_next_root_cancels_jobs_a_hard_death_left(slurm_dir):
    """Root, children and srun SIGKILLed at once (nobody cancels, srun's HUP
    handling never runs): the job stays RUNNING with no local side;
    `ls --remote` says orphaned; the next root cancels it by the hash."""
    t = Tree(slurm_dir, new_group=True)
    srun = start("o1", READY + "sleep 1000")["pid"]
    # root and children at once (a group kill lets children clean up)
    for p in [c.pid for c in psutil.Process(t.pid).children()] + [t.pid]:
        os.kill(p, signal.SIGKILL)
    os.killpg(srun, signal.SIGKILL)  # srun leads its PTY's session
    t.proc.wait(5)
    t.out.close()
    left = jobs(slurm_dir)
    assert left, "the job should outlive a tree killed all at once"
    def asked() -> dict | None:  # None while squeue did not answer (a loaded box)
        r = run("ls", "--json", "--remote", check=True, timeout=60)
        return None if r.stderr else next(x for x in json.loads(r.stdout) if x["id"] == "o1")
    row = wait_until(asked, 60, "squeue to answer ls --remote")
    assert (row["state"], row["remote"]["id"]) == ("orphaned", left[0])
    assert next(r for r in ls() if r["id"] == "o1")["state"] == "dead"  # plain ls: no engine round trip
    t2 = Tree(slurm_dir)
    wait_until(lambda: not jobs(slurm_dir), 15, f"the next root to cancel {left}")
    t2.stop()


def test_graceful_kill_reaches_a_command_without_a_trap(slurm_dir):
    t = Tree(slurm_dir)
    try:
        start("p1", "echo ready; exec sleep 1000")
        expect("p1", "ready")
        assert run("kill", "p1", timeout=30).returncode == 0
        st = {r["id"]: r for r in ls()}["p1"]
        assert (st["state"], st["exit_code"]) == ("killed", 143), st
        wait_until(lambda: not jobs(slurm_dir), 10, "the job to leave squeue")
        start("p2", "echo ready; exec sleep 1000")  # Ctrl-C reaches it too (`key`)
        expect("p2", "ready")
        run("key", "p2", "C-c", check=True)
        assert run("wait", "p2", "--timeout", "10s", timeout=20).returncode == 130
        wait_until(lambda: not jobs(slurm_dir), 10, "the job to leave squeue")
    finally:
        t.stop()


def test_setsid_grandchild_of_a_job_gone_after_kill(slurm_dir):
    """A job's setsid'd grandchild (its own session, still in the job's
    step) ends with `looop kill`: Slurm's proctrack takes the whole step."""
    t = Tree(slurm_dir)
    try:
        start("g1", READY + "setsid sleep 1000 & sleep 1000")
        expect("g1", "ready")
        procs = wait_until(lambda: len(job_procs(slurm_dir)) >= 3 and job_procs(slurm_dir), 10,
                           "the job's processes, the setsid'd one too")
        assert run("kill", "g1", timeout=30).returncode == 0
        wait_until(lambda: not job_procs(slurm_dir) and not jobs(slurm_dir), 10,
                   f"the job and its processes gone (were {procs})")
    finally:
        t.stop()
