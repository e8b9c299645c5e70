"""Following a remote worker live — `log --follow`, `watch`, `shot`,
`ls --watch` — on an ssh worker and a Slurm worker (the real engines of
.ci/engines.sh), and the ssh link dropping under a follower.

The followers read the local child's log, so they must behave exactly as
for a local worker: each line shows as it arrives, they end by themselves
when the worker ends and quietly on Ctrl-C/SIGTERM. A dropped ssh link ends
the worker (ssh's 255); the follower ends with it and says so in one line
(exit 1) — never a hang past ssh's keepalive, never a traceback."""
from __future__ import annotations

import os
import signal
import subprocess

import psutil
import pytest

from conftest import BIN, Tree, ls, run, wait_until
from test_backend_attach import far
from test_backend_slurm import jobs
from test_backend_ssh import HOSTS, marked

READY = 'echo ready; '
ECHO = READY + 'while read -r l; do [ "$l" = quit ] && exit 5; echo "got:$l"; done'


def start(sid: str, script: str) -> dict:
    run("start-session", sid, script, "far", check=True, timeout=60)
    row = wait_until(lambda: next((r for r in ls() if r["id"] == sid and r["alive"]
                                   and (r["remote"] or {}).get("id")), None), 30, f"worker {sid} live")
    assert run("expect", sid, "ready", "--timeout", "20s", timeout=30).returncode == 0, run("log", sid).stdout
    return row


def where(row: dict) -> str:
    rem = row["remote"]
    return f"ssh:{rem['host']}" if rem["engine"] == "ssh" else f"slurm:{rem['id']}"


class Follower:
    """A `looop <verb> …` started in the background, its stdout and stderr in files."""

    def __init__(self, tmp: str, *args: str):
        name = "-".join(a.strip("-") for a in args)
        self.out_path, self.err_path = (os.path.join(tmp, f"{name}.{k}") for k in ("out", "err"))
        with open(self.out_path, "wb") as out, open(self.err_path, "wb") as err:
            self.proc = subprocess.Popen([BIN, *args], stdout=out, stderr=err, stdin=subprocess.DEVNULL)

    def text(self) -> str:
        with open(self.out_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def err(self) -> str:
        with open(self.err_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def shows(self, s: str, timeout: float = 10) -> None:
        wait_until(lambda: s in self.text(), timeout, f"{s!r} from {self.proc.args[1:]}: {self.text()[-300:]!r}")

    def ends(self, timeout: float) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"{self.proc.args[1:]} still running after {timeout}s: {self.text()[-300:]!r}")

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)


@pytest.fixture
def followers(data_dir, tmp_path):
    made: list[Follower] = []

    def follow(*args: str) -> Follower:
        made.append(Follower(str(tmp_path), *args))
        return made[-1]
    yield follow
    for f in made:  # before data_dir's leak check, which would also catch them
        f.close()


def engine_gone(d: str, engine: str) -> bool:
    return not (marked(d) if engine == "ssh" else jobs(d))


@pytest.mark.parametrize("engine", ["ssh", "slurm"])
def test_log_follow_watch_and_ls_watch_see_each_line_live_and_end_with_the_worker(data_dir, followers, engine):
    """Each line a remote worker prints shows in `log --follow` and `watch`
    before the next one is even asked for; `ls --watch` (not a terminal:
    one frame per interval) shows the WHERE column, then the exit; the
    followers end by themselves (exit 0, nothing on stderr) when the worker
    exits, `ls --watch` on Ctrl-C."""
    far(data_dir, engine)
    t = Tree(data_dir)
    try:
        row = start("f1", ECHO)
        lsw = followers("ls", "--watch", "--interval", "200ms")
        log, watch = followers("log", "f1", "--follow"), followers("watch", "f1")
        lsw.shows(where(row))
        assert "f1" in lsw.text() and "running" in lsw.text()
        for f in (log, watch):
            f.shows("ready")
        for i in range(1, 4):
            run("send", "f1", f"line{i}", check=True)
            for f in (log, watch):
                f.shows(f"got:line{i}")
                assert f"got:line{i + 1}" not in f.text()
        seen = len(lsw.text())
        run("send", "f1", "quit", check=True)
        for f in (log, watch):
            assert f.ends(15) == 0, f.err()
            assert f.err() == ""
        assert "got:line3" in log.text() and "\x1b" not in log.text()  # log strips escapes
        st = {r["id"]: r for r in ls()}["f1"]
        assert (st["state"], st["exit_code"]) == ("exited", 5)
        wait_until(lambda: "exited" in lsw.text()[seen:], 5, "a later ls --watch frame with the exit")
        lsw.proc.send_signal(signal.SIGINT)
        assert lsw.ends(5) == 0 and lsw.err() == ""
        wait_until(lambda: engine_gone(data_dir, engine), 10, "the engine side gone after the exit")
    finally:
        t.stop()


