"""The README is executable: every `sh` block runs, as a new user would run it.

Convention (documented at the end of README.md): a marker comment right before
each `sh` block —

    <!-- readme-test: tree -->            run it while `looop` is up
    <!-- readme-test: no-tree -->         run it with no `looop` running
    <!-- readme-test: skip (reason) -->   do not run; the reason names the test
                                          that covers it instead

Blocks run under `bash -e -o pipefail` in a fresh temp HOME: `looop` on PATH
(and no LLM CLI), the default data dir `~/.local/state/looop`, a 1 s beat.
Inline `looop …` code spans are checked to name real verbs and flags.
"""
from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import BIN, tree_processes, wait_until
from conftest import wait_until as _wait

README = Path(__file__).resolve().parent.parent / "README.md"
MARK = re.compile(r"^<!--\s*readme-test:\s*(tree|no-tree|skip)\b\s*(?:\((.*)\))?\s*-->$")
SHELLISH = {"sh", "bash", "shell", "console", "zsh", "shell-session"}
LLM_CLIS = ("claude", "codex", "pi")


@dataclass
class Block:
    line: int
    lang: str
    mode: str | None
    reason: str
    code: str


def blocks(text: str | None = None) -> list[Block]:
    lines = (text if text is not None else README.read_text(encoding="utf-8")).splitlines()
    out, i = [], 0
    while i < len(lines):
        if lines[i].startswith("```"):
            lang, start = lines[i][3:].strip(), i
            prev = next((ln.strip() for ln in reversed(lines[:i]) if ln.strip()), "")
            m = MARK.match(prev)
            i += 1
            body = []
            while i < len(lines) and not lines[i].startswith("```"):
                body.append(lines[i])
                i += 1
            out.append(Block(start + 1, lang, m.group(1) if m else None,
                             (m.group(2) or "") if m else "", "\n".join(body) + "\n"))
        i += 1
    return out


RUNNABLE = [b for b in blocks() if b.lang == "sh" and b.mode in ("tree", "no-tree")]


class Home:
    """A new user's HOME: looop on PATH, nothing else of ours in the env."""

    def __init__(self, tmp_path: Path):
        self.home = tmp_path / "h"
        self.home.mkdir()
        bindir = tmp_path / "bin"
        bindir.mkdir()
        (bindir / "looop").symlink_to(BIN)
        path = f"{bindir}:/usr/bin:/bin"
        found = [c for c in LLM_CLIS if shutil.which(c, path=path)]
        if found:
            pytest.skip(f"{found} on /usr/bin: the README's rules-runner examples need a machine without one")
        self.d = str(self.home / ".local" / "state" / "looop")
        self.env = {k: v for k, v in os.environ.items()
                    if not k.startswith(("LOOOP_", "XDG_", "NOTIFY_", "WATCHDOG_", "TMUX"))
                    and k not in ("NO_COLOR",)}
        self.env.update(HOME=str(self.home), PATH=path, TERM="xterm", LOOOP_INTERVAL="1",
                        LOOOP_SHUTDOWN_GRACE="1", LOOOP_TMUX_SURFACE="0", NO_COLOR="1")
        self.proc: subprocess.Popen | None = None

    def looop(self, *args: str, timeout: float = 20) -> subprocess.CompletedProcess:
        return subprocess.run([BIN, *args], capture_output=True, text=True, env=self.env,
                              timeout=timeout, cwd=self.home)

    def start(self) -> None:
        self.log = open(self.home.parent / "looop.out", "wb")
        self.proc = subprocess.Popen([BIN], env=self.env, cwd=self.home, stdout=self.log,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

        def up() -> bool:
            if self.proc.poll() is not None:
                pytest.fail(f"looop exited ({self.proc.returncode}): {self.output()}")
            import json
            rows = json.loads(self.looop("ls", "--json").stdout or "[]")
            return any(r["id"] == "pulse" and r["alive"] for r in rows)
        wait_until(up, 15, "the pulse to run")

    def output(self) -> str:
        return (self.home.parent / "looop.out").read_text(errors="replace")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            assert self.proc.wait(10) == 0, self.output()
        if self.proc is not None:
            self.log.close()
        wait_until(lambda: not tree_processes(self.d), 5, "the tree to be gone")

    def sh(self, code: str, timeout: float = 60) -> subprocess.CompletedProcess:
        return subprocess.run(["bash", "-e", "-o", "pipefail", "-c", code], capture_output=True,
                              text=True, env=self.env, cwd=self.home, timeout=timeout)


@pytest.fixture
def home(tmp_path):
    h = Home(tmp_path)
    yield h
    try:
        h.stop()
    finally:
        for p in tree_processes(h.d):
            p.kill()


def test_every_shell_block_is_marked():
    for b in blocks():
        if b.lang in SHELLISH:
            assert b.lang == "sh", f"README.md:{b.line}: use ```sh for commands (got {b.lang})"
            assert b.mode, f"README.md:{b.line}: an sh block needs a <!-- readme-test: … --> marker"
            if b.mode == "skip":
                assert b.reason, f"README.md:{b.line}: say why it is skipped, and what covers it"
    assert len(RUNNABLE) >= 6


def test_the_marker_parser_itself():
    text = ("<!-- readme-test: skip (why) -->\n```sh\necho no\n```\n\n```sh\necho bare\n```\n"
            "<!-- readme-test: tree -->\n\n```sh\nlooop ls\n```\n```text\nout\n```\n")
    got = [(b.lang, b.mode, b.reason, b.code) for b in blocks(text)]
    assert got == [("sh", "skip", "why", "echo no\n"), ("sh", None, "", "echo bare\n"),
                   ("sh", "tree", "", "looop ls\n"), ("text", None, "", "out\n")]


@pytest.mark.parametrize("block", RUNNABLE, ids=[f"L{b.line}" for b in RUNNABLE])
def test_readme_block(home, block):
    if block.mode == "tree":
        home.start()
    r = home.sh(block.code)
    assert r.returncode == 0, (f"README.md:{block.line} failed ({r.returncode})\n--- block\n{block.code}"
                               f"--- stdout\n{r.stdout}\n--- stderr\n{r.stderr}\n--- looop\n"
                               + (home.output() if home.proc else ""))
    home.stop()


def test_json_examples_are_valid_configs():
    from looop.store import config
    examples = [b for b in blocks() if b.lang == "json"]
    assert examples
    for b in examples:
        cfg = config.parse(b.code, f"README.md:{b.line}")
        assert config.runner({**cfg, "runners": {**config.PRESETS, **cfg["runners"]}}, None)


def _inline_looop_spans() -> list[str]:
    text = re.sub(r"<!--.*?-->", "", README.read_text(encoding="utf-8"), flags=re.S)
    text = re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)
    return [s for s in re.findall(r"`([^`\n]+)`", text) if re.match(r"looop(\s|$)", s)]


