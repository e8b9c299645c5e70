"""The rough edges a new user hits (issue 14), each through real processes:
the pulse stream, attach without a terminal, --version, bad-input messages,
and the smaller verb details."""
from __future__ import annotations

import json
import os
import signal
from typing import Any

import pytest

from conftest import Tree, ls, run, wait_until
from fakes import bump_world, force_decide, isolated_home, read, sensor, setup_fake

assert isolated_home  # autouse fixture, imported so pytest finds it


def fast_env(**extra: str) -> dict[str, str]:
    return {**os.environ, "LOOOP_INTERVAL": "0.2", **extra}


def pulse_log() -> str:
    return run("log", "pulse").stdout


def test_the_pulse_stream_says_when_a_worker_starts_and_exits(data_dir, tmp_path):
    d = data_dir
    fake = setup_fake(d, str(tmp_path / "ctl"))
    t = Tree(d, env=fast_env())
    try:
        fake.queue({"action": "start_worker", "id": "w1", "prompt": "echo hi; sleep 0.3; exit 3"})
        bump_world(d)
        wait_until(lambda: "worker w1 exited (exit 3)" in pulse_log(), 20, "`log pulse` to say w1 exited")
        text = pulse_log()
        assert "worker w1 started (pid " in text
        assert text.index("worker w1 started") < text.index("worker w1 exited")
        out = t.output()
        assert out.count("worker w1 exited") == 1  # the root's terminal: once, through the pulse
    finally:
        assert t.stop(signal.SIGTERM) == 0


def test_a_notification_with_its_own_journal_keeps_its_message(data_dir, tmp_path):
    d = data_dir
    fake = setup_fake(d, str(tmp_path / "ctl"))
    fake.queue({"action": "send_notification", "message": "the build is red", "journal": "told the human"})
    force_decide(d)
    r = run("tick")
    assert r.returncode == 0, r.stderr
    assert "the build is red" in read(d, "journal.md") and "told the human" in read(d, "journal.md")
    decided = [json.loads(ln) for ln in open(os.path.join(d, "events.jsonl")) if '"decided"' in ln]
    assert "the build is red" in decided[-1]["journal"]


def test_an_oversized_sensor_does_not_flap_the_world(data_dir, tmp_path):
    d = data_dir
    fake = setup_fake(d, str(tmp_path / "ctl"))
    # 20000 bytes, then 20001, then 20000 …: over the cap every time, by a different amount
    sensor(d, "big", 'n=$(cat "$LOOOP_DATA_DIR/n" 2>/dev/null || echo 0); echo $((n + 1)) > "$LOOOP_DATA_DIR/n"; '
                     'head -c $((20000 + n % 2)) /dev/zero | tr "\\0" x')
    for _ in range(4):
        fake.queue({"action": "noop", "reason": "quiet"})
    outs = [run("tick").stdout for _ in range(4)]
    assert len(fake.calls()) == 1, outs  # the first beat decides; the world never changed after
    assert all("world unchanged" in o for o in outs[1:])


def test_a_non_executable_sensor_warns(data_dir, tmp_path):
    d = data_dir
    setup_fake(d, str(tmp_path / "ctl"))
    sensor(d, "plain", "echo '{\"signal\": 1}'")
    os.chmod(os.path.join(d, "sensors", "plain.sh"), 0o644)
    r = run("tick")
    assert "sensor plain is not executable" in r.stdout and "chmod +x sensors/plain.sh" in r.stdout
    assert "1 sensors ok" in r.stdout  # still run (with bash)


def test_attach_without_a_terminal_refuses_at_once(tree):
    tree.start("ex", "echo hi; sleep 30")
    r = run("attach", "ex", timeout=10)  # stdin: a pipe (subprocess), not a TTY
    assert r.returncode == 1
    assert r.stderr.startswith("looop attach: stdin is not a terminal") and r.stderr.count("\n") == 1
    run("kill", "ex", check=True)


def test_version_flag_and_a_manual_without_code_notes(data_dir):
    r = run("--version")
    assert r.returncode == 0 and r.stdout.startswith("looop ")
    assert r.stdout == run("version").stdout
    text = run("help", env={**os.environ, "PAGER": "cat"}).stdout
    assert "This module" not in text and "the client used by CLI verbs" not in text
    from looop.tree.ops import OPS
    example = next(ln for ln in text.splitlines() if ln.strip().startswith("→ {"))
    assert json.loads(example.split("→", 1)[1].replace("\\r", ""))["op"] in OPS


def _send_stdin(sid: str, data: bytes, *flags: str) -> "subprocess.CompletedProcess[bytes]":
    import subprocess

    from conftest import BIN
    return subprocess.run([BIN, "send", sid, "-", *flags], input=data, capture_output=True, timeout=60)


