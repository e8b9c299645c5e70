"""The text of a worker restart policy (`--restart TYPE`, `--max-restarts
N/WINDOW`, start_worker's fields, a goal's frontmatter): parsed here, below
every layer, so the root (tree/restart.py) and the rules decider read the
same words with the same errors."""
from __future__ import annotations

import re
from typing import Any

KINDS = ("temporary", "transient", "permanent")
_DUR = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNIT = {"ms": 0.001, "s": 1, None: 1, "m": 60, "h": 3600, "d": 86400}


def parse_kind(text: Any) -> str:
    """A restart type's name; ValueError names the three."""
    kind = str(text).strip()
    if kind not in KINDS:
        raise ValueError(f"bad restart type {text!r} (one of: {', '.join(KINDS)})")
    return kind


def parse_max_restarts(text: Any) -> tuple[int, float]:
    """`3/10m` → (3, 600.0): at most N restarts within the window."""
    n, _, win = str(text).partition("/")
    m = _DUR.match(win)
    if not n.strip().isdigit() or not m or int(n) < 1:
        raise ValueError(f"bad max restarts {text!r} (use N/WINDOW, e.g. 3/10m)")
    secs = float(m.group(1)) * _UNIT[m.group(2)]
    if secs <= 0:
        raise ValueError(f"bad max restarts {text!r}: the window must be positive")
    return int(n), secs
