"""Output capture loses nothing (SPEC §12): 50 MB as fast as possible,
byte-exact, with and without rotation; the last bytes before exit;
non-UTF-8 kept raw; `yes | head` behaves as in a shell."""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import threading

import pytest

from conftest import BIN, Tree, run, wait_until

from looop.store import sessions

SIZE = 50_000_000
# every byte value, in 64 KiB blocks, written with raw os.write as fast as possible
GEN = ("import os, sys\n"
       "n = int(sys.argv[1]); blk = bytes(range(256)) * 256\n"
       "if sys.argv[2] == 'nolf': blk = blk.replace(b'\\n', b'.')\n"
       "while n > 0:\n"
       "    n -= os.write(1, blk[:min(n, len(blk))])\n")


def expected(size: int, nolf: bool) -> bytes:
    blk = bytes(range(256)) * 256
    if nolf:
        blk = blk.replace(b"\n", b".")
    data = (blk * (size // len(blk) + 1))[:size]
    return data if nolf else data.replace(b"\n", b"\r\n")  # the PTY's ONLCR


def start_gen(d: str, sid: str, size: int, mode: str) -> None:
    gen = os.path.join(os.path.dirname(d), "gen.py")
    with open(gen, "w") as f:
        f.write(GEN)
    run("start-session", sid, "x", "--command",
        f"exec {sys.executable} {gen} {size} {mode}; : {{{{prompt_file}}}}", check=True)


def test_50mb_byte_exact_no_rotation(data_dir):
    t = Tree(data_dir, env=dict(os.environ, LOOOP_LOG_MAX_BYTES="0"))
    start_gen(data_dir, "big", SIZE, "lf")
    assert run("wait", "big", "--timeout", "60s", timeout=90).returncode == 0
    want = expected(SIZE, nolf=False)
    path = sessions.log_path(data_dir, "big")
    assert os.path.getsize(path) == len(want)
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    assert h.hexdigest() == hashlib.sha256(want).hexdigest()
    assert not os.path.exists(path + ".1")
    assert sessions.log_end(data_dir, "big") == len(want)
    assert t.stop() == 0


def test_50mb_with_rotation_keeps_offsets_monotonic(data_dir):
    cap = 256 << 10
    t = Tree(data_dir, env=dict(os.environ, LOOOP_LOG_MAX_BYTES=str(cap)))
    want = expected(SIZE, nolf=True)
    seen: list[tuple[int, int]] = []
    bad: list[str] = []
    done = threading.Event()

    def follow() -> None:
        """A reader polling `read_log` from its last offset, as `log --since` does."""
        off = 0
        while True:
            last = done.is_set()
            if sessions.exists(data_dir, "rot"):
                data, end = sessions.read_log(data_dir, "rot", off, limit=8 << 20)
                if end < off:
                    bad.append(f"offset went back {off} -> {end}")
                if data and data != want[end - len(data):end]:
                    bad.append(f"wrong bytes at {end - len(data)}..{end}")
                if data:
                    seen.append((end - len(data), end))
                off = end
            if last:
                return

    reader = threading.Thread(target=follow)
    reader.start()
    try:
        start_gen(data_dir, "rot", SIZE, "nolf")
        assert run("wait", "rot", "--timeout", "60s", timeout=90).returncode == 0
    finally:
        done.set()
        reader.join(30)
        t.stop()
    assert not bad, bad[:5]
    assert seen and seen[-1][1] == SIZE
    st = sessions.read_status(data_dir, "rot")
    cur, old = sessions.log_path(data_dir, "rot"), sessions.log_path(data_dir, "rot") + ".1"
    assert st["log_base"] + os.path.getsize(cur) == SIZE
    assert os.path.getsize(old) >= cap and os.path.getsize(cur) < cap
    with open(old, "rb") as f1, open(cur, "rb") as f0:
        kept = f1.read() + f0.read()
    assert kept == want[-len(kept):]
    # the CLI speaks the same offsets
    j = json.loads(run("log", "rot", "--raw", "--json", "--since", str(SIZE - 100), check=True).stdout)
    assert j["offset"] == SIZE and j["done"] is True and len(j["text"].encode()) >= 100
    j = json.loads(run("log", "rot", "--json", "--since", "0", check=True).stdout)
    assert j["offset"] == SIZE  # rotated-away bytes are skipped, offsets stay absolute
    assert t.proc.returncode == 0


def test_last_bytes_before_exit_are_kept(tree):
    for i in range(4):
        run("start-session", f"last{i}", "x", "--command",
            f"printf 'line\\nlast-words-{i}'; exit 7; : {{{{prompt_file}}}}", check=True)
    for i in range(4):
        assert run("wait", f"last{i}", "--timeout", "20s").returncode == 7
        with open(sessions.log_path(tree.d, f"last{i}"), "rb") as f:
            assert f.read() == b"line\r\nlast-words-%d" % i


def test_non_utf8_kept_raw_and_shown_with_replacement(tree):
    tree.start("bin", r"printf 'ok \xff\xfe bad \xe2\x82 end\n'; exec cat")
    run("expect", "bin", "end", "--timeout", "10s", check=True)
    with open(sessions.log_path(tree.d, "bin"), "rb") as f:
        assert f.read().startswith(b"ok \xff\xfe bad \xe2\x82 end\r\n")
    assert run("log", "bin", check=True).stdout.startswith("ok \ufffd\ufffd bad \ufffd end\n")
    raw = subprocess.run([BIN, "log", "bin", "--raw"], capture_output=True).stdout
    assert raw.startswith(b"ok \xff\xfe bad \xe2\x82 end\r\n")
    assert json.loads(run("log", "bin", "--json", check=True).stdout)["text"].startswith("ok \ufffd")
    shot = run("shot", "bin", "--trim", check=True).stdout
    assert shot.splitlines()[0].startswith("ok \ufffd") and shot.splitlines()[0].endswith(" end")
    run("kill", "bin", check=True)


def test_yes_head_exits_cleanly(tree):
    run("start-session", "pipe", "x", "--command",
        'yes | head -1; echo "status=${PIPESTATUS[*]}"; : {{prompt_file}}', check=True)
    assert run("wait", "pipe", "--timeout", "10s").returncode == 0
    text = run("log", "pipe", check=True).stdout
    assert text == "y\nstatus=141 0\n"  # yes died of SIGPIPE, quietly


def test_watch_follows_a_live_session_until_it_ends(tree):
    tree.start("live", "read line; echo got:$line; exit 5")
    w = subprocess.Popen([BIN, "watch", "live"], stdout=subprocess.PIPE)
    wait_until(lambda: sessions.log_end(tree.d, "live") >= 0 and w.poll() is None, 5)
    run("send", "live", "hello", check=True)
    out, _ = w.communicate(timeout=15)
    assert w.returncode == 0
    assert b"got:hello\r\n" in out
    assert run("wait", "live").returncode == 5


def test_read_log_waits_out_a_rotation_in_flight(tmp_path):
    """Between the child's rename and its status update, status.json and the
    files disagree; a reader must not mix them (the inodes say so)."""
    d = str(tmp_path)
    os.makedirs(os.path.join(d, "sessions", "s"))
    cur = sessions.log_path(d, "s")
    with open(cur + ".1", "wb") as f:
        f.write(b"A" * 10)
    with open(cur, "wb") as f:
        f.write(b"B" * 10)
    ino = lambda p: os.stat(p).st_ino  # noqa: E731
    sessions.write_status(d, "s", {"log_base": 10, "log_ino": ino(cur), "log1_ino": ino(cur + ".1")})
    assert sessions.read_log(d, "s", 5) == (b"AAAAABBBBBBBBBB", 20)
    os.replace(cur, cur + ".1")  # a rotation: B's file becomes .1, a new file starts
    with open(cur, "wb") as f:
        f.write(b"C" * 3)
    got: list = []
    reader = threading.Thread(target=lambda: got.append(sessions.read_log(d, "s", 5)))
    reader.start()
    reader.join(0.05)
    assert reader.is_alive()  # it waits for a consistent view
    sessions.write_status(d, "s", {"log_base": 20, "log_ino": ino(cur), "log1_ino": ino(cur + ".1")})
    reader.join(5)
    assert got == [(b"BBBBBBBBBBCCC", 23)]  # the A bytes are gone; offsets kept their meaning


def test_a_full_disk_does_not_kill_the_worker(tree):
    """output.log on a full disk (here /dev/full): the worker keeps running,
    steerable and visible on its screen; status.json says what is wrong."""
    flag = os.path.join(tree.d, "go")
    run("start-session", "full", "x", "--command",
        f'[ -e {flag} ] && exec cat; echo first run; : {{{{prompt_file}}}}', check=True)
    assert run("wait", "full", "--timeout", "10s").returncode == 0
    log = sessions.log_path(tree.d, "full")
    os.unlink(log)
    os.symlink("/dev/full", log)
    open(flag, "w").close()
    run("restart", "full", check=True)
    run("send", "full", "still-steerable", check=True)  # cat's output meets the full disk
    st = wait_until(lambda: (s := sessions.read_status(tree.d, "full")).get("log_error") and s, 10,
                    "the log error in status.json")
    assert "No space left" in st["log_error"] and st["state"] == "running"
    wait_until(lambda: "still-steerable\nstill-steerable" in run("shot", "full", "--trim").stdout,
               10, "the input echoed on the screen")
    run("kill", "full", check=True)
    assert sessions.read_status(tree.d, "full")["state"] == "killed"
