"""ssh: the worker runs on another host, carried by `ssh -tt` in the child's
local PTY (so read, write and resize are the local PTY's; ssh forwards the
window size and every byte, `-e none`: no escape character).

On the host a small POSIX sh wrapper (`remote_script`, the session leader)
runs the command in the foreground (so Ctrl-C reaches it) and, beside it, a
watcher that outlives a hangup and sweeps once the wrapper is gone:
  - in its own PID namespace where the host allows it (`unshare --user
    --map-current-user --pid --fork --kill-child --mount-proc`): when the
    connection drops, sshd hangs up the session, unshare dies and the kernel
    kills the whole namespace, setsid'd grandchildren included. Its PID 1 is
    a `sh` waiting for the command, never the command (init ignores every
    signal it has no handler for: TERM and Ctrl-C would not reach it);
  - else (and in the namespace too) under `LOOOP_SWEEP=<h>:<sid>` in its
    environment: the wrapper (command ended) or the watcher (the session hung
    up and the wrapper died of it) kills every process carrying it, and the next root's `leftovers`
    kills every `<h>:*` one;
  - with a registry file `~/.local/state/looop-remote/<h>/<sid>.json`
    (sid, hash, name, wrapper pid = its process group) and the shipped prompt.

Stops: GRACEFUL is `kill -TERM -<pgid>` on the host, over a channel of the
session's own connection (its ssh is a ControlMaster; a TERM to the local
ssh would only drop the link: the agent's TERM trap would never run, and
the exit code would be lost); KILL is the local group (ssh dies, the host
hangs up the session, see above).

Handshakes: at most `max_per_host` at once per host and user on this machine
(flock'd slot files), held until the wrapper's first byte (an OSC title
naming the session) or ssh's exit; a 255 exit before that byte is retried.
Secrets never go into argv: the host uses its own logins; only the command,
the session id and the prompt (base64) travel.
"""
from __future__ import annotations

import base64
import fcntl
import hashlib
import os
import random
import re
import shlex
import signal
import subprocess
import tempfile
import time
from typing import Any, Callable, Sequence

from looop.tree.backends.base import Placement, Stop
from looop.tree.backends.local import LocalPty

SSH = ("ssh", "-tt", "-e", "none", "-o", "BatchMode=yes", "-o", "ServerAliveInterval=5")
UNSHARE = "unshare --user --map-current-user --pid --fork --kill-child --mount-proc"
STATE = "$HOME/.local/state/looop-remote"
RETRIES = 5                 # 255 before the first byte: a dropped handshake (MaxStartups)
SLOT_WAIT = 60.0            # longest wait for a handshake slot, then go anyway
STOP_SLOT_WAIT = 5.0       # a graceful stop's wait for a slot (then go anyway: the KILL follows the grace)
SLOT_HOLD = 20.0            # a handshake slot is released after this at the latest
HELPER_TIMEOUT = 10.0       # the leftovers sweep
# the stop helper's handshake may be dropped too (many stops at once): retry 255
# what the PID namespace's init runs: a shell that waits for the command (not
# `exec`): the namespace's PID 1 ignores every signal it has no handler for,
# so a command that is PID 1 would never see the graceful TERM (nor INT)
INIT = 'bash -lc "$1"; exit $?'
RETRY_255 = 'for i in 1 2 3 4 5; do "$@"; rc=$?; [ $rc -ne 255 ] && exit $rc; sleep 0.$i; done; exit 255'


def remote_script(where: Placement, sid: str, cmd: str, prompt: bytes, h: str) -> str:
    """The wrapper the host's shell runs (POSIX sh). `cmd` finds the shipped
    prompt at "$LOOOP_PROMPT_FILE"."""
    q = shlex.quote
    marker = f"{h}:{sid}"
    return f"""S="{STATE}/{h}"; P="$S/{sid}.md"
umask 077; mkdir -p "$S" || exit 125
printf %s {q(base64.b64encode(prompt).decode())} | base64 -d >"$P" || exit 125
NS=; NSJ=false
if {'true' if where.pidns else 'false'} && {UNSHARE} true 2>/dev/null; then NS="{UNSHARE}"; NSJ=true; fi
printf '{{"sid": "%s", "hash": "%s", "name": "%s", "pid": %d, "pidns": %s}}\\n' {q(sid)} {h} {q(where.name)} $$ $NSJ >"$S/{sid}.json.t" && mv -f "$S/{sid}.json.t" "$S/{sid}.json"
{sweep_fn(marker)}
fin() {{ looop_sweep; rm -f "$S/{sid}.json" "$P"; rmdir "$S" 2>/dev/null; }}
(trap '' HUP INT QUIT TERM; while kill -0 $$ 2>/dev/null; do sleep 1; done; fin) </dev/null >/dev/null 2>&1 &
trap : INT QUIT TERM
printf '\\033]0;%s\\007' {q(where.name)}
LOOOP_SWEEP={marker} LOOOP_SESSION_ID={q(sid)} LOOOP_PROMPT_FILE="$P" $NS /bin/sh -c {q(INIT)} looop-init {q(cmd)}
rc=$?
fin
exit $rc
"""


