"""`looop prune --remote [--dry-run]` against the real engines: a session
whose engine side outlived its local child (root, children and engine
client SIGKILLed at once, as `ls --remote`'s orphan tests make one) is
released on its engine — ssh: its marked processes killed; Slurm: its job
cancelled — identity-checked by the data dir's hash (another data dir's
session of the same id on the same engine is untouched); plain `prune`
without a root keeps its dir (the only record of where it ran)."""
from __future__ import annotations

import json
import os
import signal

import psutil
import pytest

from conftest import Tree, alive, ls, run, tree_processes, use_profile, wait_gone, wait_until
from test_backend_slurm import jobs
from test_backend_ssh import HOSTS, SSH_CONFIG, marked

from looop.store import sessions

SSH_UP = bool(SSH_CONFIG and HOSTS)
SLURM_UP = bool(os.environ.get("LOOOP_TEST_SLURM"))
# HUP-proof and in marker mode: only a sweep by the marker ends it on the host
HUP_PROOF = "trap '' HUP; echo ready; sleep 1000 & wait"


def configure(d: str) -> None:
    os.makedirs(d, exist_ok=True)
    tick = '"$LOOOP_BIN" _rules'
    runners = {}
    if SSH_UP:
        runners["farm"] = {"interactive": "bash {{prompt_file}}", "tick": tick,
                           "backend": {"kind": "ssh", "hosts": HOSTS[:1], "options": ["-F", SSH_CONFIG],
                                       "pidns": False}}
    if SLURM_UP:
        runners["hpc"] = {"interactive": "bash {{prompt_file}}", "tick": tick,
                          "backend": {"kind": "slurm", "partition": "debug", "time": "10"}}
    with open(os.path.join(d, "looop.json"), "w") as f:
        json.dump({"default": "rules", "runners": runners}, f)


def start(sid: str, runner: str) -> dict:
    run("start-session", sid, HUP_PROOF, runner, check=True, timeout=60)
    assert run("expect", sid, "ready", "--timeout", "30s", timeout=45).returncode == 0, run("log", sid).stdout
    return next(r for r in ls() if r["id"] == sid)


def release_all(dirs: list[str], trees: list[Tree | None]) -> None:
    """Whatever a failed run left: roots, remote processes, jobs, clients."""
    import subprocess
    for t in trees:
        if t is not None and t.proc.poll() is None:
            t.proc.kill()
            t.proc.wait(5)
    for d in dirs:
        for p in marked(d) + [x.pid for x in tree_processes(d)]:
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if SLURM_UP and jobs(d):
            subprocess.run(["scancel", *jobs(d)], timeout=10)


def strand(d: str) -> None:
    """On the ssh host: SIGKILL the wrapper and its watcher (everything of
    the remote session that does not carry the marker), as a host-side
    crash would, so nothing there sweeps the marked, HUP-proof command:
    it lives on with no local child — an orphan, however fast the local ssh
    client notices its child is gone."""
    for p in marked(d):
        sid = os.getsid(p)
        for q in psutil.process_iter(["environ"]):
            try:
                if os.getsid(q.pid) == sid and "LOOOP_SWEEP" not in (q.info.get("environ") or {}):
                    q.kill()
            except (OSError, psutil.Error):
                pass


def die_hard(t: Tree, srun: list[int]) -> None:
    """Root and children at once (nobody cleans up), and srun's group (its
    own HUP handling would cancel the job). ssh clients stay, parentless:
    the host keeps the session (a killed client would end it there)."""
    for p in [c.pid for c in psutil.Process(t.pid).children()] + [t.pid]:
        os.kill(p, signal.SIGKILL)
    for p in srun:
        os.killpg(p, signal.SIGKILL)  # srun leads its PTY's session
    t.proc.wait(5)
    t.out.close()


