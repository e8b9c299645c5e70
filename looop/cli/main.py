"""Entry point: dispatch `looop <verb>` through VERBS, map errors to exits.

Imports nothing heavy: a verb's module is imported only when it runs, so
`looop ls` costs about one psutil scan (SPEC §13).
"""
from __future__ import annotations

import sys

from looop.errors import LooopError

# verb → (module, function, one-line summary). Hidden verbs start with "_".
VERBS: dict[str, tuple[str, str, str]] = {
    "run": ("looop.cli.run", "cmd_run", "start the tree in the foreground (the default verb)"),
    "ls": ("looop.cli.ls", "cmd_ls", "list sessions: the pulse first, then workers"),
    "watch": ("looop.cli.observe", "cmd_watch", "follow a session's output read-only"),
    "log": ("looop.cli.observe", "cmd_log", "show a session's recorded output"),
    "logs": ("looop.cli.logs", "cmd_logs", "follow every session's new output, prefixed by id (like pm2 logs)"),
    "shot": ("looop.cli.observe", "cmd_shot", "the session's current screen"),
    "expect": ("looop.cli.observe", "cmd_expect", "block until a regex matches the output"),
    "wait": ("looop.cli.observe", "cmd_wait", "block until a session exits; exit with its code"),
    "wait-idle": ("looop.cli.observe", "cmd_wait_idle", "block until output is quiet"),
    "send": ("looop.cli.steer", "cmd_send", "type text (+ Enter) into a worker"),
    "key": ("looop.cli.steer", "cmd_key", "send named keys to a worker"),
    "resize": ("looop.cli.steer", "cmd_resize", "resize a worker's terminal"),
    "restart": ("looop.cli.steer", "cmd_restart", "restart a worker's command"),
    "kill": ("looop.cli.steer", "cmd_kill", "stop a worker"),
    "flag": ("looop.cli.steer", "cmd_flag", "raise a worker's attention flag"),
    "unflag": ("looop.cli.steer", "cmd_unflag", "clear a worker's attention flag"),
    "detach": ("looop.cli.steer", "cmd_detach", "force-detach terminals attached to a worker"),
    "start-session": ("looop.cli.steer", "cmd_start_session", "start a worker in the running tree"),
    "prune": ("looop.cli.prune", "cmd_prune", "remove finished session dirs (--remote: release orphaned remote sessions first)"),
    "inbox": ("looop.cli.inbox", "cmd_inbox", "everything that needs someone, with the command that answers it"),
    "ask": ("looop.cli.mailbox", "cmd_ask", "inside a worker: ask and block until answered"),
    "answer": ("looop.cli.mailbox", "cmd_answer", "answer a worker's ask"),
    "tell": ("looop.cli.mailbox", "cmd_tell", "leave a message for a live worker"),
    "told": ("looop.cli.mailbox", "cmd_told", "inside a worker: read the messages left for you, once"),
    "attach": ("looop.cli.attach", "cmd_attach", "attach this terminal to a worker"),
    "tick": ("looop.cli.pulse_verbs", "cmd_tick", "one beat and exit (--dry-run: prompt only)"),
    "status": ("looop.cli.pulse_verbs", "cmd_status", "pulse, last tick, workers, cost today"),
    "journal": ("looop.cli.pulse_verbs", "cmd_journal", "print the journal"),
    "cost": ("looop.cli.pulse_verbs", "cmd_cost", "spend: today, all, by kind and runner"),
    "why": ("looop.cli.why", "cmd_why", "explain a move: what changed, the decision, the gate, the outcome"),
    "schedule": ("looop.cli.schedule", "cmd_schedule", "wake the loop at a time: write, list, rm"),
    "doctor": ("looop.cli.service", "cmd_doctor", "check runner, config, settings, data dir, lock, socket, tmux"),
    "systemd": ("looop.cli.service", "cmd_systemd", "print a systemd unit for running looop as a service"),
    "config": ("looop.cli.service", "cmd_config", "print a shell completion script (bash|zsh)"),
    "help": ("looop.cli.manual", "cmd_help", "the full manual"),
    "version": ("looop.cli.main", "cmd_version", "print the version"),
    "_pulse": ("looop.pulse.loop", "cmd_pulse", "internal: the pulse body"),
    "_rules": ("looop.cli.pulse_verbs", "cmd_rules", "internal: the built-in rules decider"),
    "_fmt": ("looop.cli.pulse_verbs", "cmd_fmt", "internal: pi NDJSON stream → friendly lines + cost"),
    "_event": ("looop.cli.steer", "cmd_event", "internal: an agent hook reports <id> <state> [note]"),
    "_cost": ("looop.cli.pulse_verbs", "cmd_cost_report", "internal: record a cost <kind> <id> <runner> <usd>"),
}


def cmd_version(argv: list[str]) -> int:
    from looop import __version__
    from looop.cli.args import parser
    parser("version", "Print the version.").parse_args(argv)
    print(f"looop {__version__}")
    return 0


def suggest(word: str) -> str:
    import difflib
    close = difflib.get_close_matches(word, [v for v in VERBS if not v.startswith("_")], n=1)
    return f" — did you mean '{close[0]}'?" if close else " — see `looop help`"


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    from looop.store.perms import own_files_only
    own_files_only()  # the data dir is owner-only; commands looop starts get the user's umask
    verb = "run"
    if argv and not argv[0].startswith("-"):
        verb = argv.pop(0)
    elif argv and argv[0] in ("-h", "--help"):
        verb = "help" if "help" in VERBS else "run"
        argv = argv[1:] if verb == "help" else argv
    elif argv and argv[0] in ("-V", "--version"):
        verb, argv = "version", argv[1:]
    entry = VERBS.get(verb)
    if entry is None:
        print(f"looop: unknown verb '{verb}'{suggest(verb)}", file=sys.stderr)
        return 1
    module, func, _ = entry
    import importlib
    try:
        return int(getattr(importlib.import_module(module), func)(argv) or 0)
    except LooopError as e:
        # the root itself speaks as plain `looop:` (`looop: already running (pid N)`)
        print(f"looop: {e}" if verb == "run" else f"looop {verb}: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        from looop.cli.args import end_line
        end_line()
        return 130
    except BrokenPipeError:
        return 0
