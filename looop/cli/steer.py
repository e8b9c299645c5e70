"""Verbs that drive a live session through the control socket."""
from __future__ import annotations

import argparse
from typing import Any

from looop.cli.args import parser, session_arg
from looop.errors import LooopError, UsageError
from looop.store import paths
from looop.tree import control


def _call(op: str, sid: str, timeout: float = 10.0, **args: Any) -> dict[str, Any]:
    sid = paths.check_id(sid, "session")
    return control.call(paths.data_dir(), op, timeout=timeout, id=sid, **args)


def _emit(a: argparse.Namespace, reply: dict[str, Any], text: str | None = None) -> int:
    if getattr(a, "json", False):
        from looop.store import jsonio
        print(jsonio.dumps(reply))
    elif text:
        print(text)
    return 0


FRAME = 256 << 10      # bytes per input request, at most
LINE_MAX = 4095        # a tty in canonical mode keeps this much of one line


def frames(sid: str, text: str, limit: int = FRAME) -> list[str]:
    """`text` cut into pieces whose whole request line fits in `limit` bytes."""
    from looop.store import jsonio
    out, i, step = [], 0, limit // 4
    while i < len(text):
        piece = text[i:i + step]
        while step > 1 and len(jsonio.dumpb({"op": "input", "id": sid, "data": piece})) > limit:
            step //= 2
            piece = text[i:i + step]
        out.append(piece)
        i += len(piece)
    return out


def longest_line(text: str) -> int:
    """Bytes of the longest line as a terminal's line discipline sees it."""
    import re
    return max((len(x.encode("utf-8", "surrogateescape")) for x in re.split(r"[\r\n]", text)), default=0)


def cmd_send(argv: list[str]) -> int:
    import sys
    from looop import registry, steering
    from looop.cli.args import duration
    from looop.store import sessions
    p = parser("send", "Type text into a worker as a paste (bracketed when the program enabled it), "
                       "then Enter once the paste is on its screen (unless -n). `-` reads the text "
                       "from stdin (any size; one trailing newline becomes the Enter). A line longer "
                       f"than {LINE_MAX} bytes into a program reading lines (canonical mode) is "
                       "refused, since the terminal would cut it; nothing is typed then.")
    session_arg(p)
    p.add_argument("text", nargs="+", help="words are joined with spaces; `-` = read stdin")
    p.add_argument("-n", action="store_true", help="do not press Enter")
    p.add_argument("--verify", action="store_true",
                   help="exit 1 unless the screen or the activity moved within --timeout")
    p.add_argument("--timeout", default="5s", help="for --verify (default 5s)")
    p.add_argument("--json", action="store_true", help='{"ok", "delivered", "echoed", "activity_after"}')
    a = p.parse_args(argv)
    if a.text == ["-"]:
        raw = sys.stdin.buffer.read()
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise UsageError(f"stdin is not UTF-8 (byte {e.start}); nothing was sent") from None
        if text.endswith("\n"):
            text = text[:-1]
    else:
        text = " ".join(a.text)
    timeout = duration(a.timeout)
    sid, d = paths.check_id(a.id, "session"), paths.data_dir()
    with control.Client(d, timeout=30.0) as c:
        n = longest_line(text + ("" if a.n else "\r"))
        # the empty input answers whether the program reads lines (and that the
        # session is live); only a long line or no text at all needs the answer
        probe = c.call("input", id=sid, data="") if n > LINE_MAX or not text else {}
        if probe.get("canonical") and n > LINE_MAX:
            raise UsageError(f"line of {n} bytes exceeds the terminal's {LINE_MAX}-byte line limit "
                             f"(canonical mode); nothing was sent — split the line, or have the "
                             f"program read a file")

        def paste() -> None:
            # multi-line text goes in as a bracketed paste if the program asked
            # (mode 2004): one paste per frame; the Enter comes separately
            for piece in frames(sid, text):
                c.call("input", id=sid, data=piece, how="paste")

        r = steering.deliver(c.call, sid, text, enter=not a.n, verify=a.verify, timeout=timeout,
                             activity=lambda: registry.activity_of(d, sid), paste=paste,
                             sent=lambda t, row: sessions.write_sent(d, sid, t, row))
    return _emit(a, r)


def cmd_key(argv: list[str]) -> int:
    from looop.screen.keys import key_bytes
    p = parser("key", "Send named keys: Enter Tab Esc Space Backspace Up Down Left Right Home End "
                      "PageUp PageDown F1-F12 C-a..C-z M-x.")
    session_arg(p)
    p.add_argument("keys", nargs="+", metavar="KEY")
    p.add_argument("--json", action="store_true")
    a = p.parse_args(argv)
    data = "".join(key_bytes(k) for k in a.keys)
    return _emit(a, _call("input", a.id, data=data, how="keys"))  # cursor keys follow DECCKM