@pytest.mark.skipif(not (SSH_UP or SLURM_UP), reason="no engine (run .ci/engines.sh start)")
def test_prune_remote_releases_orphans_and_only_this_data_dirs(tmp_path, monkeypatch):
    a, b = str(tmp_path / "a" / "data"), str(tmp_path / "b" / "data")
    runners = (["farm"] if SSH_UP else []) + (["hpc"] if SLURM_UP else [])
    for d in (a, b):
        configure(d)
    ta = tb = None
    try:
        use_profile(monkeypatch, a)  # A: the same ids, alive on the same engines
        ta = Tree(a)
        for r in runners:
            start(f"x-{r}", r)
        a_procs, a_jobs = marked(a), jobs(a)
        use_profile(monkeypatch, b)
        tb = Tree(b, new_group=True)
        srun = [start(f"x-{r}", r)["pid"] for r in runners if r == "hpc"]
        for r in runners:
            if r != "hpc":
                start(f"x-{r}", r)
        run("start-session", "done", "echo fin", "--command", "bash {{prompt_file}}", check=True)
        assert run("wait", "done", "--timeout", "10s").returncode == 0
        die_hard(tb, srun)
        if SSH_UP:
            strand(b)
        b_procs = wait_until(lambda: [p for p in marked(b) if alive(p)], 5, "B's HUP-proof remote process") \
            if SSH_UP else []
        b_jobs = jobs(b)
        assert len(b_jobs) == (1 if SLURM_UP else 0)
        def asked() -> list[set[str]] | None:  # None while an engine did not answer (a loaded box)
            r = run("ls", "--json", "--remote", check=True, timeout=60)
            return None if r.stderr else [{x["id"] for x in json.loads(r.stdout) if x["state"] == "orphaned"}]
        orphaned = wait_until(asked, 60, "the engines to answer ls --remote")[0]
        assert orphaned == {f"x-{r}" for r in runners}
        # plain prune without a root: the finished local session goes, the orphans' dirs stay
        before = {x: sessions.read_status(b, x) for x in orphaned}
        r = run("prune", check=True, timeout=30)
        kept = ", ".join(sorted(orphaned))
        assert r.stdout.strip() == (f"pruned 1 sessions (done); kept {len(orphaned)} remote sessions whose engine "
                                    f"may still run them ({kept}): `looop prune --remote` or the next `looop` "
                                    f"releases them"), (r.stdout, before)
        assert {x["id"] for x in ls() if x["role"] == "worker"} == orphaned
        # --dry-run: says, changes nothing
        r = run("prune", "--remote", "--dry-run", check=True, timeout=30)
        assert r.stdout.strip() == (f"would release {len(orphaned)} orphaned remote sessions ({kept}); "
                                    f"would prune {len(orphaned)} sessions ({kept})"), r.stdout
        assert all(alive(p) for p in b_procs) and jobs(b) == b_jobs
        r = run("prune", "--remote", check=True, timeout=30)
        assert r.stdout.strip() == (f"released {len(orphaned)} orphaned remote sessions ({kept}); "
                                    f"pruned {len(orphaned)} sessions ({kept})"), r.stdout
        wait_gone(b_procs, 5, "B's remote processes after prune --remote")
        wait_until(lambda: not jobs(b), 10, "B's job cancelled")
        assert not [x for x in ls() if x["role"] == "worker"] and not marked(b)
        wait_until(lambda: not tree_processes(b), 10, "B's parentless ssh clients to end with their sessions")
        # A, same ids, same engines, another data dir: untouched
        assert a_procs and all(alive(p) for p in a_procs) if SSH_UP else True
        assert jobs(a) == a_jobs
        assert run("prune", "--remote", check=True, timeout=30).stdout.strip() == \
            "released 0 orphaned remote sessions; pruned 0 sessions"
        use_profile(monkeypatch, a)
        ta.stop()
        assert not marked(a) and not jobs(a)
    finally:
        release_all([a, b], [ta, tb])


@pytest.mark.skipif(not SSH_UP, reason="no sshd (run .ci/engines.sh start)")
def test_the_next_root_sweeps_a_remote_session_recorded_dead(tmp_path, monkeypatch):
    """A worker child dies (SIGKILL: the root records the session `dead`)
    while its host side lives on; then the root dies too. The next root's
    leftovers sweep must reach that host: `dead` says nothing about the
    engine side, only `exited`/`killed` (confirmed by the child) do."""
    d = str(tmp_path / "data")
    configure(d)
    use_profile(monkeypatch, d)
    t = nxt = None
    try:
        t = Tree(d, new_group=True)
        child = start("x-farm", "farm")["child_pid"]
        os.kill(child, signal.SIGSTOP)  # it must not see its command end and record that
        strand(d)
        procs = wait_until(lambda: [p for p in marked(d) if alive(p)], 5, "the HUP-proof remote process")
        os.kill(child, signal.SIGKILL)
        wait_until(lambda: sessions.read_status(d, "x-farm").get("state") == "dead", 10, "the session recorded dead")
        assert all(alive(p) for p in procs)  # the engine side outlived its child
        os.kill(t.pid, signal.SIGKILL)
        t.proc.wait(5)
        t.out.close()
        nxt = Tree(d, new_group=True)
        wait_gone(procs, 10, "the dead session's remote process, swept by the next root")
        nxt.stop()
    finally:
        release_all([d], [t, nxt])
