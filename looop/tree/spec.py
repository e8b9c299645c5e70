"""Child specs: plain data, validated before any process starts (OTP style)."""
from __future__ import annotations

from dataclasses import dataclass, field

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

    def __post_init__(self) -> None:
        if self.role not in ("pulse", "worker"):
            raise ValueError(f"bad role {self.role!r}")
        if not self.argv:
            raise ValueError("empty argv")
        if self.grace < 0 or not (1 <= self.cols <= 1000 and 1 <= self.rows <= 1000):
            raise ValueError("bad grace or size")