def test_send_reads_stdin_in_bounded_frames_past_the_argv_limit(tree):
    d = tree.d
    content = b"y" * 99 + b"\n"
    content = content * 21000 + b"end"  # ~2 MiB: over the 128 KiB of one argument and the 1 MiB line cap
    tree.start("raw", f"stty raw -echo; echo READY; head -c {len(content)} > got; echo; echo GOT")
    wait_until(lambda: "READY" in run("log", "raw").stdout, 10, "the raw-mode reader")
    r = _send_stdin("raw", content, "-n")
    assert r.returncode == 0, r.stderr
    wait_until(lambda: "GOT" in run("log", "raw").stdout, 20, "every byte to arrive")
    with open(os.path.join(d, "got"), "rb") as f:
        assert f.read() == content


def test_send_refuses_a_line_the_terminal_would_cut(tree):
    d = tree.d
    tree.start("cooked", "echo READY; cat > cooked")
    wait_until(lambda: "READY" in run("log", "cooked").stdout, 10, "cat to read")
    r = _send_stdin("cooked", b"z" * 100_001 + b"\n")
    err = r.stderr.decode()
    assert r.returncode == 1
    assert err.startswith("looop send: line of 100001 bytes exceeds the terminal's 4095-byte line limit "
                          "(canonical mode)") and err.count("\n") == 1
    r = run("send", "cooked", "short line")
    assert r.returncode == 0
    wait_until(lambda: os.path.exists(os.path.join(d, "cooked")) and read(d, "cooked") == "short line\n",
               10, "the short line, and only it")
    run("kill", "cooked", check=True)


def test_ls_shows_a_script_workers_commands_and_a_restart_count(tree):
    run("start-session", "sc", "echo hi; sleep 30", "--command", "bash {{prompt_file}}", check=True)
    wait_until(lambda: (x := next((r for r in ls() if r["id"] == "sc"), None)) and x["alive"], 10, "sc live")
    r = next(r for r in ls() if r["id"] == "sc")
    assert r["cmd"] == "echo hi; sleep 30" and r["restarts"] == 0
    assert "echo hi; sleep 30" in run("ls", check=True).stdout and "prompts/sc.md" not in run("ls").stdout
    run("restart", "sc", check=True)
    assert next(r for r in ls() if r["id"] == "sc")["restarts"] == 1
    run("kill", "sc", check=True)


def test_log_tail_reads_the_end_of_a_big_log(tree):
    d = tree.d
    tree.start("big", "seq 1 400000; echo LAST-LINE; sleep 30")  # ~2.7 MB
    wait_until(lambda: "LAST-LINE" in run("log", "big", "--tail", "1").stdout, 20, "the whole output")
    assert run("log", "big", "--tail", "3").stdout.splitlines() == ["399999", "400000", "LAST-LINE"]
    assert run("log", "big", "--tail", "0").stdout == ""
    full = run("log", "big").stdout.splitlines()
    assert run("log", "big", "--tail", "200000").stdout.splitlines() == full[-200000:]
    r = run("log", "big", "--grep", "no such line")
    assert r.returncode == 1 and r.stdout == ""  # like grep
    assert run("log", "big", "--grep", "^LAST").returncode == 0
    run("kill", "big", check=True)


def test_tick_dry_run_beside_the_live_loop_is_read_only(data_dir):
    d = data_dir
    sensor(d, "s", "echo '{\"signal\": 7}'")
    t = Tree(d)  # its first beat reads the sensor
    try:
        snaps = os.path.join(d, "snapshots")
        wait_until(lambda: os.path.exists(os.path.join(snaps, "sensor-s.json")), 15, "a live reading")
        before = {n: os.stat(os.path.join(snaps, n)).st_mtime_ns for n in os.listdir(snaps)}
        r = run("tick", "--dry-run")
        assert r.returncode == 0, r.stderr
        assert "a dry run over its last sensor readings" in r.stdout and '"signal": 7' in r.stdout
        assert before == {n: os.stat(os.path.join(snaps, n)).st_mtime_ns for n in os.listdir(snaps)}
        assert run("tick").returncode == 1  # a real beat still refuses
    finally:
        assert t.stop(signal.SIGTERM) == 0


def test_start_session_refuses_a_runner_whose_program_is_missing(tree):
    env = {**os.environ, "PATH": "/usr/bin:/bin"}  # no claude here
    r = run("start-session", "c1", "hello", "claude", env=env)
    assert r.returncode == 1 and r.stderr.startswith("looop start-session: runner 'claude': `claude` not found on PATH")
    assert not any(x["id"] == "c1" for x in ls())


