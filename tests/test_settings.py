"""The settings table: one row per knob the code reads; `looop help` prints
every row; env over config over default; a bad value falls through."""
from __future__ import annotations

import os
import re
import subprocess

from conftest import BIN
from looop import settings
from looop.store import config


# Names looop sets for what it starts (and reads back there), never knobs
# a user sets: they are not in the table, on purpose, and listed here one
# by one so a new LOOOP_ name has to be placed in one list or the other.
SET_BY_LOOOP = {
    "LOOOP_BIN", "LOOOP_SESSION_ID",                         # every worker and runner
    "LOOOP_COST_KIND", "LOOOP_COST_ID", "LOOOP_COST_RUNNER",  # a runner's `looop _fmt`/`_cost`
    "LOOOP_PULSE_FD",                                         # the pulse's link to the root
    "LOOOP_NOTIFY_TEXT",                                      # a notify_command's one line
    "LOOOP_PROMPT_FILE", "LOOOP_SWEEP",                       # a remote (ssh) worker's wrapper
}


def looop_names() -> dict[str, set[str]]:
    """Every LOOOP_ name anywhere in looop's source (code, seeds, scripts)
    → the files it is in."""
    root = os.path.dirname(settings.__file__)
    found: dict[str, set[str]] = {}
    for dp, _dn, fns in os.walk(root):
        for fn in fns:
            if fn.endswith((".py", ".sh", ".md")):
                with open(os.path.join(dp, fn), encoding="utf-8") as f:
                    for name in re.findall(r"\bLOOOP_[A-Z_]*[A-Z]", f.read()):
                        found.setdefault(name, set()).add(os.path.relpath(os.path.join(dp, fn), root))
    return found


def test_every_looop_name_in_the_source_is_a_knob_in_the_table_or_set_by_looop():
    """Issue 14: the table is complete — a name the code reads (or a seed
    mentions) is a row of looop/settings.py, or one looop sets for children."""
    names = looop_names()
    assert "LOOOP_SHELL_TIMEOUT" in names and "LOOOP_SESSION_ID" in names  # the walk sees both kinds
    unknown = {n: sorted(f) for n, f in names.items() if n not in settings.BY_ENV and n not in SET_BY_LOOOP}
    assert not unknown, f"LOOOP_ names neither in looop/settings.py nor set by looop: {unknown}"
    assert not SET_BY_LOOOP & set(settings.BY_ENV)
    assert set(settings.EXPORTED) - {"LOOOP_DATA_DIR", "LOOOP_CONFIG"} <= SET_BY_LOOOP


def test_knobs_are_read_through_the_table():
    """The code reads a knob through settings.get/config.knob, not by hand
    (a hand read skips the type, the config fallback and the default).
    store/paths reads the profile itself (LOOOP_DATA_DIR, LOOOP_CONFIG)
    directly: `ls` must not pay for importing the table."""
    root = os.path.dirname(settings.__file__)
    allowed = {(os.path.join("store", "paths.py"), "LOOOP_DATA_DIR"), (os.path.join("store", "paths.py"), "LOOOP_CONFIG"),
               (os.path.join("tree", "leftovers.py"), "LOOOP_DATA_DIR")}  # (another process's environment)
    name = r"""\s*["']((?:LOOOP_[A-Z_]+)|NO_COLOR)["']"""
    reads = re.compile(rf"""(?:(?:environ|env)\.get\(|getenv\(){name}|(?:environ|env)\[{name}\](?!\s*=[^=])""")
    by_hand = []
    for dp, _dn, fns in os.walk(root):
        for fn in fns:
            if not fn.endswith(".py") or fn == "settings.py":
                continue
            rel = os.path.relpath(os.path.join(dp, fn), root)
            with open(os.path.join(dp, fn), encoding="utf-8") as f:
                for n, line in enumerate(f, 1):
                    for got in reads.findall(line):
                        knob = got[0] or got[1]
                        if knob in settings.BY_ENV and (rel, knob) not in allowed:
                            by_hand.append(f"{rel}:{n} {knob}")
                    for key in re.findall(r"""cfg\.get\(\s*["']([a-z_]+)""", line):
                        if key in settings.BY_KEY:
                            by_hand.append(f"{rel}:{n} config {key}")
    assert not by_hand, f"knobs read by hand, not through looop.settings: {by_hand}"


def test_precedence_and_bad_values():
    env = {"LOOOP_INTERVAL": "7"}
    assert settings.get("interval", {"interval": 3}, env=env) == 7.0
    assert settings.get("interval", {"interval": 3}, env={}) == 3.0
    assert settings.get("interval", {}, env={"LOOOP_INTERVAL": "soon"}) == 60.0
    assert settings.get("busy_interval", {}, 9.0, env={}) == 9.0
    assert settings.get("LOOOP_EVENTS_MAX_BYTES", env={}) == 8 << 20
    assert config.knob({"interval": True}, "interval") == 60.0  # a bool is not a number


def test_help_prints_every_row(tmp_path):
    env = dict(os.environ, LOOOP_DATA_DIR=str(tmp_path), HOME=str(tmp_path), PAGER="cat")
    out = subprocess.run([BIN, "help"], env=env, capture_output=True, text=True, timeout=30).stdout
    for s in settings.SETTINGS:
        assert s.name in out, s.name
    assert "LOOOP_SHELL_TIMEOUT" in out and "LOOOP_EVENTS_MAX_BYTES" in out
