"""Input that depends on the program's terminal modes (pure).

Why here: whether Up is `ESC [ A` or `ESC O A` (DECCKM), and whether pasted
text must be bracketed (mode 2004), is screen state. The child applies this
at write time, where the modes are current.
"""
from __future__ import annotations

import re

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
