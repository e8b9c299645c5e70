"""Shell completion: the scripts load, and TAB completes verbs, flags and
live session ids — simulated in bash, and typed into real bash and zsh
terminals (tmux on a private socket)."""
from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from conftest import BIN, run, wait_until
from test_readme import kill_tmux
from test_service_cli import PUBLIC, env_with


# -- completions -------------------------------------------------------------------

def bash_complete(words: list[str], env: dict[str, str] | None = None) -> list[str]:
    """Run the generated bash completion for a command line ('' = the word at TAB)."""
    import shlex
    line = " ".join(words)
    words = [BIN, *words[1:]]  # the script asks this same executable for ids
    script = (f'eval "$({BIN} config bash)"; COMP_WORDS=({" ".join(shlex.quote(w) for w in words)}); '
              f'COMP_CWORD={len(words) - 1}; COMP_LINE={shlex.quote(line)}; _looop; '
              f'printf "%s\\n" "${{COMPREPLY[@]}}"')
    r = subprocess.run(["bash", "--norc", "-c", script], capture_output=True, text=True,
                       timeout=20, env=env)
    assert r.returncode == 0, r.stderr
    return [x for x in r.stdout.splitlines() if x]


def test_bash_completion_loads():
    r = subprocess.run(["bash", "-c", f'eval "$({BIN} config bash)"; complete -p looop'],
                       capture_output=True, text=True, timeout=20)
    assert r.returncode == 0 and "complete -F _looop looop" in r.stdout, r.stderr


def test_bash_completion_verbs_flags_and_live_ids(data_dir, tree, tmp_path):
    assert set(bash_complete(["looop", ""])) >= set(PUBLIC)
    assert bash_complete(["looop", "wait-"]) == ["wait-idle"]
    assert set(bash_complete(["looop", "ls", "--"])) >= {"--json", "--watch", "--all", "--interval"}
    assert bash_complete(["looop", "config", ""]) == ["bash", "zsh"]
    t = tree
    t.start("alpha", "sleep 60")
    run("start-session", "beta", "exit 3", "rules", check=True)
    # workers start under `bash -lc`: a slow login profile (pyenv rehash on a busy box) takes seconds
    assert run("wait", "beta", "--timeout", "30s", timeout=40).returncode == 3
    assert bash_complete(["looop", "send", ""]) == ["alpha"]          # live workers only
    assert bash_complete(["looop", "send", "alpha", ""]) == []         # only the first argument
    assert bash_complete(["looop", "log", "--tail", ""]) != []
    assert set(bash_complete(["looop", "log", ""])) == {"alpha", "beta", "pulse"}
    other = env_with(LOOOP_DATA_DIR=str(tmp_path / "other-profile"))
    assert bash_complete(["looop", "log", ""], env=other) == []        # honours LOOOP_DATA_DIR
    if shutil.which("zsh"):  # zsh also sees a `LOOOP_DATA_DIR=… looop` prefix on the line
        r = subprocess.run(["zsh", "-f", "-c", f'eval "$({BIN} config zsh)"; '
                            f'BUFFER="LOOOP_DATA_DIR={data_dir} looop log "; _looop_ids {BIN} all'],
                           capture_output=True, text=True, timeout=20, env=other)
        assert r.stdout.split() == ["alpha", "beta", "pulse"], r.stderr
    t.stop()


@pytest.mark.skipif(shutil.which("zsh") is None, reason="zsh is not installed")
def test_zsh_completion_loads(tmp_path):
    r = subprocess.run(["zsh", "-f", "-c", f'eval "$({BIN} config zsh)"; print -r -- $_comps[looop]; '
                                           "_looop_flags ls"],
                       capture_output=True, text=True, timeout=20, env=env_with(HOME=str(tmp_path)))
    assert r.returncode == 0, r.stderr
    first, flags = r.stdout.splitlines()[:2]
    assert first == "_looop" and {"--json", "--watch"} <= set(flags.split())


def test_config_needs_a_shell():
    r = run("config")
    assert r.returncode == 1 and r.stderr.startswith("looop config:")


RC = {"zsh": ".zshrc", "bash": ".bashrc"}


@pytest.mark.parametrize("sh", ["bash", "zsh"])
def test_completion_in_a_real_terminal(sh, tree, tmp_path):
    """Type into an interactive shell (tmux, private socket) and press TAB.
    Session ids come from the exported LOOOP_DATA_DIR; in zsh that names an
    empty profile and a `LOOOP_DATA_DIR=…` prefix on the line must win over
    it (bash hides such a prefix from completion functions)."""
    import shlex
    import uuid
    if not (shutil.which(sh) and shutil.which("tmux")):
        pytest.skip(f"needs {sh} and tmux")
    tree.start("alpha", "sleep 60")
    (tmp_path / RC[sh]).write_text(
        f"PATH={shlex.quote(os.path.dirname(BIN))}:/usr/bin:/bin\n"
        f"export LOOOP_DATA_DIR={shlex.quote(str(tmp_path / 'empty') if sh == 'zsh' else tree.d)}\n"
        "PS1='z# '\n"
        f'eval "$(looop config {sh})"\n')
    sock = f"looop-{sh}-{uuid.uuid4().hex[:8]}"
    start = {"zsh": "zsh -i", "bash": f"bash --noprofile --rcfile {tmp_path / RC[sh]} -i"}[sh]

    def tmux(*args: str) -> str:
        return subprocess.run(["tmux", "-L", sock, *args], capture_output=True, text=True,
                              timeout=10, check=True).stdout

    def line() -> str:
        return [ln for ln in tmux("capture-pane", "-p").splitlines() if ln.startswith("z#")][-1]

    try:
        tmux("-f", "/dev/null", "new-session", "-d", "-x", "250", "-y", "30",
             f"env -i HOME={shlex.quote(str(tmp_path))} ZDOTDIR={shlex.quote(str(tmp_path))} TERM=xterm {start}")
        wait_until(lambda: "z#" in tmux("capture-pane", "-p"), 10, "the shell prompt")
        prefix = f"LOOOP_DATA_DIR={tree.d} " if sh == "zsh" else ""
        # (capture-pane drops trailing spaces, so compare without them)
        for typed, want in (("looop wait-i", "looop wait-idle"), ("looop ls --a", "looop ls --all"),
                            (prefix + "looop send ", prefix + "looop send alpha")):
            tmux("send-keys", typed, "Tab")
            wait_until(lambda w=want: line().rstrip().endswith(w), 10, f"{sh} to complete {typed!r} to {want!r}")
            tmux("send-keys", "C-u")
            wait_until(lambda: line().rstrip() == "z#", 5, "the line to clear")
    finally:
        kill_tmux(sock)


def test_bash_completion_offers_values(data_dir):
    from looop.cli.completion import KEY_NAMES
    assert "Enter" in bash_complete(["looop", "key", "w1", ""]) and "C-c" in bash_complete(["looop", "key", "w", "Up", "C-"])
    assert sorted(bash_complete(["looop", "shot", "w", "--format", ""])) == ["ansi", "json", "plain"]
    assert sorted(bash_complete(["looop", "cost", ""])) == ["all", "today"]
    runners = bash_complete(["looop", "start-session", "w", "the brief", ""])
    assert {"claude", "codex", "pi", "rules"} <= set(runners)
    assert set(KEY_NAMES.split()) >= {"Enter", "Tab", "Esc"}