def cmd_event(argv: list[str]) -> int:
    """An agent's own hook says what it is doing (SPEC §15): the strongest
    evidence after a pending ask or flag, until its output resumes."""
    from looop.tree.activity_states import EVENT_STATES
    p = parser("_event", "Report a worker's activity from an agent hook.")
    session_arg(p)
    p.add_argument("state", help=" | ".join(EVENT_STATES))
    p.add_argument("note", nargs="*", default=[])  # a default: argparse calls a bare "*" required
    p.add_argument("--json", action="store_true")
    a = p.parse_args(argv)
    if a.state not in EVENT_STATES:
        raise UsageError(f"unknown state {a.state!r} (known: {', '.join(EVENT_STATES)})")
    r = _call("event", a.id, state=a.state, note=" ".join(a.note) or None)
    return _emit(a, r.get("activity") or {})


def cmd_resize(argv: list[str]) -> int:
    p = parser("resize", "Resize a worker's terminal.")
    session_arg(p)
    p.add_argument("size", metavar="COLSxROWS")
    a = p.parse_args(argv)
    try:
        cols, rows = (int(v) for v in a.size.lower().split("x"))
    except ValueError:
        raise UsageError(f"bad size {a.size!r} (use COLSxROWS, e.g. 120x40)") from None
    from looop.screen import size_error
    err = size_error(cols, rows)
    if err:
        raise UsageError(err)  # before anything is sent: nothing is resized
    _call("resize", a.id, cols=cols, rows=rows)
    return 0


def _bulk_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("id", nargs="?", help="session id (a legacy 'looop-' prefix is accepted)")
    p.add_argument("--all", action="store_true", help="every live worker")
    p.add_argument("-y", "--yes", action="store_true",
                   help="with --all: no confirmation (needed when stdin is not a terminal)")


def _targets(verb: str, a: argparse.Namespace) -> list[str]:
    """The ids a (bulk) verb acts on. --all asks first on a terminal; a
    script must say --yes (a bulk stop is never implied)."""
    import sys
    if a.all == (a.id is not None):
        raise UsageError("give one session id, or --all")
    if not a.all:
        return [paths.check_id(a.id, "session")]  # e2, not looop-e2, in what we print
    from looop import registry
    ids = [r["id"] for r in registry.rows(paths.data_dir()) if r["role"] == "worker" and r["alive"]]
    if not ids:
        print("no live workers")
        return []
    if not a.yes:
        if not sys.stdin.isatty():
            raise UsageError(f"--all would {verb} {len(ids)} worker{'s' * (len(ids) != 1)}: "
                             f"add --yes (stdin is not a terminal)")
        sys.stderr.write(f"{verb} {len(ids)} worker{'s' * (len(ids) != 1)} ({', '.join(ids)})? [y/N] ")
        sys.stderr.flush()
        answer = sys.stdin.readline()  # Ctrl-C: main ends the line, exit 130
        if not answer:
            sys.stderr.write("\n")  # Ctrl-D: the terminal echoed no newline
        if answer.strip().lower() not in ("y", "yes"):
            print("nothing done")
            return []
    return ids


def _each(op: str, ids: list[str], timeout: float) -> list[tuple[str, dict[str, Any] | str]]:
    """Send `op` for every id at once (one connection each), then collect
    the replies: N kills take one grace period, not N."""
    from looop.errors import LooopError
    d, conns, out = paths.data_dir(), [], []
    for sid in ids:
        c = control.Client(d, timeout)
        c.send(op, id=paths.check_id(sid, "session"))
        conns.append((sid, c))
    for sid, c in conns:
        try:
            reply = c.read_line()
            out.append((sid, reply if reply.get("ok") else str(reply.get("error"))))
        except LooopError as e:
            out.append((sid, str(e)))
        finally:
            c.close()
    return out


def _bulk(verb: str, op: str, argv: list[str], desc: str, timeout: float, done: Any) -> int:
    import sys
    p = parser(verb, desc)
    _bulk_args(p)
    a = p.parse_args(argv)
    ids = _targets(verb, a)
    if not a.all:
        print(done(ids[0], _call(op, ids[0], timeout=timeout)))
        return 0
    bad = 0
    for sid, r in _each(op, ids, timeout):
        if isinstance(r, str):
            bad += 1
            print(f"looop {verb}: {sid}: {r}", file=sys.stderr)
        else:
            print(done(sid, r))
    return 1 if bad else 0


def cmd_restart(argv: list[str]) -> int:
    return _bulk("restart", "restart", argv, "Restart the command of a worker in the same session "
                 "(--all: every live worker).", 60, lambda sid, r: f"restarted {sid} (pid {r.get('pid')})")


