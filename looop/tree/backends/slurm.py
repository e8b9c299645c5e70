"""slurm: the worker runs as a Slurm job, carried by `srun --pty` in the
child's local PTY (srun forwards bytes and the window size).

Named `looop-<sid>-<h>` with comment `looop:<h>:<sid>`, so the next root
finds its data dir's jobs in `squeue --me` by the hash. The environment is
an allowlist (`--export=NAMES`: measured on Slurm 22.05, `--export=NONE,NAMES`
propagates none of the names); the node's own login (`bash -lc`) does the rest.

Stops never signal the local srun: srun turns HUP/TERM into SIGKILL of the
job (the agent's trap never runs, exit 137), and a SIGKILL of srun's group
can leave the job RUNNING. So GRACEFUL is `scancel --signal=TERM <job>`
(exit 143 with the trap run) and KILL is `scancel <job>`, then a bounded
wait until squeue no longer lists it, then the local group. A child whose
root died fires the cancel without that wait.

The job id is learned from the job's first bytes (an OSC title
`looop-<sid>-<h> <jobid>`, printed by the job itself) and published in
status.json (`remote.id`); until then the job is addressed by its name.
"""
from __future__ import annotations

import os
import re
import subprocess
import time
from typing import Any, Sequence

from looop.errors import BadInput
from looop.tree.backends.base import Placement, Stop
from looop.tree.backends.local import LocalPty

ALLOW = ("TERM", "HOME", "USER", "LANG", "LC_ALL", "LOOOP_SESSION_ID", "LOOOP_DATA_DIR")
CANCEL_WAIT = 5.0       # KILL: how long squeue may still list the job before the local group goes
CLIENT_TIMEOUT = 10.0   # one scancel / squeue call (slurmctld is slow under load)
# the job prints its id before anything else; sh -c: $0 = the name, $1 = the command
JOB_SH = 'printf "\\033]0;%s %s\\007" "$0" "$SLURM_JOB_ID"; exec bash -lc "$1"'
_TITLE = re.compile(rb"\x1b\]0;looop-[^ \x07]+ (\d+)\x07")


def srun_args(cfg: dict[str, Any]) -> tuple[str, ...]:
    """The runner-given srun arguments: partition, time, mem, extra export
    names, and "args" verbatim. Raises BadInput."""
    out: list[str] = []
    for key, flag in (("partition", "-p"), ("time", "-t"), ("mem", "--mem")):
        v = cfg.get(key)
        if v is not None:
            if not isinstance(v, (str, int)) or str(v).startswith("-"):
                raise BadInput(f"slurm backend {key!r} must be a string")
            out += [flag, str(v)]
    args = cfg.get("args") or []
    if not isinstance(args, list) or not all(isinstance(x, str) for x in args):
        raise BadInput("slurm backend 'args' must be a list of strings")
    export = cfg.get("export") or []
    if not isinstance(export, list) or not all(isinstance(x, str) and re.fullmatch(r"\w+", x) for x in export):
        raise BadInput("slurm backend 'export' must be a list of variable names")
    names = ",".join(dict.fromkeys((*ALLOW, *export)))
    return (f"--export={names}", *out, *args)


def argv(where: Placement, sid: str, cmd: str, prompt_file: str, h: str) -> tuple[str, ...]:
    # names only in --export: values (a token, a key) never reach argv
    return ("srun", "-Q", "--pty", "-J", where.name, f"--comment=looop:{h}:{sid}", *where.opts,
            "/bin/sh", "-c", JOB_SH, where.name, cmd)


def _run(args: list[str], timeout: float = CLIENT_TIMEOUT) -> str:
    """A Slurm client call, bounded; its stdout ("" if it failed)."""
    return _ask(args, timeout) or ""


def _ask(args: list[str], timeout: float = CLIENT_TIMEOUT) -> str | None:
    """A Slurm client call, bounded; its stdout, None if it failed."""
    try:
        r = subprocess.run(args, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.SubprocessError):
        return None
    return r.stdout if r.returncode == 0 else None


def listed(name: str) -> list[str]:
    """Job ids squeue lists for the name (this user's jobs only)."""
    return _run(["squeue", "--me", "-h", "-n", name, "-o", "%i"]).split()