def test_status_cost_is_a_float_and_one_worker_is_singular(data_dir):
    r = run("status", "--json", check=True)
    assert isinstance(json.loads(r.stdout)["cost_today_usd"], float)
    t = Tree(data_dir)
    t.start("only", "sleep 30")
    assert t.stop(signal.SIGTERM) == 0
    assert "stopped 1 worker (only)" in t.output()


def test_kill_and_restart_all(tree):
    for sid in ("a1", "a2"):
        tree.start(sid, "sleep 60")
    r = run("kill", "--all")  # stdin is not a terminal: a bulk stop must be asked for
    assert r.returncode == 1 and "add --yes" in r.stderr and r.stderr.count("\n") == 1
    assert {x["id"] for x in ls() if x["alive"] and x["role"] == "worker"} == {"a1", "a2"}
    before = {x["id"]: x["pid"] for x in ls() if x["role"] == "worker"}
    r = run("restart", "--all", "--yes", timeout=60)
    assert r.returncode == 0 and "restarted a1" in r.stdout and "restarted a2" in r.stdout
    after = {x["id"]: x["pid"] for x in ls() if x["role"] == "worker"}
    assert all(after[k] != before[k] for k in before)
    r = run("kill", "--all", "--yes", timeout=60)
    assert r.returncode == 0 and "a1 killed" in r.stdout and "a2 killed" in r.stdout
    assert not [x for x in ls() if x["alive"] and x["role"] == "worker"]
    assert run("kill").returncode == 1  # neither an id nor --all


def _terminal(name: str) -> tuple[list[str], Any]:
    """A private tmux server's arguments and a `tmux(*args) → stdout` for
    it (skips the test without tmux); the caller starts a session in it and
    ends it with kill_tmux(*sock)."""
    import shutil
    import subprocess
    if not shutil.which("tmux"):
        pytest.skip("tmux not installed")
    sock = ["-L", f"looop-{name}-{os.getpid()}", "-f", "/dev/null"]

    def tmux(*args: str) -> str:
        return subprocess.run(["tmux", *sock, *args], capture_output=True, text=True, timeout=10,
                              check=True).stdout
    return sock, tmux


def test_kill_all_asks_on_a_terminal_and_ends_its_line(tree, tmp_path):
    """`kill --all` on a terminal asks [y/N], driven in tmux as a person
    would: n keeps them; Ctrl-C and Ctrl-D do nothing and end the prompt's
    line (the shell's next output once ran on after `[y/N] `); y kills."""
    from conftest import BIN, kill_tmux
    sock, tmux = _terminal("edges")
    tree.start("k1", "sleep 60")

    def ask(*keys: str) -> list[str]:
        """Run `kill --all`, answer with `keys`: the lines from the question on."""
        tmux("send-keys", "clear", "Enter")  # the last answer off the screen first
        wait_until(lambda: tmux("capture-pane", "-p").strip() == "$", 15, "a clear screen")
        tmux("send-keys", f"LOOOP_DATA_DIR={tree.d} {BIN} kill --all; echo rc=$?", "Enter")
        wait_until(lambda: "[y/N]" in tmux("capture-pane", "-p"), 15, "the question")
        tmux("send-keys", *keys)
        return wait_until(lambda: _answered(tmux("capture-pane", "-p").splitlines()), 30, "the verb to end")
    try:
        tmux("new-session", "-d", "-x", "200", "-y", "30", "env PS1='$ ' bash --norc --noprofile")
        q = "kill 1 worker (k1)? [y/N]"
        assert ask("n", "Enter") == [q + " n", "nothing done", "rc=0"]
        assert ask("C-c") == [q + " ^C", "rc=130"]
        assert ask("C-d") == [q, "nothing done", "rc=0"]
        assert {x["id"] for x in ls() if x["alive"] and x["role"] == "worker"} == {"k1"}
        assert ask("y", "Enter") == [q + " y", "k1 killed", "rc=0"]
        assert not [x for x in ls() if x["alive"] and x["role"] == "worker"]
    finally:
        kill_tmux(*sock)


def _answered(lines: list[str]) -> list[str] | None:
    """The screen's lines from the question to the `rc=` line after it
    (blank ones dropped), None while the verb runs."""
    start = next((i for i, ln in enumerate(lines) if ln.startswith("kill 1 worker (k1)? [y/N]")), None)
    if start is None:
        return None
    end = next((i for i in range(start, len(lines)) if "rc=" in lines[i]), None)
    return None if end is None else [ln for ln in lines[start:end + 1] if ln]