def sweep_fn(pattern: str) -> str:
    """sh function `looop_sweep`: SIGKILL every process whose environment
    has LOOOP_SWEEP matching `pattern` (a grep -z regex, anchored), twice
    (a fork between the scan and the kill is caught the second time); the
    pids killed go to stdout."""
    return (f'looop_sweep() {{ for _ in 1 2; do for f in $(grep -lsaz "^LOOOP_SWEEP={pattern}$" '
            f'/proc/[0-9]*/environ 2>/dev/null); do p=${{f#/proc/}}; p=${{p%/environ}}; '
            f'[ "$p" = "$$" ] || {{ kill -KILL "$p" 2>/dev/null && echo "$p"; }}; done; done; }}')


def argv(where: Placement, sid: str, cmd: str, prompt_file: str, h: str) -> tuple[str, ...]:
    try:
        with open(prompt_file, "rb") as f:
            prompt = f.read()
    except OSError:
        prompt = b""
    if prompt_file:
        cmd = cmd.replace(shlex.quote(prompt_file), '"$LOOOP_PROMPT_FILE"')
    script = remote_script(where, sid, cmd, prompt, h)
    return (*SSH, "-o", "ControlMaster=yes", "-o", f"ControlPath={control_path(where.name)}",
            "-o", "ControlPersist=no", *where.opts, where.host, "--", "/bin/sh -c " + shlex.quote(script))


def control_path(name: str) -> str:
    """The session's ssh multiplexing socket: its own connection is the
    master, so a graceful stop is one more channel on it (no handshake, no
    MaxStartups drop). Short (sockets take ~100 bytes): a hash of the name."""
    return os.path.join(os.path.dirname(_slot_dir()), "ssh-ctl",
                        hashlib.sha256(name.encode()).hexdigest()[:16])


def _slot_dir() -> str:
    base = os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir()
    return os.path.join(base, f"looop-{os.getuid()}", "ssh-slots")


