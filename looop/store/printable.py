"""Text from workers made safe to print on a human's terminal: a flag note,
an ask's question or a screen line is the worker's to choose, and an escape
sequence in it would otherwise reach `ls`, `status`, `inbox` and the pulse's
stream as a live command to the terminal (colors, title, clear screen)."""
from __future__ import annotations

import re
from typing import Any

# escape sequences (CSI, OSC, 8-bit CSI, two-byte ESC x), then any other control character
_ESCAPES = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x9b[0-?]*[ -/]*[@-~]"
                      r"|\x1b[ -~]?")
_CONTROLS = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def one_line(text: Any) -> str:
    """One printable line: escapes dropped, controls and newlines as spaces,
    runs of whitespace as one."""
    return " ".join(_CONTROLS.sub(" ", _ESCAPES.sub("", str(text or ""))).split())
