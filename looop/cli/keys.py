"""Named keys → the bytes a terminal sends (xterm conventions)."""
from __future__ import annotations

from looop.errors import UsageError

NAMED: dict[str, str] = {
    "enter": "\r", "tab": "\t", "esc": "\x1b", "escape": "\x1b", "space": " ",
    "backspace": "\x7f", "bs": "\x7f", "delete": "\x1b[3~", "del": "\x1b[3~",
    "up": "\x1b[A", "down": "\x1b[B", "right": "\x1b[C", "left": "\x1b[D",
    "home": "\x1b[H", "end": "\x1b[F", "pageup": "\x1b[5~", "pagedown": "\x1b[6~",
    "insert": "\x1b[2~",
    "f1": "\x1bOP", "f2": "\x1bOQ", "f3": "\x1bOR", "f4": "\x1bOS",
    "f5": "\x1b[15~", "f6": "\x1b[17~", "f7": "\x1b[18~", "f8": "\x1b[19~",
    "f9": "\x1b[20~", "f10": "\x1b[21~", "f11": "\x1b[23~", "f12": "\x1b[24~",
}


def key_bytes(name: str) -> str:
    """`Enter`, `C-c`, `M-x`, `F5`, … → the characters to type. UsageError if unknown."""
    if len(name) == 1:  # a character types itself: `looop key vim i`
        return name
    low = name.lower()
    if low in NAMED:
        return NAMED[low]
    if len(name) == 3 and low[:2] == "c-" and (low[2].isalpha() or low[2] in "[\\]^_@"):
        return chr(ord(low[2].upper()) & 0x1F)
    if len(name) >= 3 and low[:2] == "m-":
        return "\x1b" + (key_bytes(name[2:]) if len(name) > 3 else name[2])
    raise UsageError(f"unknown key {name!r} (try Enter, Tab, Esc, Up, C-c, M-x, F1…F12, or one character)")
