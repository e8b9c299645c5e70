"""ssh workers against a real sshd (.ci/engines.sh: 127.0.0.1:2222, a
key-only test user; its client config in $LOOOP_TEST_SSH). Every verb goes
through the local worker child; remote processes are found by their
LOOOP_SWEEP=<h>:<sid> marker (this host is the remote host)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import psutil
import pytest

from conftest import BIN, Tree, alive, ls, run, wait_gone, wait_until
from looop.tree.backends import data_dir_hash

SSH_CONFIG = os.environ.get("LOOOP_TEST_SSH", "")
HOSTS = [h for h in os.environ.get("LOOOP_TEST_SSH_HOSTS", "").split(",") if h]
pytestmark = pytest.mark.skipif(not (SSH_CONFIG and HOSTS),
                                reason="no sshd to test against (LOOOP_TEST_SSH unset: run .ci/engines.sh start)")

READY = 'trap "echo trapped; exit 143" TERM; echo ready; '


def configure(d: str, pidns: bool = True, hosts: list[str] | None = None) -> None:
    os.makedirs(d, exist_ok=True)
    backend = {"kind": "ssh", "hosts": hosts or HOSTS, "options": ["-F", SSH_CONFIG], "pidns": pidns}
    cfg = {"default": "rules",
           "runners": {"remote": {"interactive": "bash {{prompt_file}}", "tick": '"$LOOOP_BIN" _rules',
                                  "backend": backend}}}
    with open(os.path.join(d, "looop.json"), "w") as f:
        json.dump(cfg, f)


def start(sid: str, script: str, *extra: str) -> dict:
    run("start-session", sid, script, "remote", *extra, check=True, timeout=60)
    return wait_until(lambda: next((r for r in ls() if r["id"] == sid and r["alive"]), None),
                      20, f"worker {sid} live")


def marked(d: str, sid: str = "") -> list[int]:
    """Pids on this host carrying the data dir's sweep marker (any session, or `sid`)."""
    want = f"{data_dir_hash(d)}:{sid}"
    out = []
    for p in psutil.process_iter(["environ", "status"]):  # (a process may vanish mid-scan)
        v = (p.info.get("environ") or {}).get("LOOOP_SWEEP", "")
        if (v == want if sid else v.startswith(want)) and p.info["status"] != psutil.STATUS_ZOMBIE:
            out.append(p.pid)
    return out


def registry(d: str) -> str:
    home = subprocess.run(["ssh", "-F", SSH_CONFIG, HOSTS[0], "echo $HOME"], capture_output=True,
                          text=True, timeout=20).stdout.strip()
    return os.path.join(home, ".local/state/looop-remote", data_dir_hash(d))


@pytest.fixture
def ssh_dir(data_dir):
    configure(data_dir)
    yield data_dir
    left = marked(data_dir)
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    assert not left, f"remote processes survived: {left}"


def expect(sid: str, regex: str, timeout: str = "15s") -> None:
    r = run("expect", sid, regex, "--timeout", timeout, timeout=40)
    assert r.returncode == 0, (r.stderr, run("log", sid).stdout[-2000:])


def test_every_verb_through_an_ssh_worker(ssh_dir):
    """ls WHERE, send (also `~.`: no escape char), key, shot, resize (the
    remote stty size follows), wait (the remote exit code), kill (the TERM
    trap runs on the host: 143)."""
    t = Tree(ssh_dir)
    try:
        row = start("w1", READY + 'while read -r l; do echo "got:$l"; '
                              '[ "$l" = size ] && stty size; done')
        h = data_dir_hash(ssh_dir)
        assert row["remote"] == {"engine": "ssh", "host": HOSTS[0], "id": f"looop-w1-{h}"}
        assert f"ssh:{HOSTS[0]}" in run("ls", check=True).stdout
        expect("w1", "ready")
        remote = marked(ssh_dir, "w1")
        assert remote and all(psutil.Process(p).username() != "root" for p in remote)
        run("send", "w1", "hello", check=True)
        expect("w1", "got:hello")
        run("send", "w1", "~.", check=True)  # would drop the link with ssh's escape char on
        expect("w1", "got:~\\.")
        assert "got:hello" in run("shot", "w1", check=True).stdout
        run("resize", "w1", "100x30", check=True)
        run("send", "w1", "size", check=True)
        expect("w1", "^30 100", "10s")
        # the next host, round-robin (it ends at once: a loaded box's `ls` can miss it live)
        run("start-session", "w2", "echo bye; exit 7", "remote", check=True, timeout=60)
        w2 = wait_until(lambda: next((r for r in ls() if r["id"] == "w2" and r["remote"]), None), 20, "w2 placed")
        assert w2["remote"]["host"] == HOSTS[1 % len(HOSTS)]
        assert run("wait", "w2", "--timeout", "20s", timeout=30).returncode == 7
        assert run("kill", "w1", timeout=30).returncode == 0
        st = {r["id"]: r for r in ls()}["w1"]
        assert (st["state"], st["exit_code"]) == ("killed", 143)
        assert "trapped" in run("log", "w1").stdout
        wait_gone(remote, 5, "remote processes after kill")
    finally:
        t.stop()


