"""The one screen interface: every terminal emulator in looop sits behind it.

Why one seam: the screen is what looop knows about a worker (shot, expect
--screen, attach replies, activity detection). Nothing outside this package
imports an emulator, so an engine can be swapped, hardened or measured here.

    from looop.screen import new_screen
    s = new_screen(cols, rows, lnm=False)   # engine chosen once per process
    s.feed(data)          # bytes, any bytes: never raises; bad sequences are
                          # skipped and counted in s.errors
    s.resize(cols, rows)  # never raises (a failure is counted); callers resize
                          # the PTY first and check the size with check_size()
    s.snapshot()          # {"cols", "rows", "cursor": {"x", "y"}, "lines": [str],
                          #  "cells": [[run, ...] per row], "engine", "errors",
                          #  "modes"} — the `shot --json` shape (SPEC §7, §15);
                          # a run is {"text", "fg", "bg", "bold", "italics",
                          # "underscore", "reverse"}, colours "default", a name
                          # ("red", "brightred"…) or "rrggbb"; a wide character
                          # is followed by a "" cell, so len(line) may be < cols
    s.text()              # = s.snapshot()["lines"], without styles: the activity
                          # tracker's read at every look (~3× cheaper)
    s.cursor()            # (x, y), 0-based, on the active screen
    s.modes()             # {"alt_screen", "decckm", "bracketed_paste", "mouse"}: bools
    s.replies()           # bytes the terminal owes the program (CPR, DA1/DA2,
                          # DSR, XTVERSION…), cleared by the call
    s.engine, s.errors    # "ghostty" | "pyte"; rejected sequences so far

Engines: libghostty-vt (the library the `pyghostty` wheel ships, Linux x86_64)
and a hardened pyte everywhere else. LOOOP_SCREEN_ENGINE=pyte|ghostty forces one
(an unavailable forced engine falls back to pyte, never fails).

`lnm`: a bare LF also returns the carriage (the pulse's PTY has ONLCR off).
"""
from __future__ import annotations

from typing import Any, Protocol

MIN_COLS, MIN_ROWS = 2, 2
MAX_COLS, MAX_ROWS = 1000, 1000
ENGINES = ("ghostty", "pyte")


class Screen(Protocol):
    engine: str
    errors: int
    cols: int
    rows: int

    def feed(self, data: bytes) -> None: ...
    def resize(self, cols: int, rows: int) -> None: ...
    def snapshot(self) -> dict[str, Any]: ...
    def text(self) -> list[str]: ...
    def cursor(self) -> tuple[int, int]: ...
    def modes(self) -> dict[str, bool]: ...
    def replies(self) -> bytes: ...


def size_error(cols: int, rows: int) -> str | None:
    """Why COLSxROWS is not a size a screen takes, or None (pure)."""
    if not (MIN_COLS <= cols <= MAX_COLS and MIN_ROWS <= rows <= MAX_ROWS):
        return (f"size {cols}x{rows} out of range "
                f"({MIN_COLS}x{MIN_ROWS} .. {MAX_COLS}x{MAX_ROWS})")
    return None


_chosen: str | None = None


def engine_name() -> str:
    """The engine this process uses: LOOOP_SCREEN_ENGINE if it can load,
    else ghostty where its library loads, else pyte. Decided once."""
    global _chosen
    if _chosen is None:
        from looop import settings
        want = str(settings.get("LOOOP_SCREEN_ENGINE") or "").strip().lower()
        if want != "pyte":
            from looop.screen import ghostty
            if ghostty.available():
                _chosen = "ghostty"
        if _chosen is None:
            _chosen = "pyte"
    return _chosen


def preload() -> None:
    """Load the engine now (the root does this before forking children, so
    they share its pages)."""
    if engine_name() == "pyte":
        import looop.screen.pyteng  # noqa: F401


def new_screen(cols: int, rows: int, lnm: bool = False) -> Screen:
    """A fresh screen of the chosen engine. Sizes are clamped into range."""
    cols = min(max(int(cols), MIN_COLS), MAX_COLS)
    rows = min(max(int(rows), MIN_ROWS), MAX_ROWS)
    if engine_name() == "ghostty":
        from looop.screen.ghostty import GhosttyScreen
        return GhosttyScreen(cols, rows, lnm)
    from looop.screen.pyteng import PyteScreen
    return PyteScreen(cols, rows, lnm)


def replay_tail() -> int:
    """How much of a finished session's log to replay: about 50 ms of
    parsing for the engine (the first bytes of a tail may be mid-sequence;
    both engines resynchronise)."""
    return 4 << 20 if engine_name() == "ghostty" else 128 << 10


def replay(data: bytes, cols: int = 80, rows: int = 24, lnm: bool = False) -> Screen:
    """A screen that has seen `data` (a finished session's log tail)."""
    s = new_screen(cols, rows, lnm)
    s.feed(data)
    s.replies()  # nobody to answer: a replay never talks back
    return s
