"""Argument parsing shared by the verbs: a parser whose errors are one line
(`looop <verb>: …`, exit 1), and durations (`500ms`, `30s`, `10m`, `2h`, `1d`)."""
from __future__ import annotations

import argparse
import re
from typing import NoReturn

from looop.errors import UsageError

_DUR = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNIT = {"ms": 0.001, "s": 1, None: 1, "m": 60, "h": 3600, "d": 86400}


def duration(text: str) -> float:
    """Seconds from `500ms`/`30s`/`10m`/`2h`/`1d`/bare seconds; UsageError otherwise."""
    m = _DUR.match(str(text))
    if not m:
        raise UsageError(f"bad duration {text!r} (use e.g. 500ms, 30s, 10m, 2h, 1d)")
    return float(m.group(1)) * _UNIT[m.group(2)]


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def parser(verb: str, description: str) -> Parser:
    return Parser(prog=f"looop {verb}", description=description)


def session_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("id", help="session id (a legacy 'looop-' prefix is accepted)")