@pytest.mark.parametrize("pidns", [True, False], ids=["pidns", "marker"])
def test_setsid_grandchild_gone_after_kill_and_after_root_sigkill(data_dir, pidns):
    configure(data_dir, pidns=pidns)
    script = READY + "setsid sleep 1000 & sleep 1000"
    t = Tree(data_dir)
    start("g1", script)
    expect("g1", "ready")
    wait_until(lambda: len(marked(data_dir, "g1")) >= 2, 10, "the remote grandchild")
    first = marked(data_dir, "g1")
    run("kill", "g1", check=True, timeout=30)
    wait_gone(first, 5, "remote processes after kill")
    start("g2", script)
    expect("g2", "ready")
    wait_until(lambda: len(marked(data_dir, "g2")) >= 2, 10, "the remote grandchild")
    second = marked(data_dir, "g2")
    os.kill(t.pid, signal.SIGKILL)
    t.proc.wait(5)
    t.out.close()
    wait_gone(second, 1 + 5, "remote processes after the root's SIGKILL")  # grace + 5 s
    wait_until(lambda: not os.listdir(registry(data_dir)) if os.path.isdir(registry(data_dir)) else True,
               5, "the host's registry emptied")
    t2 = Tree(data_dir)  # the next looop starts clean
    assert {r["id"]: r["state"] for r in ls()}["g2"] in ("killed", "dead")
    t2.stop()
    assert not marked(data_dir)


def test_two_data_dirs_on_one_host_never_touch_each_other(tmp_path, monkeypatch):
    """B's leftovers sweep (after B died hard, leaving a HUP-proof remote
    process in marker mode) kills B's processes on the host, never A's."""
    from conftest import use_profile
    a, b = str(tmp_path / "a" / "data"), str(tmp_path / "b" / "data")
    for d in (a, b):
        configure(d, pidns=False, hosts=HOSTS[:1])
    trees: list[Tree] = []
    try:
        use_profile(monkeypatch, a)
        ta = Tree(a)
        trees.append(ta)
        start("x", READY + "sleep 1000")
        expect("x", "ready")
        mine = marked(a, "x")
        use_profile(monkeypatch, b)
        tb = Tree(b, new_group=True)
        start("x", "trap '' HUP; echo ready; sleep 1000 & wait")
        expect("x", "ready")
        theirs = wait_until(lambda: marked(b, "x"), 10, "B's remote process")
        # root and children at once: no child cleans up (a group kill no longer
        # does that: children lead their own groups and clean up, faults item 8)
        for p in [c.pid for c in psutil.Process(tb.pid).children()] + [tb.pid]:
            os.kill(p, signal.SIGKILL)
        tb.proc.wait(5)
        tb.out.close()
        wait_until(lambda: not alive(tb.pid), 5, "B's root gone")
        assert [p for p in theirs if alive(p)], "the HUP-proof process should outlive B's tree"

        def asked() -> dict | None:  # None while the host did not answer (a loaded box: its 10 s bound)
            r = run("ls", "--json", "--remote", check=True, timeout=60)
            return None if r.stderr else next(x for x in json.loads(r.stdout) if x["id"] == "x")
        row = wait_until(asked, 60, "the host to answer ls --remote")
        assert (row["state"], row["remote"]["host"]) == ("orphaned", HOSTS[0])
        tb2 = Tree(b)  # B's next root sweeps the host by B's hash
        trees.append(tb2)
        wait_gone(theirs, 10, "B's leftovers")
        assert mine and all(alive(p) for p in mine), "A's remote processes were touched"
        tb2.stop()
        use_profile(monkeypatch, a)
        ta.stop()
        assert not marked(a) and not marked(b)
    finally:  # a failure above must not leave A's root (or B's second) running
        for t in reversed(trees):
            use_profile(monkeypatch, t.d)
            if t.proc.poll() is None:
                t.stop()
        for d in (a, b):
            for p in marked(d):
                os.kill(p, signal.SIGKILL)


