"""The short verbs people and scripts call in loops (`send`, `key`, `ls`,
`inbox`, `status`) import only what they use (SPEC §13: interpreter start
dominates them). Each verb runs for real against a live tree in a fresh
interpreter, which then lists the modules the verb loaded; a heavy import
creeping back fails here.
The speed itself is measured by bench/run.py (`send`, `list`), not here.

Also the steering order `send` relies on: without --verify the paste is the
first op (nothing read before it), and the echo is polled quickly at first."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import wait_until

from looop import steering

# never on these verbs' path: each costs ms to import (bz2 and lzma come with
# shutil, which argparse's help formatter imports) or belongs to the tree/pulse
HEAVY = ("shutil", "bz2", "lzma", "psutil", "orjson", "colorama", "pyte", "pyghostty", "ctypes",
         "setproctitle", "ptyprocess", "subprocess", "threading", "multiprocessing", "hashlib",
         "inspect", "dataclasses", "tempfile", "random", "looop.pulse", "looop.ui",
         "looop.screen.ghostty", "looop.screen.pyteng", "looop.screen.live", "looop.tree.supervisor",
         "looop.tree.child", "looop.tree.ops")
NOT_ON = {
    "send": HEAVY + ("datetime", "looop.screen"),
    "key": HEAVY + ("datetime", "looop.registry", "looop.store.sessions"),
    "ls": HEAVY + ("socket", "selectors", "looop.tree.control", "looop.wire", "looop.screen"),
    "inbox": HEAVY + ("socket", "looop.tree.activity", "looop.screen"),
    # status reads the pulse's schedule (looop.pulse.loop), nothing else of it
    "status": tuple(h for h in HEAVY if h != "looop.pulse") + ("looop.pulse.actions", "looop.pulse.beat",
                                                               "socket", "looop.screen"),
}

PROBE = """import json, sys
before = set(sys.modules)
from looop.cli.main import main
rc = main(sys.argv[1:])
sys.stdout.flush()
print("\\nMODULES " + json.dumps(sorted(set(sys.modules) - before)) + " " + str(rc))
"""


def loaded_by(*argv: str) -> list[str]:
    """Modules a fresh interpreter loads to run `looop <argv>` (beyond its start)."""
    r = subprocess.run([sys.executable, "-c", PROBE, *argv], capture_output=True, text=True,
                       timeout=60, stdin=subprocess.DEVNULL)
    last = r.stdout.rstrip().splitlines()[-1]
    assert last.startswith("MODULES ") and last.endswith(" 0"), r.stdout + r.stderr
    return json.loads(last[len("MODULES "):].rsplit(" ", 1)[0])


def heavy(mods: list[str], verb: str) -> list[str]:
    return [m for m in mods if any(m == h or m.startswith(h + ".") for h in NOT_ON[verb])]


@pytest.fixture(scope="module")
def t(module_tree):
    module_tree.start("imp", "exec cat")
    wait_until(lambda: _screen_ok(), 10, "the worker's cat to read")
    return module_tree


def _screen_ok() -> bool:
    from conftest import run
    return run("shot", "imp").returncode == 0


@pytest.mark.parametrize("argv", [("send", "imp", "hello"), ("send", "-n", "imp", "x"),
                                  ("send", "imp", "hi", "--json"), ("key", "imp", "Left", "C-u"),
                                  ("ls",), ("ls", "--json"), ("inbox",), ("inbox", "--json"),
                                  ("status",)], ids=" ".join)
def test_a_hot_verb_imports_nothing_heavy(t, argv):
    mods = loaded_by(*argv)
    assert "looop.cli.main" in mods  # the probe saw the verb's imports
    assert heavy(mods, argv[0]) == [], f"looop {' '.join(argv)} imported {heavy(mods, argv[0])}"


def test_the_import_check_can_fail(t):
    """The same probe sees a heavy module a verb loads (shot renders a screen)."""
    mods = loaded_by("shot", "imp")
    assert heavy(mods, "send")


class Recorder:
    """A fake `call` of the control socket: a screen that shows what was typed."""

    def __init__(self) -> None:
        self.ops: list[tuple[str, str]] = []
        self.typed = ""

    def __call__(self, op: str, **args: object) -> dict:
        self.ops.append((op, str(args.get("how") or args.get("data") or "")))
        if op == "input":
            self.typed += str(args.get("data", "")).replace("\r", "⏎")  # Enter shows
            return {"ok": True}
        return {"ok": True, "screen": {"lines": [self.typed], "cursor": {"x": len(self.typed), "y": 3}}}


def test_without_verify_the_paste_is_the_first_op_and_the_echo_screen_is_reused():
    c, sent = Recorder(), []
    r = steering.deliver(c, "w", "hello", enter=True, verify=False, sent=lambda t, row: sent.append((t, row)))
    assert c.ops == [("input", "paste"), ("shot", ""), ("input", "\r")]
    assert r == {"ok": True, "delivered": True, "echoed": True, "activity_after": None}
    assert sent == [("hello", 3)]


def test_with_verify_the_screen_before_is_read_first():
    c = Recorder()
    r = steering.deliver(c, "w", "hello", enter=True, verify=True, timeout=1.0)
    assert c.ops[:3] == [("shot", ""), ("input", "paste"), ("shot", "")]
    assert r["echoed"] is True


def test_the_echo_is_polled_quickly_at_first(monkeypatch):
    pauses: list[float] = []
    monkeypatch.setattr(steering.time, "sleep", pauses.append)
    clock = iter(range(0, 1000))
    monkeypatch.setattr(steering.time, "monotonic", lambda: next(clock) * 0.001)
    assert steering._wait(lambda: False, 0.5) is False
    assert pauses[:6] == [0.005, 0.01, 0.02, 0.04, 0.05, 0.05]
    assert all(p > 0 for p in pauses)