def cmd_kill(argv: list[str]) -> int:
    return _bulk("kill", "kill", argv, "Stop a worker: SIGHUP/SIGTERM to its process group, SIGKILL "
                 "after LOOOP_SHUTDOWN_GRACE. Waits until it is gone (--all: every live worker, "
                 "at once; asks first on a terminal, --yes for scripts).", 120,
                 lambda sid, r: f"{sid} {r.get('state', 'killed')}")


def cmd_flag(argv: list[str]) -> int:
    p = parser("flag", "Raise a worker's attention flag (shown in ls, titles, the prompt and NEEDS YOU).")
    session_arg(p)
    p.add_argument("message", nargs="*", default=[])  # a default: argparse calls a bare "*" required
    a = p.parse_args(argv)
    _call("flag", a.id, note=" ".join(a.message) or None)
    return 0


def cmd_unflag(argv: list[str]) -> int:
    p = parser("unflag", "Clear a worker's attention flag.")
    session_arg(p)
    _call("unflag", p.parse_args(argv).id)
    return 0


def cmd_detach(argv: list[str]) -> int:
    p = parser("detach", "Force-detach every terminal attached to a worker.")
    session_arg(p)
    a = p.parse_args(argv)
    r = _call("detach", a.id)
    print(f"detached {r.get('detached', 0)} terminal(s) from {a.id}")
    return 0


def _check_program(runner: str | None, command: str | None, on: str | None) -> None:
    """Refuse a worker whose program is not installed here (as `doctor` does
    for the decider), instead of a worker that dies at once."""
    import shutil

    from looop.store import config
    try:
        cfg = config.load(paths.data_dir())
        name, r = config.runner(cfg, runner)
    except LooopError:
        return  # the root says it, in its own words
    if command or (on or r.get("backend") or "local") != "local":
        return  # your own shell line, or a program on the remote host
    prog = config.program((r.get("interactive") or "").replace("{{prompt_file}}", "p"))
    if prog and not prog.startswith("$") and shutil.which(prog) is None:
        raise UsageError(f"runner {name!r}: `{prog}` not found on PATH — install it, pick "
                         f"another runner, or see `looop doctor`")


def cmd_start_session(argv: list[str]) -> int:
    p = parser("start-session", "Start a worker in the running tree: the runner's interactive "
                                "command over prompts/<id>.md (worker contract + your prompt).")
    session_arg(p)
    p.add_argument("prompt")
    p.add_argument("runner", nargs="?", help="a runner from the config (default: the config's default)")
    p.add_argument("--command", help="override the command; must contain {{prompt_file}}")
    p.add_argument("--restart", metavar="TYPE",
                   help="temporary (default: never restarted) | transient (restarted after a "
                        "non-zero exit or a signal) | permanent (always, unless killed)")
    p.add_argument("--max-restarts", metavar="N/WINDOW",
                   help="restart intensity with --restart transient|permanent (default 3/10m): past it "
                        "the worker is `failed`")
    p.add_argument("--on", metavar="WHERE",
                   help="local | ssh:HOST | slurm (default: the runner's \"backend\")")
    p.add_argument("--cwd", metavar="DIR", help="the worker's working directory (default: the data dir)")
    p.add_argument("--env", action="append", default=[], metavar="K=V",
                   help="an extra environment variable for this worker (repeatable; kept for restarts)")
    a, extra = p.parse_known_args(argv)
    if len(extra) == 1 and a.runner is None and not extra[0].startswith("-"):
        a.runner = extra[0]  # `<id> <prompt> --cwd DIR <runner>`: the runner after the options
    elif extra:
        raise UsageError(f"unrecognized arguments: {' '.join(extra)}")
    args: dict[str, Any] = {"prompt": a.prompt, "runner": a.runner}
    if a.cwd is not None:
        import os
        args["cwd"] = os.path.abspath(os.path.expanduser(a.cwd))
        if not os.path.isdir(args["cwd"]):
            raise UsageError(f"--cwd {a.cwd!r}: no such directory")
    if a.env:
        env = {}
        for kv in a.env:
            k, sep, v = kv.partition("=")
            if not sep or not k:
                raise UsageError(f"--env {kv!r}: use NAME=value")
            env[k] = v
        args["env"] = env
    if a.on:
        args["on"] = a.on
    if a.command:
        args["command"] = a.command
    from looop.tree import restart
    try:
        policy = restart.policy_from(a.restart, a.max_restarts)  # a clear line before any socket
    except ValueError as e:
        raise UsageError(str(e)) from None
    if a.max_restarts is not None and policy.kind is restart.Restart.TEMPORARY:
        raise UsageError("--max-restarts needs --restart transient or permanent "
                         "(a temporary worker is never restarted)")
    for key in ("restart", "max_restarts"):
        if getattr(a, key) is not None:
            args[key] = getattr(a, key)
    _check_program(a.runner, a.command, a.on)  # the runner's, not a --command line
    r = _call("start", a.id, timeout=30, **args)
    print(f"started {r['id']} (pid {r.get('pid')})")
    return 0
