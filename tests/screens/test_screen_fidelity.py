"""Fidelity: real programs driven identically in tmux (the reference) and in
a looop worker; `capture-pane -p` and `looop shot` must agree line by line
(trailing spaces stripped), and the cursor too (issue 10, SPEC §15).

All programs run at 120x40; a subset at 80x24 and 200x60. Programs with
clocks or live figures (top, htop, watch) are compared on the lines that
carry no digits: the time, load, pids and CPU figures differ between any two
runs. A missing program skips with its name. The default engine runs every
case; the pyte engine a cheap subset.
"""
from __future__ import annotations

import itertools
import os
import shlex
import shutil
import signal
import subprocess
import sys

import pytest

from conftest import Tree, assert_no_leftovers, run, use_profile
from fidelity import Program, Step, Tmux, command, compare, looop_keys, settle_both

from looop.screen import ghostty

pytestmark = pytest.mark.skipif(not shutil.which("tmux"), reason="needs tmux (the reference terminal)")
_n = itertools.count()
DIGITS = r"\d"

PY = """import os, sys

def main(argv):
    # a comment
    total = 0
    for n in range(10):
        total += n * 2
    print(f"total={total}", file=sys.stderr)
    return {"ok": True, 'n': 3.5}
"""


def _files(cwd: str) -> None:
    with open(os.path.join(cwd, "file.txt"), "w") as f:
        f.writelines(f"line {n:03d} of the file: the quick brown fox jumps over the lazy dog\n"
                     for n in range(1, 201))
    with open(os.path.join(cwd, "script.py"), "w") as f:
        f.write(PY)
    repo = os.path.join(cwd, "repo")
    if os.path.isdir(repo):
        return
    os.makedirs(repo)
    env = dict(os.environ, GIT_AUTHOR_NAME="Ada", GIT_AUTHOR_EMAIL="ada@example.org",
               GIT_COMMITTER_NAME="Ada", GIT_COMMITTER_EMAIL="ada@example.org")
    git = ["git", "-C", repo, "-c", "init.defaultBranch=main", "-c", "commit.gpgsign=false"]
    subprocess.run(git + ["init", "-q"], check=True, env=env, timeout=20)
    for i in range(1, 6):
        with open(os.path.join(repo, "notes.txt"), "a") as f:
            f.write(f"note {i}\n")
        d = f"2026-01-0{i}T10:00:00+0000"
        subprocess.run(git + ["add", "."], check=True, env=env, timeout=20)
        subprocess.run(git + ["commit", "-q", "-m", f"note {i}: a change"], check=True, timeout=20,
                       env=dict(env, GIT_AUTHOR_DATE=d, GIT_COMMITTER_DATE=d))


VIM = "vim -u NONE -N -i NONE -n +'set ttimeout ttimeoutlen=20'"  # Esc alone: no 1 s wait
PROGRAMS = {p.name: p for p in [
    Program("vim", f"{VIM} file.txt", needs="vim", steps=(
        Step(until="line 001"),
        Step(("j", "j", "i", "text:typed in vim ", "Escape"), "typed in vim"))),
    Program("vim-syntax", f"{VIM} +'syntax on' +'set number ruler' script.py", needs="vim", steps=(
        Step(until="def main"), Step(("j", "j", "j", "w"), "def main"))),
    Program("less", "PS1='$ ' bash --norc --noprofile -i", needs="less", steps=(
        Step(until=r"\$$"),
        Step(("text:less file.txt", "Enter"), "line 001"),
        Step(("Space",), "line 0[3-9]"),
        Step(("q",), r"\$ less file.txt\n\$$"))),
    Program("nano", "nano -I file.txt", needs="nano", steps=(
        Step(until="GNU nano"), Step(("Down", "Down", "text:typed in nano "), "typed in nano"))),
    Program("htop", "htop -d 100", needs="htop", volatile=DIGITS, cursor=False, steps=(
        Step(until="F10Quit"),)),
    Program("top", "top -d 100", needs="top", volatile=DIGITS, cursor=False, steps=(
        Step(until="PID USER"),)),
    Program("mc", "mc -u -d", needs="mc", steps=(
        Step(until="Quit"),), notes="no subshell (-u), no mouse (-d)"),
    Program("tig", "tig -C repo", needs="tig", steps=(
        Step(until="note 5"), Step(("Down",), "note 4"))),
    Program("watch", "watch -n 100 -t 'echo hello from watch; echo second line'", needs="watch",
            steps=(Step(until="hello from watch"),)),
    Program("dialog", "dialog --menu 'Pick a fruit' 15 40 5 a Apple b Banana c Cherry", needs="dialog",
            steps=(Step(until="Apple"), Step(("Down",), "Banana"))),
    Program("python", f"{shlex.quote(sys.executable)} -q", steps=(
        Step(until=">>>$"), Step(("text:1 + 41", "Enter"), r"42\n>>>$"),
        Step(("text:'中文' * 3", "Enter"), r"中文中文中文'\n>>>$"))),
]}