def test_inline_commands_name_real_verbs_and_flags():
    from looop.cli.completion import verb_spec
    from looop.cli.main import VERBS
    spans = _inline_looop_spans()
    assert len(spans) > 10
    for span in spans:
        words = span.split("|")[0].split()[1:]
        verb = "run" if not words or words[0].startswith("-") else words[0]
        assert verb in VERBS and not verb.startswith("_"), f"README: `{span}` — no verb {verb!r}"
        flags, _ = verb_spec(verb)
        for w in words:
            if w.startswith("-") and w != "-":  # a bare `-` is stdin, not a flag
                assert w.split("=")[0] in flags, f"README: `{span}` — {verb} has no flag {w}"


def kill_tmux(sock: str) -> None:
    """Stop a private tmux server and remove its socket file (tmux 3.3 leaves it)."""
    path = subprocess.run(["tmux", "-L", sock, "display-message", "-p", "#{socket_path}"],
                          capture_output=True, text=True, timeout=10).stdout.strip()
    subprocess.run(["tmux", "-L", sock, "kill-server"], capture_output=True, timeout=10)
    if path.endswith("/" + sock):
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass


def _tmux(sock: str, *args: str) -> str:
    return subprocess.run(["tmux", "-L", sock, *args], capture_output=True, text=True,
                          timeout=10, check=True).stdout


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")
def test_attach_block_in_tmux(home, tmp_path):
    """The README's attach block, line by line: start a shell worker, attach
    from a real terminal, type into it, detach with Ctrl-\\ Ctrl-\\, kill it."""
    block = next(b for b in blocks() if "looop attach shell" in b.code)
    start, attach, kill = [ln.split("  #")[0].strip() for ln in block.code.strip().splitlines()]
    assert attach == "looop attach shell"
    home.start()
    assert home.sh(start).returncode == 0
    rc = tmp_path / "rc"
    rc.write_text("".join(f"export {k}={shlex_quote(v)}\n" for k, v in home.env.items()) + "PS1='t$ '\n")
    sock = f"looop-test-{uuid.uuid4().hex[:8]}"
    try:
        _tmux(sock, "-f", "/dev/null", "new-session", "-d", "-x", "120", "-y", "40", "-c", str(home.home),
              f"bash --noprofile --rcfile {rc} -i")

        def pane() -> str:
            return _tmux(sock, "capture-pane", "-p", "-J", "-S", "-200")

        def wait_until(cond, timeout, what):  # noqa: F811 — shows the screen on failure
            try:
                return _wait(cond, timeout, what)
            except BaseException:
                print("--- tmux pane\n" + pane())
                raise
        wait_until(lambda: "t$" in pane(), 10, "the tmux shell")
        _tmux(sock, "send-keys", attach, "Enter")
        # Only the worker has LOOOP_SESSION_ID: "shell-42" proves the keys went
        # through it. Keys typed before attach switches the terminal to raw mode
        # are flushed, so type again until it answers (each try waits 1 s).
        def typed_into_worker() -> bool:
            _tmux(sock, "send-keys", "echo $LOOOP_SESSION_ID-$((6*7))", "Enter")
            deadline = time.monotonic() + 1
            while time.monotonic() < deadline:
                if "shell-42" in pane():
                    return True
                time.sleep(0.05)
            return False
        wait_until(typed_into_worker, 10, "output from the attached worker")
        _tmux(sock, "send-keys", "C-\\", "C-\\")
        wait_until(lambda: "[detached]" in pane(), 10, "[detached]")
        _tmux(sock, "send-keys", "echo back-$((1+1))", "Enter")
        wait_until(lambda: "back-2" in pane(), 10, "the terminal back in the tmux shell")
        import json
        rows = json.loads(home.looop("ls", "--json").stdout)
        assert any(r["id"] == "shell" and r["alive"] for r in rows), "detach must not stop the worker"
        assert home.sh(kill).returncode == 0
    finally:
        kill_tmux(sock)


def shlex_quote(v: str) -> str:
    import shlex
    return shlex.quote(v)
