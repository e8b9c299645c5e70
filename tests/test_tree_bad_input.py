"""Bad input is one clear line and nothing lost (SPEC §7, §11): unknown verbs
and sessions, bad ids, `pulse` as a worker, no tree / a dead socket / a stale
lock, garbage on the control socket."""
from __future__ import annotations

import json
import os
import signal
import socket

import pytest

from conftest import Tree, alive, ls, run, wait_gone

from looop.store import paths

BAD_IDS = ["a/b", "..", "../x", "a b", ".hidden", "x" * 65, "", "é"]


def one_line_error(r, verb: str) -> str:
    assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
    err = r.stderr
    assert err.startswith(f"looop {verb}: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    return err


def test_unknown_verb_and_flag():
    r = run("sned", "x")
    assert r.returncode == 1
    assert r.stderr == "looop: unknown verb 'sned' — did you mean 'send'?\n"
    one_line_error(run("ls", "--bogus"), "ls")
    one_line_error(run("log", "pulse", "--tail", "many"), "log")


def test_missing_arguments_name_only_the_required_ones(data_dir):
    """`flag`'s message is optional (`looop flag id [message ...]`), so
    `looop flag` alone must not say the message is required too."""
    assert one_line_error(run("flag"), "flag") == "looop flag: the following arguments are required: id\n"
    assert one_line_error(run("_event"), "_event") == (
        "looop _event: the following arguments are required: id, state\n")


@pytest.mark.parametrize("verb", ["send", "kill", "log", "shot", "wait", "flag", "restart",
                                  "attach", "start-session"])
def test_bad_ids_are_refused_before_touching_disk(data_dir, verb):
    for bad in BAD_IDS:
        args = [verb, bad] + (["x"] if verb in ("send", "start-session") else [])
        err = one_line_error(run(*args), verb)
        assert "invalid session" in err or "no session" in err
    assert not os.path.exists(os.path.join(data_dir, "a"))
    assert not os.path.exists(os.path.join(os.path.dirname(data_dir), "x"))


@pytest.mark.parametrize("verb", ["send", "key", "kill", "restart", "flag", "unflag", "attach",
                                  "detach", "resize", "start-session"])
def test_pulse_is_not_a_worker(data_dir, verb):
    extra = {"send": ["hi"], "key": ["Enter"], "resize": ["80x24"], "start-session": ["p"]}
    err = one_line_error(run(verb, "pulse", *extra.get(verb, [])), verb)
    assert "looop watch pulse" in err and "Ctrl-C" in err


def test_no_tree(data_dir):
    err = one_line_error(run("start-session", "w", "do things"), "start-session")
    assert "not running" in err and "start it with `looop`" in err
    one_line_error(run("send", "w", "hi"), "send")
    one_line_error(run("log", "w"), "log")  # no such session on disk either
    # a dead socket file (bound, then its process gone): still "not running"
    os.makedirs(data_dir, exist_ok=True)
    s = socket.socket(socket.AF_UNIX)
    s.bind(paths.socket_path(data_dir))
    s.close()
    err = one_line_error(run("start-session", "w", "do things"), "start-session")
    assert "start it with `looop`" in err
    t = Tree(data_dir)  # and a new root replaces it
    t.start("w", "exec cat")
    assert t.stop() == 0


def test_a_sigkilled_root_leaves_nothing_that_blocks_a_new_one(data_dir):
    t = Tree(data_dir)
    t.start("w1", "exec cat")
    everything = t.pids()
    os.kill(t.pid, signal.SIGKILL)
    t.stop()
    wait_gone(everything, 3)
    with open(paths.lock_path(data_dir)) as f:
        assert f.read().strip() == str(t.pid)  # the lock file stays, unlocked
    assert os.path.exists(paths.socket_path(data_dir))  # and a dead socket file
    one_line_error(run("send", "w1", "x"), "send")
    t2 = Tree(data_dir)
    with open(paths.lock_path(data_dir)) as f:
        assert f.read().strip() == str(t2.pid)
    rows = {r["id"]: r for r in ls()}
    assert rows["w1"]["state"] == "killed" and not rows["w1"]["alive"]
    t2.start("w1", "exec cat")  # the finished session of that id is replaced
    assert t2.stop() == 0


def test_a_second_root_refuses(tree):
    r = run()
    assert r.returncode == 1
    assert r.stderr == f"looop: already running (pid {tree.pid}) — watch it with: looop watch pulse\n"
    assert alive(tree.pid)


def test_unknown_session_and_duplicates(tree):
    for verb, extra in (("send", ["x"]), ("kill", []), ("shot", []), ("wait", []),
                        ("restart", []), ("log", []), ("expect", ["x"])):
        err = one_line_error(run(verb, "nope", *extra), verb)
        assert "no session 'nope'" in err
    tree.start("dup", "exec cat")
    err = one_line_error(run("start-session", "dup", "again"), "start-session")
    assert "already running" in err
    err = one_line_error(run("start-session", "w", "x", "--command", "no placeholder"),
                         "start-session")
    assert "{{prompt_file}}" in err
    err = one_line_error(run("start-session", "w", "x", "no-such-runner"), "start-session")
    assert "unknown runner" in err
    assert not os.path.exists(os.path.join(tree.d, "sessions", "w"))
    run("kill", "dup", check=True)


def _raw(d: str, payload: bytes, timeout: float = 5.0) -> bytes:
    """Send raw bytes on the control socket; return all it says until EOF."""
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(timeout)
    s.connect(paths.socket_path(d))
    try:
        s.sendall(payload)
    except (BrokenPipeError, ConnectionResetError):
        pass
    got = b""
    try:
        while chunk := s.recv(65536):
            got += chunk
    except ConnectionResetError:
        pass
    s.close()
    return got


def test_garbage_on_the_control_socket(tree):
    for junk in (b"\x00\xff\xfe not json\n", b"[1, 2]\n", b'{"op": 5}\n', b"{\n"):
        reply = _raw(tree.d, junk)  # ends in EOF: the connection is dropped
        assert json.loads(reply.splitlines()[0])["ok"] is False
    reply = json.loads(_raw(tree.d, b"x" * (3 << 20) + b"\n"))  # an over-long line: answered
    assert reply["ok"] is False and "request too large (over 1 MiB)" in reply["error"]
    # NUL and other bad ids through the wire too
    s = socket.socket(socket.AF_UNIX)
    s.connect(paths.socket_path(tree.d))
    f = s.makefile("rwb")
    for req in ({"op": "start", "id": "a\u0000b", "prompt": "x"}, {"op": "start", "id": "../x"},
                {"op": "start", "id": 7}, {"op": "input", "id": "pulse", "data": "x"},
                {"op": "resize", "id": "nope", "cols": "wide", "rows": 1}, {"op": "nope"}):
        f.write(json.dumps(req).encode() + b"\n")
        f.flush()
        reply = json.loads(f.readline())
        assert reply["ok"] is False and reply["error"]
    f.close()
    s.close()
    assert not os.path.exists(os.path.join(tree.d, "sessions", "a"))
    # the tree keeps running and serving
    assert tree.proc.poll() is None
    tree.start("after", "exec cat")
    run("send", "after", "still-here", check=True)
    run("expect", "after", "still-here", "--timeout", "10s", check=True)
    run("kill", "after", check=True)


def test_start_session_needs_a_running_tree_even_with_stale_files(data_dir):
    os.makedirs(data_dir)
    with open(paths.lock_path(data_dir), "w") as f:
        f.write("999999\n")  # a holder that does not exist
    err = one_line_error(run("start-session", "w", "x"), "start-session")
    assert "start it with `looop`" in err


def test_a_data_dir_too_long_for_a_socket_path(tmp_path, monkeypatch):
    from conftest import assert_no_leftovers, use_profile
    d = use_profile(monkeypatch, str(tmp_path / ("long-" + "x" * 60) / ("y" * 60) / "data"))
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    sock = paths.socket_path(d)
    assert not sock.startswith(d) and len(sock.encode()) < 100
    assert oct(os.stat(os.path.dirname(sock)).st_mode & 0o777) == "0o700"
    t = Tree(d)
    try:
        assert f"control socket at {sock}" in t.output()
        assert oct(os.stat(sock).st_mode & 0o777) == "0o600"
        t.start("w", "exec cat")
        run("send", "w", "through-the-fallback", check=True)
        run("expect", "w", "through-the-fallback", "--timeout", "10s", check=True)
    finally:
        assert t.stop() == 0
    assert not os.path.exists(sock)
    assert_no_leftovers(d)