@pytest.mark.parametrize("engine", ["ssh", "slurm"])
def test_shot_shows_the_remote_screen_now_and_followers_end_on_sigint_sigterm(data_dir, followers, engine):
    """`shot` renders the remote program's current screen (after it cleared
    it, the old text is gone though the log keeps it); a follower of a
    worker that keeps running ends on SIGINT (exit 0) and SIGTERM (dies of
    it, as `tail -f` does), with no traceback, and the worker runs on."""
    far(data_dir, engine)
    t = Tree(data_dir)
    clear = r"printf '\033[2J\033[H'; "
    try:
        start("s1", READY + clear + "echo screen-one; read -r l; " + clear +
              'echo "screen-two $l"; while :; do sleep 0.3; echo tick; done')
        wait_until(lambda: "screen-one" in run("shot", "s1", check=True).stdout, 10, "screen-one in shot")
        follows = {signal.SIGINT: followers("log", "s1", "-f"), signal.SIGTERM: followers("watch", "s1"),
                   "raw": followers("log", "s1", "-f", "--raw")}
        run("send", "s1", "now", check=True)
        shot = wait_until(lambda: (lambda s: s if "screen-two now" in s else None)(
            run("shot", "s1", check=True).stdout), 10, "screen-two in shot")
        assert "screen-one" not in shot  # the screen now, not the log
        assert "screen-one" in run("log", "s1").stdout
        assert run("expect", "s1", "^screen-two now", "--screen", "--timeout", "10s", timeout=20).returncode == 0
        for f in follows.values():
            f.shows("screen-two now")
            f.shows("tick")
        follows[signal.SIGINT].proc.send_signal(signal.SIGINT)
        follows[signal.SIGTERM].proc.send_signal(signal.SIGTERM)
        follows["raw"].proc.send_signal(signal.SIGINT)
        assert follows[signal.SIGINT].ends(5) == 0
        assert follows[signal.SIGTERM].ends(5) == -signal.SIGTERM
        assert follows["raw"].ends(5) == 0
        for f in follows.values():
            assert f.err() == "", f.err()
        row = {r["id"]: r for r in ls()}["s1"]
        assert row["alive"] and row["state"] == "running"
        assert run("kill", "s1", timeout=30).returncode == 0
        wait_until(lambda: engine_gone(data_dir, engine), 10, "the engine side gone after kill")
    finally:
        t.stop()


def test_lost_link_is_ssh_255_only():
    """The follower's end note: only an ssh worker that exited 255."""
    from looop.cli.observe import lost_link
    ssh = {"engine": "ssh", "host": "h1", "id": "looop-w-1"}
    assert "lost its ssh link to h1" in lost_link("w", {"state": "exited", "exit_code": 255, "remote": ssh})
    for st in ({"state": "exited", "exit_code": 255, "remote": None},  # local
               {"state": "exited", "exit_code": 255, "remote": dict(ssh, engine="slurm")},
               {"state": "exited", "exit_code": 0, "remote": ssh},
               {"state": "killed", "exit_code": 255, "remote": ssh},  # a stop asked for
               {"state": "dead", "exit_code": None, "remote": ssh}, {}):
        assert lost_link("w", st) is None, st


