"""Rendering of screen snapshots (plain, ANSI, the `expect --screen` text).

Snapshots come from looop.screen (the one emulator interface); this module
only turns that plain data into text: {"cols", "rows", "cursor": {"x","y"},
"lines": [str], "cells": [[run, ...] per row]} where a run is
{"text", "fg", "bg", "bold", "italics", "underscore", "reverse"}.
"""
from __future__ import annotations

from typing import Any

_ATTRS = ("bold", "italics", "underscore", "reverse")
_SGR_FG = {"black": 30, "red": 31, "green": 32, "brown": 33, "yellow": 33, "blue": 34,
           "magenta": 35, "cyan": 36, "white": 37}
_SGR_FG.update({"bright" + k: v + 60 for k, v in list(_SGR_FG.items())})  # 90–97 / 100–107


def _color(value: str, base: int) -> str | None:
    if value == "default":
        return None
    if value in _SGR_FG:
        return str(_SGR_FG[value] + base)
    if len(value) == 6:
        try:
            r, g, b = int(value[:2], 16), int(value[2:4], 16), int(value[4:], 16)
        except ValueError:
            return None
        return f"{38 + base};2;{r};{g};{b}"
    return None


def _visible(run: dict[str, Any]) -> bool:
    """Does a run of spaces still show something (a background, reverse video)?"""
    return run["bg"] != "default" or bool(run["reverse"])


def _trim_runs(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Drop trailing spaces that show nothing, keeping colored ones."""
    out = [dict(r) for r in runs]
    while out:
        last = out[-1]
        if _visible(last):
            break
        text = last["text"].rstrip(" ")
        if text:
            last["text"] = text
            break
        out.pop()
    return out


def _sgr(run: dict[str, Any]) -> str:
    codes = [c for c in (_color(run["fg"], 0), _color(run["bg"], 10)) if c]
    codes += [str(n) for a, n in zip(_ATTRS, (1, 3, 4, 7)) if run[a]]
    return f"\x1b[{';'.join(codes)}m{run['text']}\x1b[0m" if codes else run["text"]


def screen_text(snap: dict[str, Any]) -> str:
    """What a person reads on the screen, for `expect --screen`: trailing
    blanks dropped, except on the cursor's row up to the cursor (so `>>> $`
    matches a prompt waiting for input)."""
    lines = [ln.rstrip(" ") for ln in snap["lines"]]
    x, y = snap["cursor"]["x"], snap["cursor"]["y"]
    if 0 <= y < len(lines):
        lines[y] = snap["lines"][y][:max(x, len(lines[y]))]
    return "\n".join(lines).rstrip("\n")


def render(snap: dict[str, Any], ansi: bool = False, trim: bool = False) -> str:
    """Plain text (or with SGR colors) of a snapshot; `trim` drops trailing
    spaces (colored ones stay in ANSI mode) and trailing blank lines."""
    if not ansi:
        rows = [r.rstrip(" ") for r in snap["lines"]] if trim else list(snap["lines"])
    else:
        rows = ["".join(_sgr(r) for r in (_trim_runs(runs) if trim else runs))
                for runs in snap["cells"]]
    if trim:
        while rows and not rows[-1].strip(" "):
            rows.pop()
    return "\n".join(rows)
