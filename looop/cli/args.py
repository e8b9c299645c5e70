"""Argument parsing shared by the verbs: a parser whose errors are one line
(`looop <verb>: …`, exit 1), and durations (`500ms`, `30s`, `10m`, `2h`, `1d`)."""
from __future__ import annotations

import argparse
import os
import re
import sys
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


def said(text: str) -> str:
    """A duration as the user wrote it, for a message: a bare number gets
    its unit (`--timeout 1` reads `within 1s`, not `within 1`)."""
    m = _DUR.match(str(text))
    return f"{m.group(1)}s" if m and m.group(2) is None else str(text).strip()


def end_line() -> None:
    """After Ctrl-C the terminal has echoed `^C` with no newline; a verb
    that ends by exiting (not by the signal, after which the shell would
    end the line itself) ends it, so the shell's prompt starts its own."""
    if sys.stderr.isatty():
        sys.stderr.write("\n")
        sys.stderr.flush()


def columns() -> int:
    """The width argparse's help gets: shutil.get_terminal_size's columns
    (COLUMNS, else the terminal on sys.__stdout__, else 80), without
    importing shutil, which imports bz2 and lzma."""
    try:
        n = int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        n = 0
    if n > 0:
        return n
    try:
        return os.get_terminal_size(sys.__stdout__.fileno()).columns or 80
    except (AttributeError, ValueError, OSError):
        return 80


class Formatter(argparse.HelpFormatter):
    """argparse builds one per add_argument (to check the metavar): with
    the default width that is a shutil import on every verb's start."""

    def __init__(self, prog: str, indent_increment: int = 2, max_help_position: int = 24,
                 width: int | None = None) -> None:
        super().__init__(prog, indent_increment, max_help_position,
                         columns() - 2 if width is None else width)


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def parser(verb: str, description: str) -> Parser:
    return Parser(prog=f"looop {verb}", description=description, formatter_class=Formatter)


def session_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("id", help="session id (a legacy 'looop-' prefix is accepted)")
