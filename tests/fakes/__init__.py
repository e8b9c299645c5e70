"""Helpers for the pulse tests: a data dir whose default runner is the
scripted fake decider (fakes/runner.py), and its control directory."""
from __future__ import annotations

import json
import os
import sys
from typing import Any

import pytest

FAKE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "runner.py")


@pytest.fixture(autouse=True)
def isolated_home(tmp_path, monkeypatch):
    """Runners, sensors and workers run under `bash -l`: give them an empty
    HOME so the tests never depend on (or wait for) this machine's login
    scripts — e.g. a `pyenv rehash` stuck on its lock file."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    return str(home)


class Fake:
    """The control dir of one fake runner: queue decisions, count calls."""

    def __init__(self, ctl: str):
        self.ctl = ctl
        self.seq = 0
        os.makedirs(os.path.join(ctl, "queue"), exist_ok=True)

    def queue(self, decision: Any) -> None:
        """Enqueue a decision (a dict → JSON; str/bytes written raw)."""
        self.seq += 1
        data = json.dumps(decision) if isinstance(decision, dict) else decision
        data = data.encode() if isinstance(data, str) else data
        path = os.path.join(self.ctl, "queue", f"{self.seq:04d}.json")
        with open(path + ".tmp", "wb") as f:
            f.write(data)
        os.replace(path + ".tmp", path)

    def queued(self) -> int:
        return len([n for n in os.listdir(os.path.join(self.ctl, "queue")) if n.endswith(".json")])

    def mode(self, m: str) -> None:
        with open(os.path.join(self.ctl, "mode"), "w") as f:
            f.write(m)

    def calls(self) -> list[dict[str, Any]]:
        try:
            with open(os.path.join(self.ctl, "calls")) as f:
                return [json.loads(ln) for ln in f if ln.strip()]
        except FileNotFoundError:
            return []

    def prompt(self) -> str:
        with open(os.path.join(self.ctl, "last-prompt.md")) as f:
            return f.read()


def setup_fake(d: str, ctl: str, interactive: str = "bash {{prompt_file}}", **cfg: Any) -> Fake:
    """Write looop.json (default runner: the fake) and mark the dir seeded,
    so the world holds only what the test puts there."""
    os.makedirs(d, exist_ok=True)
    config = {"default": "fake",
              "runners": {"fake": {"tick": f"{sys.executable} {FAKE} {ctl}",
                                   "interactive": interactive}}, **cfg}
    with open(os.path.join(d, "looop.json"), "w") as f:
        json.dump(config, f)
    open(os.path.join(d, ".seeded"), "w").close()
    return Fake(ctl)


def sensor(d: str, name: str, script: str) -> None:
    os.makedirs(os.path.join(d, "sensors"), exist_ok=True)
    path = os.path.join(d, "sensors", name + ".sh")
    with open(path, "w") as f:
        f.write("#!/usr/bin/env bash\n" + script + "\n")
    os.chmod(path, 0o755)


def read(d: str, *parts: str) -> str:
    with open(os.path.join(d, *parts), encoding="utf-8") as f:
        return f.read()


def force_decide(d: str) -> None:
    """Forget the last world hash so the next beat decides."""
    try:
        os.unlink(os.path.join(d, ".last-tick-hash"))
    except FileNotFoundError:
        pass


def bump_world(d: str) -> None:
    """Change the world (a goal file's body) so the next beat decides.

    With a live pulse, prefer this to `force_decide`: a beat in flight may
    write its hash after the deletion and the change would be lost, while a
    changed goal is seen by the next beat whatever happens in between."""
    path = os.path.join(d, "goals", "bump.md")
    try:
        n = int(open(path).read().split()[-1]) + 1
    except (FileNotFoundError, ValueError, IndexError):
        n = 1
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path + ".tmp", "w") as f:
        f.write(f"test bump {n}\n")
    os.replace(path + ".tmp", path)
