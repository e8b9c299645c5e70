"""Screens through pyte: build, snapshot to plain data, render plain/ANSI.

A snapshot is the `shot --json` shape: {"cols", "rows", "cursor": {"x","y"},
"lines": [str], "cells": [[run, ...] per row]} where a run is
{"text", "fg", "bg", "bold", "italics", "underscore", "reverse"}.
"""
from __future__ import annotations

from typing import Any

_ATTRS = ("bold", "italics", "underscore", "reverse")
_SGR_FG = {"black": 30, "red": 31, "green": 32, "brown": 33, "yellow": 33, "blue": 34,
           "magenta": 35, "cyan": 36, "white": 37}


def new_screen(cols: int, rows: int, lnm: bool = False) -> tuple[Any, Any]:
    """A pyte screen and its byte stream. `lnm`: a bare LF also returns the
    carriage (the pulse's PTY has ONLCR off, so its lines end in LF only)."""
    import pyte
    screen = pyte.Screen(cols, rows)
    if lnm:
        screen.set_mode(pyte.modes.LNM)
    return screen, pyte.ByteStream(screen)


def replay(data: bytes, cols: int = 80, rows: int = 24, lnm: bool = False) -> Any:
    screen, stream = new_screen(cols, rows, lnm)
    stream.feed(data)
    return screen


def snapshot(screen: Any) -> dict[str, Any]:
    lines: list[str] = []
    cells: list[list[dict[str, Any]]] = []
    for y in range(screen.lines):
        row = screen.buffer[y]
        runs: list[dict[str, Any]] = []
        text = []
        for x in range(screen.columns):
            ch = row[x]
            text.append(ch.data)
            key = (ch.fg, ch.bg) + tuple(getattr(ch, a) for a in _ATTRS)
            if runs and runs[-1]["_k"] == key:
                runs[-1]["text"] += ch.data
            else:
                runs.append({"_k": key, "text": ch.data, "fg": ch.fg, "bg": ch.bg,
                             **{a: getattr(ch, a) for a in _ATTRS}})
        for r in runs:
            del r["_k"]
        lines.append("".join(text))
        cells.append(runs)
    return {"cols": screen.columns, "rows": screen.lines,
            "cursor": {"x": screen.cursor.x, "y": screen.cursor.y}, "lines": lines, "cells": cells}


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
