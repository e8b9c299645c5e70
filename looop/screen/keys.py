"""Keys: named keys → the characters a terminal sends (xterm conventions,
`key_bytes`), and the input that depends on the program's terminal modes
(`input_bytes`). Pure; the CLI (`looop key`) and the pulse (`send_keys`)
name keys, the worker child applies the modes.

Why here: whether Up is `ESC [ A` or `ESC O A` (DECCKM), and whether pasted
text must be bracketed (mode 2004), is screen state. The child applies this
at write time, where the modes are current.
"""
from __future__ import annotations

import re

from looop.errors import UsageError

_CURSOR = re.compile(rb"\x1b\[([ABCDHF])")
PASTE_START, PASTE_END = b"\x1b[200~", b"\x1b[201~"


def input_bytes(data: bytes, how: str, modes: dict[str, bool]) -> bytes:
    """how="keys": `data` is a run of named keys' bytes; cursor keys become
    SS3 forms in application cursor mode. how="paste": multi-line text is
    wrapped in bracketed-paste markers when the program asked for them (any
    end marker inside is removed, so the text cannot end the paste early)."""
    if how == "keys" and modes.get("decckm"):
        return _CURSOR.sub(b"\x1bO\\1", data)
    if how == "paste" and modes.get("bracketed_paste") and b"\n" in data:
        return PASTE_START + data.replace(PASTE_END, b"") + PASTE_END
    return data


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