class SrunPty(LocalPty):
    kind = "slurm"

    def __init__(self, argv: Sequence[str], cwd: str, env: dict[str, str], cols: int, rows: int,
                 onlcr: bool = True, pass_fds: Sequence[int] = (), where: Placement = Placement()):
        super().__init__(argv, cwd, env, cols, rows, onlcr, pass_fds, where)
        self.job: str | None = None
        self.head = b""
        self.parent = os.getppid()  # the root: gone if this changes

    def read(self, n: int = 1 << 16) -> bytes | None:
        data = super().read(n)
        if data and self.job is None and self.head is not None:
            self.head = (self.head + data)[-4096:]
            m = _TITLE.search(self.head)
            if m:
                self.job, self.head = m.group(1).decode(), None
        return data

    def _targets(self) -> list[str]:
        return [self.job] if self.job else listed(self.where.name)

    def signal(self, how: Stop | int) -> None:  # type: ignore[override]
        if self.exit_code is not None:
            return super().signal(Stop.KILL) if how is Stop.KILL else None
        if how is Stop.GRACEFUL:
            jobs = self._targets()
            if jobs:
                _run(["scancel", "--signal=TERM", *jobs])
            return
        if how is Stop.KILL:
            jobs = self._targets()
            if jobs:
                _run(["scancel", *jobs])
                if os.getppid() == self.parent:  # root alive: wait for proof, bounded
                    deadline = time.monotonic() + CANCEL_WAIT
                    while listed(self.where.name) and time.monotonic() < deadline:
                        time.sleep(0.2)
            super().signal(Stop.KILL)
            return
        super().signal(how)

    def identity(self) -> dict[str, Any] | None:
        return {"engine": "slurm", "host": "", "id": self.job}


def survey(wheres: list[Placement], h: str) -> tuple[dict[str, dict[str, Any]], set[str]]:
    """This user's jobs named looop-<sid>-<h>, from squeue: sid → identity
    ({"slurm"} as the engine that did not answer if squeue failed)."""
    ours = _ours(h)
    if ours is None:
        return {}, {"slurm"}
    return {name[len("looop-"):-len(h) - 1]: {"engine": "slurm", "host": "", "id": job}
            for name, job in ours.items()}, set()


def leftovers(wheres: list[Placement], h: str) -> list[str]:
    """Cancel this user's jobs named looop-*-<h> (the data dir's), without
    waiting for them to end — those squeue lists, and by name those of
    `wheres` (a slow squeue must not leave one behind). Returns
    "slurm::<jobid or name>" for each."""
    import getpass
    ids = list((_ours(h) or {}).values())
    if ids:
        _run(["scancel", *ids])
    user = getpass.getuser()
    for name in sorted({w.name for w in wheres if w.name.endswith("-" + h)}):
        _run(["scancel", f"--user={user}", f"--name={name}"])
    return [f"slurm::{i}" for i in ids] or [f"slurm::{w.name}" for w in wheres]


def _ours(h: str) -> dict[str, str] | None:
    """name → job id of this user's jobs named looop-*-<h>; None if squeue failed."""
    out = _ask(["squeue", "--me", "-h", "-o", "%i %j"])
    if out is None:
        return None
    return {p[1]: p[0] for p in (ln.split() for ln in out.splitlines())
            if len(p) == 2 and p[1].startswith("looop-") and p[1].endswith("-" + h)}


def release(items: list[tuple[Placement, str]], h: str) -> dict[str, list[str]]:
    """`prune --remote`: cancel the jobs of sessions `items` ((placement,
    sid)), found by their name looop-<sid>-<h> (this user's only), without
    waiting. sid → the "slurm::<jobid>" cancelled, for every sid squeue and
    scancel answered for (none if slurmctld did not answer)."""
    listed_now = _ours(h)
    if listed_now is None:
        return {}
    out: dict[str, list[str]] = {}
    for w, sid in items:
        name = f"looop-{sid}-{h}"
        if w.name != name:  # not this data dir's: never touched
            continue
        job = listed_now.get(name)
        if job is None:
            out[sid] = []
        elif _ask(["scancel", job]) is not None:
            out[sid] = [f"slurm::{job}"]
    return out