def test_ctrl_c_on_a_following_or_blocking_verb_ends_its_line(tree):
    """Ctrl-C on `log -f`, `watch`, `logs`, `ls -w`, `wait`, `expect`,
    driven in tmux as a person would: the terminal echoes `^C` and the
    shell's next output starts a line of its own (it ran on after `^C`,
    as `^C$ `). The followers end 0 (stopping to follow is their normal
    end), the blocking verbs 130."""
    import psutil
    from conftest import BIN, kill_tmux
    sock, tmux = _terminal("ctrlc")
    tree.start("cc", "while :; do echo tick; sleep 0.5; done")

    def interrupt(verb: str, started: str) -> list[str]:
        """Run `verb`, wait for `started` on the screen, Ctrl-C: the lines from `^C` on."""
        tmux("send-keys", f"clear; LOOOP_DATA_DIR={tree.d} {BIN} {verb}; echo rc=$?", "Enter")
        wait_until(lambda: "rc=" not in (x := tmux("capture-pane", "-p"))
                   and (started() if callable(started) else started in x), 15, f"{verb} to run")
        tmux("send-keys", "C-c")
        lines = wait_until(lambda: "rc=" in (x := tmux("capture-pane", "-p")) and x.splitlines(), 30,
                           f"{verb} to end")
        start = max(i for i, ln in enumerate(lines) if "^C" in ln)
        return [ln.split("^C")[-1] for ln in lines[start:] if ln][:2]
    def running(*argv: str):
        """The verb's process sleeps in its poll (a blocking verb prints
        nothing to see; a Ctrl-C during the interpreter's start is Python's)."""
        def polling(pid: int) -> bool:
            try:
                with open(f"/proc/{pid}/wchan") as f:
                    return f.read() == "hrtimer_nanosleep"
            except OSError:
                return False

        def up() -> bool:
            return any(p.info["cmdline"][-len(argv):] == list(argv) and polling(p.pid)
                       for p in psutil.process_iter(["cmdline"]) if p.info["cmdline"])
        return up
    try:
        tmux("new-session", "-d", "-x", "200", "-y", "30", "env PS1='$ ' bash --norc --noprofile")
        for verb, started, code in [("log -f cc", "tick", 0), ("watch cc", "tick", 0),
                                    ("logs --no-pulse", "cc | tick", 0), ("ls -w", "cc", 0),
                                    ("wait cc", running("wait", "cc"), 130),
                                    ("expect cc never-printed", running("expect", "cc", "never-printed"), 130)]:
            assert interrupt(verb, started) == ["", f"rc={code}"], verb
    finally:
        kill_tmux(*sock)


def test_start_session_cwd_and_env(tree, tmp_path):
    where = tmp_path / "work dir"
    where.mkdir()
    run("start-session", "ce", 'pwd; echo "FOO=$FOO BAR=$BAR"', "--command", "bash {{prompt_file}}",
        "--cwd", str(where), "--env", "FOO=one two", "--env", "BAR=", check=True)
    wait_until(lambda: "FOO=" in run("log", "ce").stdout, 10, "the worker's output")
    out = run("log", "ce").stdout
    assert str(where) in out and "FOO=one two BAR=" in out
    r = run("start-session", "bad", "x", "--env", "NOEQUALS")
    assert r.returncode == 1 and "use NAME=value" in r.stderr
    r = run("start-session", "bad", "x", "--cwd", str(tmp_path / "nope"))
    assert r.returncode == 1 and "no such directory" in r.stderr


def test_logs_follows_every_session_prefixed(tree):
    import subprocess

    from conftest import BIN
    # --lines: whether `logs` is up before or after a worker wrote, its line shows
    p = subprocess.Popen([BIN, "logs", "--interval", "50ms", "--lines", "5"], stdout=subprocess.PIPE)
    try:
        tree.start("l1", "echo first-line; sleep 30")
        tree.start("l2", "echo second-line; sleep 30")
        buf = bytearray()
        os.set_blocking(p.stdout.fileno(), False)

        def seen() -> bool:
            try:
                buf.extend(os.read(p.stdout.fileno(), 65536))
            except BlockingIOError:
                pass
            got = [" ".join(ln.split()) for ln in buf.decode("utf-8", "replace").splitlines()]
            return "l1 | first-line" in got and "l2 | second-line" in got  # ids padded to one width
        wait_until(seen, 15, "both workers' lines, prefixed")
    finally:
        p.send_signal(signal.SIGINT)
        os.set_blocking(p.stdout.fileno(), True)
        p.communicate(timeout=10)  # drained: a full pipe must not hold its exit
        assert p.returncode == 0
    run("kill", "--all", "--yes", check=True)


def test_ls_wide_shows_cpu_rss_and_restarts(tree):
    tree.start("wd", "sleep 30")
    out = run("ls", "--wide", check=True).stdout.splitlines()
    head = out[0].split()
    assert head[:9] == ["ID", "STATE", "ACTIVITY", "WHERE", "PID", "AGE", "CPU", "RSS", "↺"]
    row = next(ln for ln in out if ln.startswith("wd "))
    assert "%" in row and "M" in row
    run("kill", "wd", check=True)