def sshd_session(d: str, sid: str) -> psutil.Process:
    """The host's per-connection sshd process carrying session `sid` (this
    host is the ssh host): the unprivileged `sshd: user@pts/N` above its
    marked processes."""
    for pid in marked(d, sid):
        try:
            for a in psutil.Process(pid).parents():
                if a.name().startswith("sshd") and a.username() != "root":
                    return a
        except psutil.Error:
            continue
    pytest.fail(f"no sshd session above {sid}'s processes")


@pytest.mark.parametrize("drop", ["reset", "stall"])
def test_ssh_link_dropping_ends_the_follower_with_one_line(data_dir, followers, drop):
    """The connection dies under a follower: `reset` (the host's sshd
    session killed: ssh sees the close at once) or `stall` (it is stopped:
    nothing answers, ssh's ServerAliveInterval=5 × 3 gives up). The worker
    ends with ssh's 255, the remote side is gone, and each follower ends
    within the bound with exit 1 and one line naming the lost link — no
    hang, no traceback."""
    far(data_dir, "ssh")
    t = Tree(data_dir)
    sshd = None
    try:
        start("d1", READY + "while :; do echo tick; sleep 0.3; done")
        log, watch = followers("log", "d1", "--follow"), followers("watch", "d1")
        for f in (log, watch):
            f.shows("tick")
        sshd = sshd_session(data_dir, "d1")  # psutil checks pid + create time before each signal
        sshd.send_signal(signal.SIGKILL if drop == "reset" else signal.SIGSTOP)
        bound = 5 if drop == "reset" else 5 * 3 + 8
        for f in (log, watch):
            assert f.ends(bound) == 1, (f.err(), f.text()[-300:])
        assert log.err() == f"looop log: d1 lost its ssh link to {HOSTS[0]} (ssh exited 255): the worker " \
                            f"ended with it; `looop ls --remote` shows whether anything of it is left there\n"
        assert watch.err() == log.err().replace("looop log:", "looop watch:")
        st = {r["id"]: r for r in ls()}["d1"]
        assert (st["state"], st["exit_code"]) == ("exited", 255)
        if drop == "stall":
            sshd.send_signal(signal.SIGCONT)  # the host side learns of the close only now
        wait_until(lambda: not marked(data_dir), 10, "the remote side gone")
    finally:
        if sshd is not None and drop == "stall":
            try:
                sshd.send_signal(signal.SIGCONT)
            except psutil.Error:
                pass
        t.stop()


@pytest.mark.parametrize("engine", ["ssh", "slurm"])
def test_engine_side_ended_from_outside_ends_the_follower_at_once(data_dir, followers, engine):
    """Not a dropped link but the worker's end, caused outside looop: the
    local ssh (the session's ControlMaster) SIGKILLed, or the Slurm job
    cancelled with `scancel`. The worker ends with that signal (137 / 143),
    the follower ends at once like for any end (0, nothing on stderr; the
    engine's own words are in the stream on Slurm), the engine side is gone."""
    far(data_dir, engine)
    t = Tree(data_dir)
    try:
        start("e1", READY + "while :; do echo tick; sleep 0.3; done")
        log = followers("log", "e1", "-f")
        log.shows("tick")
        row = {r["id"]: r for r in ls()}["e1"]  # now: a retried handshake would have changed the pid
        if engine == "ssh":
            ssh = psutil.Process(row["pid"])  # the PTY command: the local ssh, master of its connection
            assert ssh.name() == "ssh" and "ControlMaster=yes" in ssh.cmdline()
            ssh.send_signal(signal.SIGKILL)  # psutil checks pid + create time first
        else:
            subprocess.run(["scancel", row["remote"]["id"]], check=True, timeout=10)
        assert log.ends(10) == 0 and log.err() == "", log.err()
        st = {r["id"]: r for r in ls()}["e1"]
        assert (st["state"], st["exit_code"]) == ("exited", 137 if engine == "ssh" else 143)
        if engine == "slurm":
            assert "CANCELLED" in log.text()
        wait_until(lambda: engine_gone(data_dir, engine), 10, "the engine side gone")
    finally:
        t.stop()
