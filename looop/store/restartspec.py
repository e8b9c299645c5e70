"""The text of a worker restart policy (`--restart TYPE`, `--max-restarts
N/WINDOW`, start_worker's fields, a goal's frontmatter): parsed here, below
every layer, so the root (tree/restart.py) and the rules decider read the
same words with the same errors."""
from __future__ import annotations

from typing import Any

from looop.store.config import seconds

KINDS = ("temporary", "transient", "permanent")


def parse_kind(text: Any) -> str:
    """A restart type's name; ValueError names the three."""
    kind = str(text).strip()
    if kind not in KINDS:
        raise ValueError(f"bad restart type {text!r} (one of: {', '.join(KINDS)})")
    return kind


def parse_max_restarts(text: Any) -> tuple[int, float]:
    """`3/10m` → (3, 600.0): at most N restarts within the window."""
    n, _, win = str(text).partition("/")
    secs = seconds(win)
    if not n.strip().isdigit() or secs is None or int(n) < 1:
        raise ValueError(f"bad max restarts {text!r} (use N/WINDOW, e.g. 3/10m)")
    if secs <= 0:
        raise ValueError(f"bad max restarts {text!r}: the window must be positive")
    return int(n), secs
