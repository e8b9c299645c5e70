"""The user-facing service verbs: doctor, systemd, config (completions), help,
the did-you-mean for unknown verbs, and the color rules."""
from __future__ import annotations

import importlib.util
import json
import os
import pty
import shutil
import socket
import subprocess

import pytest

from conftest import BIN, Tree, run, wait_until

from looop.cli.main import VERBS

PUBLIC = [v for v in VERBS if not v.startswith("_")]


def env_with(**kw: str | None) -> dict[str, str]:
    env = dict(os.environ)
    for k, v in kw.items():
        if v is None:
            env.pop(k, None)
        else:
            env[k] = v
    return env


def lines_by_check(out: str) -> dict[str, str]:
    """doctor's human output → {check: whole line}."""
    got = {}
    for ln in out.splitlines():
        parts = ln.split(None, 2)
        if len(parts) >= 2:
            got[parts[1] if parts[1] != "data" else "data dir"] = ln
    return got


# -- doctor ---------------------------------------------------------------------

def test_doctor_fresh_profile_is_healthy_on_the_rules_runner(data_dir, tmp_path):
    empty = tmp_path / "bin"
    empty.mkdir()
    r = run("doctor", env=env_with(PATH=str(empty)))
    assert r.returncode == 0, r.stdout + r.stderr
    checks = lines_by_check(r.stdout)
    for name in ("python", "deps", "config", "runner", "data dir", "lock", "socket", "tmux"):
        assert name in checks, f"no {name} line in:\n{r.stdout}"
    assert "rules" in checks["runner"] and "built-in" in checks["runner"]
    assert checks["tmux"].startswith("⚡")  # not on that PATH: a warning, not a failure
    for dep in ("psutil", "ptyprocess", "setproctitle", "orjson", "pyte", "colorama"):
        assert dep in checks["deps"]


def test_doctor_reports_a_missing_runner(data_dir, tmp_path):
    os.makedirs(data_dir)
    cfg = {"default": "mybot", "runners": {"mybot": {"tick": "MODEL=x no-such-llm-cli -p",
                                                      "interactive": "no-such-llm-cli {{prompt_file}}"}}}
    with open(os.path.join(data_dir, "looop.json"), "w") as f:
        json.dump(cfg, f)
    r = run("doctor")
    assert r.returncode == 1
    line = lines_by_check(r.stdout)["runner"]
    assert line.startswith("✗") and "mybot" in line and "`no-such-llm-cli` not found on PATH" in line
    # a preset whose CLI is absent: same, and the fix is named
    with open(os.path.join(data_dir, "looop.json"), "w") as f:
        json.dump({"default": "claude"}, f)
    r = run("doctor", env=env_with(PATH=str(tmp_path)))
    assert r.returncode == 1
    line = lines_by_check(r.stdout)["runner"]
    assert "`claude` not found on PATH" in line and '"default": "rules"' in line


def test_doctor_reports_a_broken_config_with_file_and_position(data_dir):
    os.makedirs(data_dir)
    path = os.path.join(data_dir, "looop.json")
    broken = '{"default": "rules",\n  "interval": 60,,\n}\n'
    with open(path, "w") as f:
        f.write(broken)
    r = run("doctor")
    assert r.returncode == 1
    line = lines_by_check(r.stdout)["config"]
    assert line.startswith("✗") and path in line and "line 2 column 18" in line, line
    assert "not checked" in lines_by_check(r.stdout)["runner"]
    with open(path) as f:
        assert f.read() == broken  # doctor never rewrites it
    j = json.loads(run("doctor", "--json").stdout)
    assert {"check": "config", "level": "fail"}.items() <= next(x for x in j if x["check"] == "config").items()


def test_doctor_sees_a_live_tree_and_stale_leftovers(data_dir):
    t = Tree(data_dir)
    r = run("doctor")
    checks = lines_by_check(r.stdout)
    assert r.returncode == 0, r.stdout
    assert f"held by pid {t.pid}" in checks["lock"]
    assert f"root pid {t.pid}" in checks["socket"]
    t.stop()
    # the root left its lock file; plant a pid that is not looop, and a dead socket
    with open(os.path.join(data_dir, ".lock"), "w") as f:
        f.write(f"{os.getpid()}\n")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(os.path.join(data_dir, ".looop.sock"))
    s.close()
    r = run("doctor")
    checks = lines_by_check(r.stdout)
    assert r.returncode == 0, r.stdout
    assert f"stale: pid {os.getpid()}" in checks["lock"]
    assert checks["socket"].startswith("⚡") and "stale" in checks["socket"]


def test_doctor_reports_a_data_dir_that_is_a_file(data_dir):
    os.makedirs(os.path.dirname(data_dir), exist_ok=True)
    open(data_dir, "w").close()
    r = run("doctor")
    assert r.returncode == 1 and "is not a directory" in lines_by_check(r.stdout)["data dir"]


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs Linux /proc")
def test_doctor_reports_an_unwritable_data_dir(data_dir):
    # /proc takes no files, not even from root (mode bits would not stop root)
    r = run("doctor", env=env_with(LOOOP_DATA_DIR="/proc"))
    assert r.returncode == 1
    assert "/proc is not writable" in lines_by_check(r.stdout)["data dir"]


