"""The settings table: one row per knob the code reads; `looop help` prints
every row; env over config over default; a bad value falls through."""
from __future__ import annotations

import os
import re
import subprocess

from conftest import BIN
from looop import settings
from looop.store import config


def test_every_env_knob_the_code_reads_is_in_the_table():
    root = os.path.join(os.path.dirname(settings.__file__))
    read = set()
    for dp, _dn, fns in os.walk(root):
        for fn in fns:
            if fn.endswith(".py"):
                with open(os.path.join(dp, fn), encoding="utf-8") as f:
                    read |= set(re.findall(r"""(?:environ\.get|environ\[|getenv|env\.get|settings\.get|env_float)\(\s*["'](LOOOP_[A-Z_]+|NO_COLOR)""", f.read()))
    exported = set(settings.EXPORTED) | {"LOOOP_PULSE_FD"}
    missing = read - set(settings.BY_ENV) - exported
    assert not missing, f"knobs read but not in looop/settings.py: {sorted(missing)}"


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
