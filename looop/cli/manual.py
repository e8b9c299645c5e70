"""`looop help [verb]`: the full manual, with the parts that could drift generated.

The prose lives in `looop/manual.md` (package data). The verb list comes from
`looop.cli.main.VERBS`, the process-title format and the control-socket
protocol from the docstrings of the modules that own them, and the paths from
this profile's live values — so the manual cannot disagree with the program.
`looop help <verb>` is `looop <verb> --help`.
"""
from __future__ import annotations

import os
import sys
import textwrap

# (name, default, what it does). The manual shows each with its value now.
ENV: tuple[tuple[str, str, str], ...] = (
    ("LOOOP_DATA_DIR", "${XDG_STATE_HOME:-~/.local/state}/looop", "the data dir = the profile"),
    ("LOOOP_CONFIG", "<data>/looop.json", "the config file"),
    ("LOOOP_INTERVAL", "60 (config interval)", "seconds between beats when idle"),
    ("LOOOP_BUSY_INTERVAL", "= interval (config busy_interval)", "after a beat that acted"),
    ("LOOOP_ACTIVE_INTERVAL", "= interval (config active_interval)", "while any worker is alive"),
    ("LOOOP_SHUTDOWN_GRACE", "5", "seconds a stopping process gets before SIGKILL"),
    ("LOOOP_SENSOR_TIMEOUT", "60", "seconds per sensor (exit 124 on timeout)"),
    ("LOOOP_SENSOR_MAX_BYTES", "8192", "cap on one sensor reading"),
    ("LOOOP_TICK_TIMEOUT", "900", "seconds the decider may run; then its group is killed"),
    ("LOOOP_RUNS_KEEP", "50", "runs/<id>/ archives kept (0 = all)"),
    ("LOOOP_SESSION_TTL", "259200 (config session_ttl)", "seconds a finished session dir is kept"),
    ("LOOOP_LOG_MAX_BYTES", "67108864", "output.log rotates at this size (one .1 kept)"),
    ("LOOOP_LOG_FORMAT", "human", "`json` = NDJSON output, like --json"),
    ("LOOOP_COLOR", "auto", "1 forces colors on, 0 off"),
    ("NO_COLOR", "unset", "any value turns colors off (unless LOOOP_COLOR=1)"),
    ("LOOOP_TMUX_SURFACE", "1", "0 = never open tmux windows for flagged workers"),
    ("LOOOP_SHELL_ALLOW_DANGEROUS", "0", "1 disables the run_shell deny-list tripwire"),
    ("LOOOP_RESTART_MAX", "5", "pulse restarts allowed per period before looop gives up"),
    ("LOOOP_RESTART_PERIOD", "60", "seconds of that restart window"),
)
# Set by looop for the commands it starts (runners, workers); read them there.
EXPORTED = ("LOOOP_BIN", "LOOOP_DATA_DIR", "LOOOP_CONFIG", "LOOOP_SESSION_ID",
            "LOOOP_COST_KIND", "LOOOP_COST_ID", "LOOOP_COST_RUNNER")


def verbs_text() -> str:
    """Each public verb: its summary, then its usage line from its own parser."""
    from looop.cli.completion import capture_parser
    from looop.cli.main import VERBS
    rows = []
    for verb, (_m, _f, summary) in VERBS.items():
        if verb.startswith("_"):
            continue
        name = "[run] [--json]" if verb == "run" else verb
        rows.append(f"  looop {name:<15} {summary}")
        p = capture_parser(verb)
        if p is not None:
            usage = " ".join(p.format_usage().split()[1:]).replace(" [-h]", "")
            rows += textwrap.wrap(usage, 76, initial_indent=" " * 8, subsequent_indent=" " * 12)
    hidden = ", ".join(v for v in VERBS if v.startswith("_"))
    return "\n".join(rows) + f"\n\n  Internal (used by looop itself): {hidden}."


def env_text() -> str:
    out = []
    for name, default, what in ENV:
        now = os.environ.get(name)
        out.append(f"  {name:<28} {what}\n  {'':<28} default: {default}"
                   + (f"; now: {now}" if now is not None else ""))
    out.append("")
    out += textwrap.wrap("Exported to runners and workers: " + ", ".join(EXPORTED) + ".",
                         76, initial_indent="  ", subsequent_indent="  ")
    return "\n".join(out)


def paths_text() -> str:
    from looop.store import paths
    d = paths.data_dir()
    rows = [("data dir", d), ("config", paths.config_path(d)),
            ("control socket", paths.socket_path(d)), ("lock", paths.lock_path(d))]
    rows += [(name, os.path.join(d, name)) for name in (
        "PLAYBOOK.md", "goals/", "sensors/", "journal.md", "sessions/", "prompts/", "reports/",
        "claims/", "snapshots/", "runs/", "events.jsonl", "cost.jsonl", "tick.log")]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"  {k:<{width}}  {v}" + ("" if os.path.exists(v) else "  (absent)")
                     for k, v in rows)


def _doc(module: str) -> str:
    import importlib
    return textwrap.indent(textwrap.dedent(importlib.import_module(module).__doc__ or "").strip(), "  ")


def control_text() -> str:
    """The wire format from control.py's docstring, then the ops this very
    version accepts (the root's dispatch table), so the list cannot go stale."""
    from looop.tree.supervisor import OPS
    ops = "Ops this version accepts: " + ", ".join(sorted(OPS)) + "."
    return _doc("looop.tree.control") + "\n\n" + "\n".join(
        textwrap.wrap(ops, 76, initial_indent="  ", subsequent_indent="  "))


def page(text: str) -> None:
    """Print `text`; on a terminal, through $PAGER (default `less`, which
    quits at once when the text fits: LESS=FRX). PAGER= or cat disables it."""
    import shutil
    import subprocess
    pager = os.environ.get("PAGER", "less")
    if not sys.stdout.isatty() or not pager.strip() or pager.strip() == "cat" \
            or shutil.which(pager.split()[0]) is None:
        sys.stdout.write(text)
        return
    env = dict(os.environ)
    env.setdefault("LESS", "FRX")
    try:
        subprocess.run(pager, shell=True, input=text.encode(), env=env, check=False)
    except OSError:
        sys.stdout.write(text)


def manual() -> str:
    from importlib import resources
    from looop import __version__
    text = resources.files("looop").joinpath("manual.md").read_text(encoding="utf-8")
    parts = {"version": lambda: __version__, "verbs": verbs_text, "env": env_text,
             "titles": lambda: _doc("looop.tree.title"),
             "control": control_text, "paths": paths_text}
    for key, fill in parts.items():
        text = text.replace("{{" + key + "}}", fill())
    return text


def cmd_help(argv: list[str]) -> int:
    from looop.cli.args import parser
    p = parser("help", "The full manual: concepts, one beat, the rules, every verb, the "
                       "environment and this profile's paths. `looop help VERB` = `looop VERB --help`.")
    p.add_argument("verb", nargs="?", help="show this verb's --help instead")
    a = p.parse_args(argv)
    if a.verb:
        from looop.cli.main import main
        return main([a.verb, "--help"])
    page(manual())
    return 0