# -- colors -----------------------------------------------------------------------

def run_on_pty(args: list[str], env: dict[str, str]) -> str:
    """Run looop with stdout on a real terminal; returns what it printed."""
    master, slave = pty.openpty()
    try:
        p = subprocess.Popen([BIN, *args], stdout=slave, stderr=slave, stdin=subprocess.DEVNULL, env=env)
        os.close(slave)
        chunks = []
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: the child closed its side
                break
            if not data:
                break
            chunks.append(data)
        assert p.wait(20) in (0, 1)
    finally:
        os.close(master)
    return b"".join(chunks).decode("utf-8", "replace")


@pytest.mark.parametrize("env, on_tty, on_pipe", [
    ({"NO_COLOR": None, "LOOOP_COLOR": None}, True, False),
    ({"NO_COLOR": "1", "LOOOP_COLOR": None}, False, False),
    ({"NO_COLOR": None, "LOOOP_COLOR": "0"}, False, False),
    ({"NO_COLOR": "1", "LOOOP_COLOR": "1"}, True, True),
])
def test_color_rules(data_dir, env, on_tty, on_pipe):
    e = env_with(**env)
    assert ("\x1b[" in run_on_pty(["doctor"], e)) is on_tty
    assert ("\x1b[" in run("doctor", env=e).stdout) is on_pipe


@pytest.mark.parametrize("force, colored", [(None, False), ("1", True)])
def test_the_loops_own_stream_follows_the_color_rules(data_dir, force, colored):
    """`looop` to a file: plain, unless LOOOP_COLOR=1 (its pulse lines too)."""
    t = Tree(data_dir, env=env_with(NO_COLOR=None, LOOOP_COLOR=force))
    wait_until(lambda: "next beat in" in t.output(), 15, "the first beat to end")
    t.stop()
    pulse_lines = [ln for ln in t.output().splitlines() if "next beat in" in ln]
    assert all(("\x1b[" in ln) is colored for ln in pulse_lines), pulse_lines


def test_json_stream_never_has_escapes(data_dir):
    t = Tree(data_dir, args=("--json",), env=env_with(LOOOP_COLOR="1", NO_COLOR=None))
    # a whole beat, so the stream holds the pulse's lines too (stopping the
    # pulse during its own start-up is another matter: see the report)
    wait_until(lambda: '"event":"cadence"' in t.output().replace(" ", ""), 15, "the first beat to end")
    t.stop()
    out = t.output()
    assert "\x1b" not in out
    objs = []
    for ln in out.splitlines():
        if ln.strip():
            try:
                objs.append(json.loads(ln))
            except ValueError:
                pytest.fail(f"not one JSON object per line: {ln!r}\n--- whole output\n{out}")
    assert objs and all({"ts", "level", "event", "msg"} <= o.keys() for o in objs)


# -- systemd ------------------------------------------------------------------------