def take_slot(host: str, n: int, wait: float = SLOT_WAIT) -> int | None:
    """One of `n` handshake slots for `host` (an flock'd file; the kernel
    frees it if we die). Blocks up to `wait` s; None if none came free."""
    d = _slot_dir()
    os.makedirs(d, mode=0o700, exist_ok=True)
    safe = re.sub(r"[^A-Za-z0-9._@-]", "_", host)[:100]
    deadline = time.monotonic() + wait
    order = list(range(max(1, n)))
    while True:
        random.shuffle(order)
        for i in order:
            fd = os.open(os.path.join(d, f"{safe}.{i}"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return fd
            except OSError:
                os.close(fd)
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.02)


class SshPty(LocalPty):
    kind = "ssh"

    def __init__(self, argv: Sequence[str], cwd: str, env: dict[str, str], cols: int, rows: int,
                 onlcr: bool = True, pass_fds: Sequence[int] = (), where: Placement = Placement(),
                 attempt: int = 0):
        super().__init__(argv, cwd, env, cols, rows, onlcr, pass_fds, where)
        self.attempt = attempt
        self.started = False           # the wrapper's first byte arrived
        self.slot: int | None = None
        self.slot_until = 0.0
        self.head = b""                # output before the marker (to find it across reads)
        self.marker = b"\x1b]0;" + where.name.encode()

    def spawn(self) -> int:
        if self.attempt:
            time.sleep(min(2.0, 0.2 * 2 ** self.attempt) * random.uniform(0.5, 1.0))
        ctl = control_path(self.where.name)
        os.makedirs(os.path.dirname(ctl), mode=0o700, exist_ok=True)
        _unlink(ctl)  # a master SIGKILLed before: its socket would disable ours
        self.slot = take_slot(self.where.host, self.where.max_per_host)
        self.slot_until = time.monotonic() + SLOT_HOLD
        try:
            return super().spawn()
        except BaseException:
            self._release()
            raise

    def _release(self) -> None:
        if self.slot is not None:
            os.close(self.slot)
            self.slot = None

    def read(self, n: int = 1 << 16) -> bytes | None:
        data = super().read(n)
        if data and not self.started:
            self.head = (self.head + data)[-4096:]
            if self.marker in self.head:
                self.started = True
                self.head = b""
                self._release()
        if self.slot is not None and time.monotonic() >= self.slot_until:
            self._release()
        return data

    def reaped(self, code: int) -> None:
        self._release()
        _unlink(control_path(self.where.name))  # a master killed outright leaves its socket

    def signal(self, how: Stop | int) -> None:  # type: ignore[override]
        if how is Stop.GRACEFUL and self.started and self.exit_code is None:
            self._remote_term()
            return
        super().signal(how if how is not Stop.GRACEFUL else signal.SIGTERM)

    def _remote_term(self) -> None:
        """TERM the wrapper's process group on the host (its pid is in the
        registry file) from a forked helper; not waited for (the child reaps
        it, and its KILL sweep ends it if it hangs). The helper's ssh is a
        channel on the session's own (multiplexed) connection, so a root
        stopping 50 ssh workers at once opens no new connections (50 new
        ones: the host drops most of them, MaxStartups, and each such worker
        is SIGKILLed after the grace — measured: 18 of 50 graceful). Without
        the master it makes a new connection in a handshake slot, like a
        spawn (the helper waits for it: the child never blocks)."""
        h, sid = self.where.name[-10:], self.where.name[len("looop-"):-11]  # looop-<sid>-<h>
        reg = f'"{STATE}/{h}/{sid}.json"'
        script = (f"p=$(sed -n 's/.*\"pid\": \\([0-9]*\\).*/\\1/p' {reg}); "
                  f'[ -n "$p" ] && kill -TERM -"$p"')
        ctl = control_path(self.where.name)
        argv = ["sh", "-c", RETRY_255, "sh", "ssh", "-o", "BatchMode=yes", "-o", "ConnectTimeout=10",
                "-o", "ControlMaster=no", "-o", f"ControlPath={ctl}", *self.where.opts,
                self.where.host, "--", "/bin/sh -c " + shlex.quote(script)]
        try:
            pid = os.fork()
        except OSError:
            super().signal(signal.SIGTERM)  # no helper: drop the link
            return
        if pid:
            return  # the child reaps it (wait reaps every descendant)
        try:  # the helper: nothing of the child's state runs here; it only execs
            from looop.store.title import set_helper_title
            set_helper_title(f"stop {self.where.name}")  # never taken for the worker child by ls
            # over the session's own connection when its master answers; else a new one, in a slot
            slot = None if os.path.exists(ctl) else take_slot(self.where.host, self.where.max_per_host,
                                                               STOP_SLOT_WAIT)
            null = os.open(os.devnull, os.O_RDWR)
            for fd in (0, 1, 2):
                os.dup2(null, fd)
            keep = slot if slot is not None else -1
            os.closerange(3, keep if keep > 3 else 3)
            os.closerange(max(3, keep + 1), os.sysconf("SC_OPEN_MAX"))
            if slot is not None:
                os.set_inheritable(slot, True)  # held by ssh until it ends
            os.execvp(argv[0], argv)
        finally:
            os._exit(127)

    def identity(self) -> dict[str, Any] | None:
        return {"engine": "ssh", "host": self.where.host, "id": self.where.name}

    def retry(self) -> bool:
        return self.exit_code == 255 and not self.started and self.attempt < RETRIES

    def again(self) -> dict[str, Any]:
        """Constructor arguments for the next attempt."""
        return {"attempt": self.attempt + 1}


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def leftovers(wheres: list[Placement], h: str) -> list[str]:
    """On every host in `wheres`, at once: kill every process marked
    LOOOP_SWEEP=<h>:* and drop the registry dir. Bounded (HELPER_TIMEOUT).
    Returns "ssh:<host>:<pid>" for what was killed."""
    for w in wheres:
        _unlink(control_path(w.name))
    script = f'{sweep_fn(h + ":[^=]*")}\nlooop_sweep; rm -rf "{STATE}/{h}"'
    return [f"ssh:{host}:{x}" for host, out in _on_each_host(wheres, script)
            for x in sorted(set(out.split()))]


def survey(wheres: list[Placement], h: str) -> tuple[dict[str, dict[str, Any]], set[str]]:
    """What lives on the hosts for data dir hash `h`, asked over ssh (for
    `ls --remote`): sid → identity, from live processes carrying the
    marker, and the hosts (ssh:HOST) that did not answer. Bounded
    (HELPER_TIMEOUT)."""
    script = (f'for f in $(grep -lsaz "^LOOOP_SWEEP={h}:" /proc/[0-9]*/environ 2>/dev/null); do '
              f"tr '\\0' '\\n' <\"$f\" | sed -n 's/^LOOOP_SWEEP={h}://p'; done | sort -u")
    found: dict[str, dict[str, Any]] = {}
    answered = _on_each_host(wheres, script)
    for host, out in answered:
        for sid in out.split():
            found[sid] = {"engine": "ssh", "host": host, "id": f"looop-{sid}-{h}"}
    return found, {w.engine for w in wheres} - {f"ssh:{host}" for host, _ in answered}


def release(items: list[tuple[Placement, str]], h: str) -> dict[str, list[str]]:
    """`prune --remote`: on each host, at once, kill every process marked
    LOOOP_SWEEP=<h>:<sid> for the sessions `items` ((placement, sid)) placed
    there, and drop their registry files. sid → the "ssh:<host>:<pid>" killed,
    for every sid whose host answered (an unreachable host's sids are absent:
    nothing is known of them). Bounded (HELPER_TIMEOUT)."""
    sids: dict[str, list[str]] = {}
    for w, sid in items:
        sids.setdefault(w.host, []).append(sid)

    def script(host: str) -> str:
        lines = [sweep_fn("$1")]
        for sid in sids[host]:
            pat = f"{h}:{sid}".replace(".", "\\.")  # an id is [A-Za-z0-9._-]: only "." needs it
            lines.append(f'echo @{sid}; looop_sweep {shlex.quote(pat)}; '
                         f'rm -f "{STATE}/{h}/{sid}.json" "{STATE}/{h}/{sid}.md"')
        lines.append("echo @.")  # the end: the script ran through
        return "\n".join(lines)
    out: dict[str, list[str]] = {}
    for host, text in _on_each_host([w for w, _ in items], script):
        if not text.rstrip().endswith("@."):
            continue
        sid = ""
        for tok in text.split():
            if tok.startswith("@"):
                sid = tok[1:]
                if sid != ".":
                    out[sid] = []
            elif sid:
                out[sid].append(f"ssh:{host}:{tok}")
    return {sid: sorted(set(v)) for sid, v in out.items()}


def _on_each_host(wheres: list[Placement], script: str | Callable[[str], str]) -> list[tuple[str, str]]:
    """Run `script` (or `script(host)`) under /bin/sh on every distinct host
    of `wheres` at once; (host, stdout) for each that answered within
    HELPER_TIMEOUT in all."""
    procs = []
    seen: set[tuple[str, tuple[str, ...]]] = set()
    for w in wheres:
        if (w.host, w.opts) in seen:
            continue
        seen.add((w.host, w.opts))
        text = script if isinstance(script, str) else script(w.host)
        try:
            procs.append((w.host, subprocess.Popen(  # a dropped handshake (255) is retried
                ["sh", "-c", RETRY_255, "sh", "ssh", "-o", "BatchMode=yes", "-o", "ConnectTimeout=5",
                 *w.opts, w.host, "--", "/bin/sh -c " + shlex.quote(text)],
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                start_new_session=True)))
        except OSError:
            continue
    answers: list[tuple[str, str]] = []
    deadline = time.monotonic() + HELPER_TIMEOUT
    for host, p in procs:
        try:
            out, _ = p.communicate(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)  # the retry loop and its ssh
            p.wait()
            continue
        if p.returncode != 255:  # 255: ssh itself failed, the host did not answer
            answers.append((host, out.decode()))
    return answers