def test_fifty_ssh_workers_at_once_against_a_default_maxstartups(ssh_dir):
    t = Tree(ssh_dir, env=dict(os.environ, LOOOP_MAX_WORKERS="64"))
    try:
        n = 50
        procs = [subprocess.Popen([BIN, "start-session", f"m{i}", "echo up; sleep 1000", "remote"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
                 for i in range(n)]
        for p in procs:
            assert p.wait(90) == 0, p.stderr.read()
        wait_until(lambda: sum(1 for i in range(n) if run("log", f"m{i}").stdout.count("up") >= 1) == n,
                   60, "all 50 remote sessions up")
        assert sum(r["alive"] for r in ls() if r["id"].startswith("m")) == n
    finally:
        t.stop(timeout=30)
    wait_gone(marked(ssh_dir), 10, "every remote process after the tree stopped")


@pytest.mark.parametrize("pidns", [True, False], ids=["pidns", "marker"])
def test_graceful_kill_reaches_a_command_without_a_trap(data_dir, pidns):
    """`exec sleep` has no TERM handler: in its own PID namespace it must not
    be the namespace's init (which ignores TERM), or every `looop kill` ends
    in SIGKILL after the grace (137) and an agent never gets to stop."""
    configure(data_dir, pidns=pidns)
    t = Tree(data_dir)
    try:
        start("p1", "echo ready; exec sleep 1000")
        expect("p1", "ready")
        t0 = time.monotonic()
        assert run("kill", "p1", timeout=30).returncode == 0
        took = time.monotonic() - t0
        st = {r["id"]: r for r in ls()}["p1"]
        assert (st["state"], st["exit_code"]) == ("killed", 143), (st, took)
        wait_until(lambda: not marked(data_dir, "p1"), 5, "the remote processes after kill")
        start("p2", "echo ready; exec sleep 1000")  # Ctrl-C reaches it too (`key`)
        expect("p2", "ready")
        run("key", "p2", "C-c", check=True)
        assert run("wait", "p2", "--timeout", "10s", timeout=20).returncode == 130
    finally:
        t.stop()


def test_ls_and_prune_remote_name_a_host_that_does_not_answer(data_dir, tmp_path):
    """`ls --remote` asks each host what still runs there; a host that does
    not answer was read as "nothing runs there". Now its name is said (after
    the table; on stderr with --json, whose stdout stays the array), and
    `prune --remote` says it too."""
    conf = tmp_path / "ssh_config"
    conf.write_text("Host looop-down\n  HostName 127.0.0.1\n  Port 1\n  BatchMode yes\n"
                    "  ConnectTimeout 2\n\n" + open(SSH_CONFIG).read())
    os.makedirs(data_dir, exist_ok=True)
    ok, down = ({"interactive": "bash {{prompt_file}}", "tick": '"$LOOOP_BIN" _rules',
                 "backend": {"kind": "ssh", "hosts": [h], "options": ["-F", str(conf)], "pidns": False}}
                for h in (HOSTS[0], "looop-down"))
    with open(os.path.join(data_dir, "looop.json"), "w") as f:
        json.dump({"default": "rules", "runners": {"ok": ok, "down": down}}, f)
    t = Tree(data_dir)
    try:
        run("start-session", "up1", READY + "sleep 1000", "ok", check=True, timeout=60)
        expect("up1", "ready")
        run("start-session", "gone1", "echo never", "down", check=True, timeout=60)
        wait_until(lambda: next((r for r in ls() if r["id"] == "gone1" and not r["alive"]), None),
                   30, "the worker on the unreachable host to end")
        said = "ssh:looop-down did not answer: what still runs there is unknown (its rows are as on disk)"
        r = run("ls", "--remote", timeout=60)
        assert r.returncode == 0 and r.stdout.rstrip().endswith("⚠ " + said), r.stdout
        assert "ssh:looop-h1" not in r.stdout.splitlines()[-1]
        r = run("ls", "--remote", "--json", timeout=60)
        assert {x["id"] for x in json.loads(r.stdout)} == {"pulse", "up1", "gone1"}
        assert r.stderr.strip() == "looop ls: " + said
        r = run("prune", "--remote", "--dry-run", timeout=60)
        assert r.returncode == 0 and r.stderr.strip() == "looop prune: " + said, r
        assert "would prune 1 sessions (gone1)" in r.stdout  # its child said it ended
        assert run("kill", "up1", timeout=30).returncode == 0
    finally:
        t.stop(signal.SIGTERM)