def unit_fields(text: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for ln in text.splitlines():
        if "=" in ln and not ln.startswith(("#", "[")):
            k, v = ln.split("=", 1)
            out.setdefault(k, []).append(v)
    return out


def verify(unit: str, tmp_path, user: bool) -> None:
    tool = shutil.which("systemd-analyze")
    if tool is None:
        pytest.skip("systemd-analyze is not installed")
    path = tmp_path / "looop.service"
    path.write_text(unit)
    rt = tmp_path / "runtime"
    rt.mkdir(mode=0o700, exist_ok=True)
    r = subprocess.run([tool, *(["--user"] if user else []), "verify", str(path)], capture_output=True,
                       text=True, timeout=30, env=env_with(XDG_RUNTIME_DIR=str(rt)))
    problems = [ln for ln in (r.stdout + r.stderr).splitlines() if "looop.service" in ln]
    assert r.returncode == 0 and not problems, r.stdout + r.stderr


@pytest.mark.parametrize("user", [False, True])
def test_systemd_unit(data_dir, tmp_path, user):
    unit = run("systemd", *(["--user"] if user else []), check=True).stdout
    f = unit_fields(unit)
    exe, *rest = f["ExecStart"][0].split()
    assert exe == os.path.realpath(BIN) and os.access(exe, os.X_OK)
    assert rest == ["--json"]
    assert f["Type"] == ["notify"] and f["Restart"] == ["on-failure"] and f["KillMode"] == ["mixed"]
    assert int(f["TimeoutStopSec"][0]) > 1 + 2  # LOOOP_SHUTDOWN_GRACE=1 here, + the final reap
    assert f"LOOOP_DATA_DIR={data_dir}" in f["Environment"]
    assert f["WantedBy"] == (["default.target"] if user else ["multi-user.target"])
    assert ("User" in f) is (not user)
    # a non-default profile gets its own unit name, so two profiles can coexist
    where = "~/.config/systemd/user" if user else "/etc/systemd/system"
    assert f"{where}/looop-data.service" in unit and f"LOOOP_DATA_DIR={data_dir} looop systemd" in unit
    verify(unit, tmp_path, user)


def test_systemd_unit_quotes_odd_paths_and_follows_the_grace(tmp_path, monkeypatch):
    d = str(tmp_path / "my data 100%")
    monkeypatch.setenv("LOOOP_DATA_DIR", d)
    monkeypatch.setenv("LOOOP_SHUTDOWN_GRACE", "30")
    unit = run("systemd", "--human", check=True).stdout
    f = unit_fields(unit)
    assert f'"LOOOP_DATA_DIR={d.replace("%", "%%")}"' in f["Environment"]
    assert "LOOOP_SHUTDOWN_GRACE=30" in f["Environment"]
    assert int(f["TimeoutStopSec"][0]) > 30 + 2
    assert "--json" not in f["ExecStart"][0]
    verify(unit, tmp_path, user=False)


# -- help ---------------------------------------------------------------------------

def test_help_is_the_full_manual(data_dir):
    out = run("help", check=True).stdout
    for verb in PUBLIC:
        assert f"  looop {verb if verb != 'run' else '[run]'} " in out, verb
    for word in ("PLAYBOOK", "sensors/", "workers", "Kubernetes", "ONE BEAT", "One move per beat",
                 "Memory is files", "Level-triggered", "Never irreversible without a human",
                 "Workers don't write policy files", "a tiny Kubernetes for your scripts",
                 "looop: worker <id> [<state>[ ⚑][ <activity> <since>]] <data dir>", "Wire format", "SO_PEERCRED"):
        assert word in out, word
    for knob in ("LOOOP_DATA_DIR", "LOOOP_CONFIG", "LOOOP_INTERVAL", "LOOOP_BUSY_INTERVAL",
                 "LOOOP_ACTIVE_INTERVAL", "LOOOP_SHUTDOWN_GRACE", "LOOOP_SENSOR_TIMEOUT",
                 "LOOOP_SENSOR_MAX_BYTES", "LOOOP_TICK_TIMEOUT", "LOOOP_RUNS_KEEP", "LOOOP_SESSION_TTL",
                 "LOOOP_LOG_MAX_BYTES", "LOOOP_LOG_FORMAT", "LOOOP_COLOR", "NO_COLOR",
                 "LOOOP_TMUX_SURFACE", "LOOOP_SHELL_ALLOW_DANGEROUS", "LOOOP_RESTART_MAX",
                 "LOOOP_RESTART_PERIOD"):
        assert f"  {knob} " in out, knob
    # live values: this profile's paths, and the knobs set right now
    assert f"data dir        {data_dir}" in out
    assert f"{data_dir}/.looop.sock" in out
    assert "now: 3600" in out  # LOOOP_INTERVAL from the fixture
    assert "{{" not in out
    assert run("--help", check=True).stdout == out


def test_help_verb_is_the_verbs_help():
    assert run("help", "ls", check=True).stdout == run("ls", "--help", check=True).stdout


@pytest.mark.parametrize("verb", PUBLIC)
def test_every_verb_has_help(verb):
    module = VERBS[verb][0]
    if importlib.util.find_spec(module) is None:
        pytest.skip(f"{module} has not landed yet")
    r = run(verb, "--help")
    assert r.returncode == 0, r.stderr
    if verb not in ("version",):
        assert r.stdout.startswith("usage: looop"), r.stdout[:200]


@pytest.mark.parametrize("typo, close", [("lss", "ls"), ("atach", "attach"), ("doctr", "doctor"),
                                         ("sytemd", "systemd")])
def test_unknown_verb_suggests_the_closest(typo, close):
    r = run(typo)
    assert r.returncode == 1 and r.stdout == ""
    assert r.stderr.strip() == f"looop: unknown verb '{typo}' — did you mean '{close}'?"
    r = run("zzzzzz")
    assert r.returncode == 1 and "looop help" in r.stderr


@pytest.mark.parametrize("args", [("config", "bash"), ("config", "zsh"), ("config", "--ids", "all"),
                                  ("help",), ("doctor",), ("systemd",)])
def test_service_verbs_only_look(data_dir, args):
    """Generating completions runs every verb's parser; none of it (nor help,
    doctor, systemd) may create the profile or start anything."""
    r = run(*args)
    assert r.returncode == 0, r.stderr
    assert not os.path.exists(data_dir)


def test_help_pages_on_a_terminal_only(data_dir, tmp_path):
    got = tmp_path / "paged"
    pager = f"sh -c 'cat > {got}'"
    out = run_on_pty(["help"], env_with(PAGER=pager))
    assert "CONCEPTS" not in out and "CONCEPTS" in got.read_text()   # a terminal: through $PAGER
    got.unlink()
    assert "CONCEPTS" in run("help", env=env_with(PAGER=pager)).stdout  # a pipe: printed
    assert not got.exists()
    assert "CONCEPTS" in run_on_pty(["help"], env_with(PAGER="cat"))


def test_the_manual_ships_as_package_data():
    import configparser
    cfg = configparser.ConfigParser()
    cfg.read(os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "setup.cfg"))
    shipped = [x.strip() for x in cfg["options.package_data"]["looop"].split(",")]
    assert "manual.md" in shipped
