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
    """The settings table (looop.settings), each with its value now."""
    from looop import settings
    out = []
    for name, what, default, now in settings.rows():
        out.append(f"  {name:<28} {what}\n  {'':<28} default: {default}"
                   + (f"; now: {now}" if now is not None else ""))
    out.append("")
    out += textwrap.wrap("Exported to runners and workers: " + ", ".join(settings.EXPORTED) + ".",
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
    """A format-owning module's docstring minus its first paragraph (which
    says what the module is, not what the format is)."""
    import importlib
    body = (importlib.import_module(module).__doc__ or "").strip().split("\n\n", 1)[-1]
    return textwrap.indent(textwrap.dedent(body).strip("\n"), "  ")


def control_text() -> str:
    """The wire format from control.py's docstring, then the ops this very
    version accepts (control.OP_NAMES, held to the root's dispatch table by
    tests/test_tree_unit.py), so the list cannot go stale."""
    from looop.tree.control import OP_NAMES
    ops = "Ops this version accepts: " + ", ".join(sorted(OP_NAMES)) + "."
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
             "titles": lambda: _doc("looop.store.title"),
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