CASES = [(name, 120, 40) for name in PROGRAMS] + [
    ("vim", 80, 24), ("less", 80, 24), ("dialog", 80, 24), ("python", 80, 24), ("nano", 80, 24),
    ("vim-syntax", 200, 60), ("htop", 200, 60), ("mc", 200, 60)]
PYTE_CASES = [("vim", 120, 40), ("less", 120, 40), ("dialog", 80, 24), ("python", 120, 40)]
ENGINE = "ghostty" if ghostty.available() else "pyte"


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    base = tmp_path_factory.mktemp("fidelity")
    cwd = str(base / "work")
    os.makedirs(cwd)
    _files(cwd)
    trees: dict[str, Tree] = {}
    with pytest.MonkeyPatch.context() as mp:
        d = use_profile(mp, str(base / "data"))
        home = os.environ["HOME"]

        def tree(engine: str) -> Tree:
            if engine not in trees:
                dd = d if engine == ENGINE else d + "-" + engine
                old, os.environ["LOOOP_DATA_DIR"] = os.environ["LOOOP_DATA_DIR"], dd
                try:  # Tree waits for its pulse through `looop ls`, which reads the env
                    trees[engine] = Tree(dd, env=dict(os.environ, LOOOP_SCREEN_ENGINE=engine))
                finally:
                    os.environ["LOOOP_DATA_DIR"] = old
            return trees[engine]
        yield tree, cwd, home
        for t in trees.values():
            if t.proc.poll() is None:
                t.stop(signal.SIGTERM)
            else:
                t.out.close()
    for t in trees.values():
        assert_no_leftovers(t.d)


def fidelity(env, name: str, cols: int, rows: int, engine: str) -> None:
    tree_of, cwd, home = env
    prog = PROGRAMS[name]
    if prog.needs and not shutil.which(prog.needs):
        pytest.skip(f"{prog.needs} is not installed (apt-get install {prog.needs})")
    tree = tree_of(engine)
    sid = f"f{next(_n)}"
    cmd = f"cd {shlex.quote(cwd)} && " + command(prog, cols, rows, home)
    tmux = Tmux(f"looop-fid-{os.getpid()}-{sid}")
    try:
        tmux.start(cols, rows, cmd, os.path.join(os.path.dirname(cwd), f"{sid}.tmux.conf"))
        old, os.environ["LOOOP_DATA_DIR"] = os.environ["LOOOP_DATA_DIR"], tree.d
        try:
            run("start-session", sid, cmd, "--command", "bash {{prompt_file}}", check=True)
            run("resize", sid, f"{cols}x{rows}", check=True)
            report = []
            for i, step in enumerate(prog.steps):
                tmux.keys(step.keys)
                looop_keys(sid, step.keys)
                a, b = settle_both(tmux, tree.d, sid, step.until, rows, timeout=20)
                res = compare(a, b, prog)
                report.append(f"{name} {cols}x{rows} {engine} step {i}: {res.same}/{res.compared} "
                              f"identical of {res.lines}" + ("" if res.cursor_same else
                                                             f", cursor tmux {a[1]} looop {b[1]}"))
                assert res.same == res.compared and res.cursor_same, \
                    "\n".join(report + res.diffs[:12])
            print("\n".join(report))
        finally:
            run("kill", sid)
            os.environ["LOOOP_DATA_DIR"] = old
    finally:
        tmux.kill()


@pytest.mark.parametrize("name,cols,rows", CASES, ids=[f"{n}-{c}x{r}" for n, c, r in CASES])
def test_fidelity(env, name, cols, rows):
    fidelity(env, name, cols, rows, ENGINE)


@pytest.mark.parametrize("name,cols,rows", PYTE_CASES, ids=[f"{n}-{c}x{r}" for n, c, r in PYTE_CASES])
def test_fidelity_pyte(env, name, cols, rows):
    if ENGINE == "pyte":
        pytest.skip("the default engine is pyte here: covered by test_fidelity")
    fidelity(env, name, cols, rows, "pyte")
