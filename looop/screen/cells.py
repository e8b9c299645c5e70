"""The snapshot's cell vocabulary, shared by the engines (pure).

Colours keep pyte's historical names so `shot --json` stays what scripts
already read: "default", the 16 named ones ("red", "brightred"; yellow is
"brown", as in pyte), and "rrggbb" for the 256-colour cube and true colour.
"""
from __future__ import annotations

from typing import Any

NAMES = ("black", "red", "green", "brown", "blue", "magenta", "cyan", "white")
PALETTE16 = NAMES + tuple("bright" + n for n in NAMES)
ATTRS = ("bold", "italics", "underscore", "reverse")


def _cube(n: int) -> str:
    """xterm's 256-colour table entry n (16..255) as rrggbb."""
    if n >= 232:
        v = 8 + 10 * (n - 232)
        return f"{v:02x}{v:02x}{v:02x}"
    n -= 16
    steps = (0, 95, 135, 175, 215, 255)
    return f"{steps[n // 36]:02x}{steps[n // 6 % 6]:02x}{steps[n % 6]:02x}"


XTERM256 = PALETTE16 + tuple(_cube(n) for n in range(16, 256))


def palette(n: int) -> str:
    return XTERM256[n & 0xFF]


def rgb(r: int, g: int, b: int) -> str:
    return f"{r:02x}{g:02x}{b:02x}"


def run(text: str, fg: str, bg: str, bold: bool, italics: bool, underscore: bool,
        reverse: bool) -> dict[str, Any]:
    return {"text": text, "fg": fg, "bg": bg, "bold": bold, "italics": italics,
            "underscore": underscore, "reverse": reverse}


def rows_to_runs(row: list[tuple[str, tuple]]) -> list[dict[str, Any]]:
    """[(text, (fg, bg, bold, italics, underscore, reverse)) per cell] → runs
    of equal style."""
    runs: list[dict[str, Any]] = []
    last = None
    for text, key in row:
        if key == last:
            runs[-1]["text"] += text
        else:
            runs.append(run(text, *key))
            last = key
    return runs
