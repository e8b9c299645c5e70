"""Child specs: plain data, validated before any process starts (OTP style)."""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Any

from looop.tree.backends.base import LOCAL, Placement
from looop.tree.restart import Policy, Restart  # noqa: F401 (Restart: part of the spec's vocabulary)


@dataclass(frozen=True)
class ChildSpec:
    sid: str                       # session id; "pulse" for the pulse
    role: str                      # "pulse" | "worker"
    argv: tuple[str, ...]          # the PTY command
    cwd: str
    env: tuple[tuple[str, str], ...]
    data_dir: str
    restart: Policy = Policy()      # when the root restarts it (looop.tree.restart)
    grace: float = 5.0             # seconds between SIGTERM and SIGKILL
    cols: int = 120
    rows: int = 40
    tee_stdout: bool = False       # the pulse streams its output to the root's terminal
    onlcr: bool = True             # False: bare \n (the pulse's lines go to logs/journald)
    pass_fds: tuple[int, ...] = field(default=())  # fds handed to the command (pulse link)
    log_max: int = 64 << 20        # output.log rotation; 0 = never
    where: Placement = LOCAL       # the backend that runs argv (SPEC §17)
    # activity (SPEC §15, looop.tree.tracker): the runner's screen patterns
    # as ((state, (regex, ...)), ...), validated before the child starts
    states: tuple[tuple[str, tuple[str, ...]], ...] = ()
    settle: float = 1.5            # seconds of quiet before the screen is read
    stuck: float = 900.0           # LOOOP_WORKER_STUCK
    starting: float = 30.0         # LOOOP_WORKER_STARTING

    def __post_init__(self) -> None:
        if self.role not in ("pulse", "worker"):
            raise ValueError(f"bad role {self.role!r}")
        if not self.argv:
            raise ValueError("empty argv")
        if self.grace < 0 or not (1 <= self.cols <= 1000 and 1 <= self.rows <= 1000):
            raise ValueError("bad grace or size")


_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def check_cwd_env(cwd: Any, env: Any) -> tuple[str | None, dict[str, str]]:
    """A worker's own directory and extra environment (start-session --cwd,
    --env K=V), validated; LooopError with one line."""
    from looop.errors import LooopError
    if cwd is not None:
        if not isinstance(cwd, str) or not os.path.isabs(cwd) or not os.path.isdir(cwd):
            raise LooopError(f"--cwd {cwd!r}: not an existing absolute directory")
    out: dict[str, str] = {}
    if env is None:
        env = {}
    for k, v in env.items() if isinstance(env, dict) else [("", env)]:
        if not isinstance(k, str) or not _ENV_NAME.match(k) or not isinstance(v, str) or "\0" in v:
            raise LooopError(f"--env: bad variable {k!r} (use NAME=value)")
        if k.startswith("LOOOP_"):
            raise LooopError(f"--env: {k} is set by looop itself")
        out[k] = v
    return cwd, out
